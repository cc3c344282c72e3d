"""Architecture files: the chosen depth, op and mid width of every block, as JSON.

An architecture names the space it belongs to by name and content hash, so that a file
derived from one version of a space is refused by another instead of silently building a
different network.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .block import BlockSpec, OpSpec
from .errors import ArchitectureError
from .io import atomic_write_json, read_json
from .space import SearchSpace, space_of_file

ARCH_FORMAT = "tfnas-architecture"
ARCH_VERSION = 1


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
    """Build an :class:`Architecture` from parsed JSON, checking its shape (not its space)."""

    def fail(where: str, reason: str) -> ArchitectureError:
        # JSON positions count from 0; the block is also said as every other message says
        # it, from 1
        found = re.match(r"stages\[(\d+)\](?:\.blocks\[(\d+)\])?", where)
        at = ""
        if found:
            stage, block = found.groups()
            at = f" (stage {int(stage) + 1}" + (f" block {int(block) + 1})" if block else ")")
        return ArchitectureError(f"{source}: field '{where}'{at} {reason}.")

    def unknown(obj: dict, known: tuple[str, ...], where: str) -> None:
        extra = sorted(set(obj) - set(known))
        if extra:
            raise fail(
                where or "(top level)",
                f"has unknown key(s) {', '.join(map(repr, extra))} (known: {', '.join(known)})",
            )

    if not isinstance(data, dict):
        raise ArchitectureError(f"{source}: must hold a JSON object, not {type(data).__name__}.")
    unknown(data, ("format", "version", "space", "stages", "info"), "")
    if data.get("format") != ARCH_FORMAT:
        raise fail("format", f"must be '{ARCH_FORMAT}', got {data.get('format')!r}")
    if data.get("version") != ARCH_VERSION:
        raise fail(
            "version",
            f"must be {ARCH_VERSION} (this tfnas reads version {ARCH_VERSION}), "
            f"got {data.get('version')!r}",
        )
    space = data.get("space")
    if not isinstance(space, dict) or not all(
        isinstance(space.get(k), str) for k in ("name", "hash")
    ):
        raise fail("space", "must be an object with string fields 'name' and 'hash'")
    stages_data = data.get("stages")
    if not isinstance(stages_data, list) or not stages_data:
        raise fail("stages", "must be a non-empty list")
    stages = []
    for s, stage in enumerate(stages_data):
        where = f"stages[{s}]"
        if not isinstance(stage, dict) or not isinstance(stage.get("blocks"), list):
            raise fail(where, "must be an object with a list 'blocks'")
        unknown(stage, ("depth", "blocks"), where)
        depth = stage.get("depth")
        if not _is_int(depth):
            raise fail(f"{where}.depth", f"must be an integer, got {depth!r}")
        if depth != len(stage["blocks"]):
            raise fail(
                f"{where}.depth", f"is {depth} but the stage lists {len(stage['blocks'])} blocks"
            )
        choices = []
        for j, block in enumerate(stage["blocks"]):
            bw = f"{where}.blocks[{j}]"
            if not isinstance(block, dict):
                raise fail(bw, "must be an object")
            unknown(block, ("kernel", "expansion", "se", "width"), bw)
            for key in ("kernel", "expansion", "width"):
                if not _is_int(block.get(key)):
                    raise fail(f"{bw}.{key}", f"must be an integer, got {block.get(key)!r}")
            if not isinstance(block.get("se", False), bool):
                raise fail(f"{bw}.se", f"must be true or false, got {block.get('se')!r}")
            op = OpSpec(block["kernel"], block["expansion"], block.get("se", False))
            choices.append(BlockChoice(op, block["width"]))
        stages.append(tuple(choices))
    info = data.get("info", {})
    if not isinstance(info, dict):
        raise fail("info", "must be an object")
    return Architecture(space["name"], space["hash"], tuple(stages), info)


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
