"""Architecture files: the chosen depth, op and mid width of every block, as JSON.

An architecture names the space it belongs to by name and content hash, so that a file
derived from one version of a space is refused by another instead of silently building a
different network.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .arch_schema import ARCH_FORMAT, ARCH_VERSION, ArchitectureFile
from .block import BlockSpec, OpSpec
from .errors import ArchitectureError
from .io import atomic_write_json, read_json
from .schema import block_place
from .schema import validate as validate_record
from .space import SearchSpace, space_of_file


@dataclass(frozen=True)
class BlockChoice:
    op: OpSpec
    width: int


@dataclass(frozen=True)
class Architecture:
    """Per stage, the blocks that are present (depth = their number) with op and width."""

    space_name: str
    space_hash: str
    stages: tuple[tuple[BlockChoice, ...], ...]
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(stage) for stage in self.stages)

    def blocks(self, space: SearchSpace) -> Iterator[tuple[int, int, BlockSpec, int]]:
        """(stage, index, identity, width) of every present block, in network order."""
        for s, stage in enumerate(self.stages):
            for j, choice in enumerate(stage):
                yield s, j, space.block_spec(s, j, choice.op), choice.width

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": ARCH_FORMAT,
            "version": ARCH_VERSION,
            "space": {"name": self.space_name, "hash": self.space_hash},
            "stages": [
                {
                    "depth": len(stage),
                    "blocks": [{**c.op.to_dict(), "width": c.width} for c in stage],
                }
                for stage in self.stages
            ],
        }
        if self.info:
            out["info"] = self.info
        return out

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    def describe(self) -> str:
        """Compact one-line form, e.g. ``k3_e6:96,k5_e3:48 | k3_e3_se:80``."""
        return " | ".join(
            ",".join(f"{c.op.label}:{c.width}" for c in stage) for stage in self.stages
        )


def validate(arch: Architecture, space: SearchSpace, source: str = "architecture") -> Architecture:
    """Check that ``arch`` is a network of ``space``; raise one clear sentence otherwise."""

    def fail(reason: str) -> ArchitectureError:
        return ArchitectureError(f"{source}: {reason}.")

    if arch.space_name != space.name:
        raise fail(f"belongs to space '{arch.space_name}', not to space '{space.name}'")
    if arch.space_hash != space.hash:
        raise fail(
            f"was made for a different version of space '{space.name}' (hash {arch.space_hash}, "
            f"the space now hashes to {space.hash}); derive it again from the current space"
        )
    if len(arch.stages) != len(space.stages):
        raise fail(
            f"has {len(arch.stages)} stages but space '{space.name}' has {len(space.stages)}"
        )
    for s, (stage, spec) in enumerate(zip(arch.stages, space.stages, strict=True)):
        if len(stage) not in spec.depths:
            raise fail(
                f"stage {s + 1} has depth {len(stage)}, outside the space's range "
                f"{spec.min_depth}..{spec.blocks}"
            )
        for j, choice in enumerate(stage):
            if choice.op not in spec.ops:
                raise fail(
                    f"stage {s + 1} block {j + 1} uses op {choice.op.label}, which is not a "
                    f"candidate there (candidates: {', '.join(o.label for o in spec.ops)})"
                )
            block = space.block_spec(s, j, choice.op)
            if not block.check_width(choice.width):
                raise fail(
                    f"stage {s + 1} block {j + 1} ({choice.op.label}) has width {choice.width}, "
                    f"outside its bounds {block.min_width}..{block.max_width}"
                )
    return arch


def architecture_from_dict(data: Any, source: str = "architecture") -> Architecture:
    """Build an :class:`Architecture` from parsed JSON, checked by the file's declared format
    (:mod:`tfnas.arch_schema`; not against its space)."""

    if not isinstance(data, dict):
        raise ArchitectureError(f"{source}: must hold a JSON object, not {type(data).__name__}.")
    if data.get("format") != ARCH_FORMAT:
        raise ArchitectureError(
            f"{source}: field 'format' must be '{ARCH_FORMAT}', got {data.get('format')!r}."
        )
    if data.get("version") != ARCH_VERSION:
        raise ArchitectureError(
            f"{source}: field 'version' must be {ARCH_VERSION} (this tfnas reads version "
            f"{ARCH_VERSION}), got {data.get('version')!r}."
        )
    record = validate_record(ArchitectureFile, data, source, ArchitectureError, block_place)
    stages = tuple(
        tuple(BlockChoice(OpSpec(b.kernel, b.expansion, b.se), b.width) for b in stage.blocks)
        for stage in record.stages
    )
    return Architecture(record.space.name, record.space.hash, stages, dict(record.info))


def load_architecture(
    path: str | Path, space: SearchSpace | str | Path | None = None
) -> tuple[Architecture, SearchSpace]:
    """Read and validate an architecture file against its space.

    ``space`` defaults to the built-in space the file names; a user's own space must be
    passed (as a loaded space or its YAML path).
    """
    path = Path(path)
    data = read_json(path, "architecture file", ArchitectureError)
    arch = architecture_from_dict(data, str(path))
    space = space_of_file(path, arch.space_name, space, ArchitectureError)
    return validate(arch, space, str(path)), space


def random_architecture(space: SearchSpace, seed: int = 0) -> Architecture:
    """A uniformly random depth, op and width per block: baselines, tests and LUT checks."""
    rng = random.Random(seed)
    stages = []
    for s, spec in enumerate(space.stages):
        depth = rng.choice(list(spec.depths))
        choices = []
        for j in range(depth):
            op = rng.choice(spec.ops)
            block = space.block_spec(s, j, op)
            choices.append(BlockChoice(op, rng.randint(block.min_width, block.max_width)))
        stages.append(tuple(choices))
    return Architecture(space.name, space.hash, tuple(stages), {"origin": f"random, seed {seed}"})


def uniform_architecture(
    space: SearchSpace, op: OpSpec, depths: tuple[int, ...] | None = None, width: str = "nominal"
) -> Architecture:
    """Every block runs ``op`` at its ``nominal``, ``min`` or ``max`` width."""
    depths = depths or tuple(s.blocks for s in space.stages)
    stages = []
    for s, depth in enumerate(depths):
        choices = []
        for j in range(depth):
            block = space.block_spec(s, j, op)
            w = {"nominal": block.nominal_width, "min": block.min_width, "max": block.max_width}[
                width
            ]
            choices.append(BlockChoice(op, w))
        stages.append(tuple(choices))
    return validate(Architecture(space.name, space.hash, tuple(stages)), space)
