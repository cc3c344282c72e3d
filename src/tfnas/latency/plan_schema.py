"""The plan manifest's format, declared once (pydantic): what ``lut plan`` writes and ``lut
assemble`` (and an external build) reads back. :func:`tfnas.latency.plan.load_manifest`
validates against it and then checks the model files' checksums; the manifest is a file a
user carries to another machine and may edit there, so every field is checked, and no
entry may name a file outside the plan's directory."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ..options import MODEL_FORMATS
from ..schema import Count, Record, SpaceRecord

PLAN_FORMAT = "tfnas-latency-plan"
PLAN_VERSION = 1


class PlanSpaceRecord(SpaceRecord):
    source: str


class PlanEntry(Record):
    job: Annotated[str, Field(min_length=1)]
    key: str
    width: Annotated[int, Field(ge=0)] | None = None  # 0: the stem, the head, the probes
    file: str
    input_shape: Annotated[list[Count], Field(min_length=1)]
    timing: Literal["block", "network"]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

    @field_validator("file")
    @classmethod
    def _inside_the_plan(cls, file: str) -> str:
        path = PurePosixPath(file)
        if not file or path.is_absolute() or ".." in path.parts or "\\" in file:
            raise ValueError(
                f"names {file!r}; a model file is a relative path inside the plan's directory"
            )
        return file


class ManifestFile(Record):
    format: Literal["tfnas-latency-plan"]
    version: Literal[1]
    space: PlanSpaceRecord
    model_format: str
    batch_size: Count
    width_step: Count
    classes: Count
    in_channels: Count
    input_name: str = "x"
    entries: Annotated[list[PlanEntry], Field(min_length=1)]

    @field_validator("model_format")
    @classmethod
    def _a_known_format(cls, fmt: str) -> str:
        if fmt not in MODEL_FORMATS:
            raise ValueError(f"must be one of {', '.join(MODEL_FORMATS)}, got {fmt!r}")
        return fmt

    @model_validator(mode="after")
    def _each_job_once(self) -> ManifestFile:
        seen: set[str] = set()
        for entry in self.entries:
            if entry.job in seen:
                raise ValueError(f"lists the job {entry.job!r} twice")
            seen.add(entry.job)
        return self


__all__ = ["PLAN_FORMAT", "PLAN_VERSION", "ManifestFile"]
