"""The architecture file's format, declared once (pydantic): its fields, their types and the
keys it may hold. :func:`tfnas.arch.architecture_from_dict` builds an architecture from what
passed it; whether the architecture fits its space (ops, depths, widths within their bounds)
is checked against the space, in :func:`tfnas.arch.check_architecture`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from .schema import Count, Record, SpaceRecord

ARCH_FORMAT = "tfnas-architecture"
ARCH_VERSION = 1


class BlockRecord(Record):
    kernel: Count
    expansion: Count
    se: bool = False
    width: Count


class StageRecord(Record):
    depth: Annotated[int, Field(ge=0)]
    blocks: list[BlockRecord]

    @model_validator(mode="after")
    def _depth_counts_the_blocks(self) -> StageRecord:
        if self.depth != len(self.blocks):
            raise ValueError(f"depth is {self.depth} but the stage lists {len(self.blocks)} blocks")
        return self


class ArchitectureFile(Record):
    format: Literal["tfnas-architecture"]
    version: Literal[1]
    space: SpaceRecord
    stages: Annotated[list[StageRecord], Field(min_length=1)]
    info: dict[str, Any] = Field(default_factory=dict)


__all__ = ["ARCH_FORMAT", "ARCH_VERSION", "ArchitectureFile"]
