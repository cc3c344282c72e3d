"""Search spaces as data: load, validate and query a YAML space description.

A space says which stages, blocks and candidate ops exist; no other module hard-codes a
number of stages, ops, pixels or classes. The file format is documented in
``docs/search-space.md``; the built-in spaces live in ``tfnas/spaces/*.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .block import ACTIVATIONS, BlockSpec, OpSpec, conv_out_resolution
from .errors import SpaceError, TfnasError, named
from .io import DuplicateKey
from .options import IN_CHANNELS
from .text import text_table

STEM_KINDS = ("conv", "mbconv")


@dataclass(frozen=True)
class StemLayer:
    """A fixed (never searched) layer before the first stage."""

    kind: str
    out_channels: int
    kernel: int
    stride: int
    act: str
    expansion: int = 1
    se_channels: int = 0


@dataclass(frozen=True)
class StageSpec:
    """A stage: ``blocks`` MBConv blocks, the first one changing channels and stride."""

    out_channels: int
    blocks: int
    stride: int
    act: str
    ops: tuple[OpSpec, ...]
    min_depth: int = 1
    elastic: bool = True

    @property
    def depths(self) -> range:
        return range(self.min_depth, self.blocks + 1)


@dataclass(frozen=True)
class HeadSpec:
    """1x1 conv (``out_channels == 0``: none), global average pool, dropout, classifier."""

    out_channels: int
    act: str
    dropout: float


@dataclass(frozen=True)
class BlockPosition:
    """Where a searchable block sits: its stage, index in the stage and input geometry."""

    stage: int
    index: int
    resolution: int
    in_channels: int
    out_channels: int
    stride: int
    act: str


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space. Build it with :func:`load_space`."""

    name: str
    description: str
    input_size: int
    input_channels: int
    classes: int
    stem: tuple[StemLayer, ...]
    stages: tuple[StageSpec, ...]
    head: HeadSpec
    se_ratio: Fraction
    width_min: Fraction
    width_max: Fraction
    source: str = field(default="", compare=False)

    # -- identity ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The space in its canonical file form (every default filled in)."""
        return {
            "name": self.name,
            "description": self.description,
            "input": {"size": self.input_size, "channels": self.input_channels},
            "classes": self.classes,
            "stem": [_stem_to_dict(layer) for layer in self.stem],
            "se_ratio": _fraction_text(self.se_ratio),
            "mid_width": {
                "min": _fraction_text(self.width_min),
                "max": _fraction_text(self.width_max),
            },
            "stages": [
                {
                    "out": s.out_channels,
                    "blocks": s.blocks,
                    "stride": s.stride,
                    "act": s.act,
                    "min_depth": s.min_depth,
                    "elastic": s.elastic,
                    "ops": [op.to_dict() for op in s.ops],
                }
                for s in self.stages
            ],
            "head": {
                "out": self.head.out_channels,
                "act": self.head.act,
                "dropout": self.head.dropout,
            },
        }

    def summary(self) -> str:
        """The space as text: input, stem, every block position's depths, geometry, mid-width
        bounds and candidate ops, and the head (``tfnas space show``)."""
        lines = [f"space {self.name} (hash {self.hash}, from {self.source})"]
        if self.description:
            lines.append(self.description)
        lines.append(
            f"input {self.input_size}x{self.input_size}, {self.input_channels} channel(s); "
            f"{self.classes} classes by default"
        )
        for i, layer in enumerate(self.stem):
            res, ch = self.stem_geometry[i]
            extra = f" e{layer.expansion} se{layer.se_channels}" if layer.kind == "mbconv" else ""
            lines.append(
                f"stem {i + 1}: {layer.kind} k{layer.kernel}{extra} {ch}->{layer.out_channels} "
                f"s{layer.stride} {layer.act} @{res}px"
            )
        rows = []
        for s, stage in enumerate(self.stages):
            for pos in self.positions[s]:
                bounds: dict[str, str] = {}
                for b in self.candidates(s, pos.index):
                    bounds.setdefault(f"e{b.expansion}", f"{b.min_width}..{b.max_width}")
                first = pos.index == 0
                rows.append(
                    (
                        f"s{s + 1}.b{pos.index + 1}",
                        f"{stage.min_depth}..{stage.blocks}" if first else "",
                        pos.resolution,
                        f"{pos.in_channels}->{pos.out_channels}",
                        pos.stride,
                        pos.act,
                        ", ".join(f"{e} {w}" for e, w in bounds.items()),
                        " ".join(op.label for op in stage.ops) if first else "",
                    )
                )
        header = ("block", "depths", "res", "channels", "stride", "act", "mid-width bounds",
                  "candidate ops")  # fmt: skip
        lines.append(text_table(rows, header))
        head = self.head
        conv = (
            f"conv 1x1 {self.final_channels}->{head.out_channels} {head.act}, "
            if head.out_channels
            else ""
        )
        lines.append(f"head: {conv}avg pool, dropout {head.dropout}, linear")
        return "\n".join(lines)

    @cached_property
    def hash(self) -> str:
        """Hash of the structure (not the name or description): detects a changed space."""
        content = self.to_dict()
        del content["name"], content["description"]
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- geometry ---------------------------------------------------------------------------
    @cached_property
    def stem_geometry(self) -> tuple[tuple[int, int], ...]:
        """(input resolution, input channels) of every stem layer, then of stage 1."""
        res, ch = self.input_size, self.input_channels
        out = [(res, ch)]
        for layer in self.stem:
            res, ch = conv_out_resolution(res, layer.kernel, layer.stride), layer.out_channels
            out.append((res, ch))
        return tuple(out)

    @cached_property
    def positions(self) -> tuple[tuple[BlockPosition, ...], ...]:
        """Every searchable block position, per stage, at the stage's full depth."""
        res, ch = self.stem_geometry[-1]
        stages = []
        for s, stage in enumerate(self.stages):
            blocks = []
            for j in range(stage.blocks):
                stride = stage.stride if j == 0 else 1
                blocks.append(BlockPosition(s, j, res, ch, stage.out_channels, stride, stage.act))
                # Kernels are odd, so the output size does not depend on the chosen op.
                res, ch = conv_out_resolution(res, 3, stride), stage.out_channels
            stages.append(tuple(blocks))
        return tuple(stages)

    @property
    def final_resolution(self) -> int:
        last = self.positions[-1][-1]
        return conv_out_resolution(last.resolution, 3, last.stride)

    @property
    def final_channels(self) -> int:
        return self.stages[-1].out_channels

    def iter_positions(self) -> Iterator[BlockPosition]:
        for stage in self.positions:
            yield from stage

    # -- block identities -------------------------------------------------------------------
    def block_spec(self, stage: int, index: int, op: OpSpec) -> BlockSpec:
        """The identity of block ``index`` of ``stage`` running ``op``."""
        pos = self.positions[stage][index]
        if op not in self.stages[stage].ops:
            raise SpaceError(
                f"op {op.label} is not a candidate of stage {stage + 1} of space '{self.name}' "
                f"(candidates: {', '.join(o.label for o in self.stages[stage].ops)})."
            )
        nominal = op.expansion * pos.in_channels
        if op.expansion == 1:
            low = high = nominal
        elif self.stages[stage].elastic:
            low, high = _round(self.width_min * nominal), _round(self.width_max * nominal)
        else:
            low = high = nominal
        se = max(1, _round(self.se_ratio * nominal)) if op.se else 0
        return BlockSpec(
            resolution=pos.resolution,
            in_channels=pos.in_channels,
            out_channels=pos.out_channels,
            stride=pos.stride,
            act=pos.act,
            kernel=op.kernel,
            expansion=op.expansion,
            se_channels=se,
            min_width=max(1, low),
            max_width=max(1, high),
            nominal_width=nominal,
        )

    def candidates(self, stage: int, index: int) -> tuple[BlockSpec, ...]:
        return tuple(self.block_spec(stage, index, op) for op in self.stages[stage].ops)

    def stem_block_spec(self, layer_index: int) -> BlockSpec:
        """The identity of a fixed MBConv stem layer (its width is pinned)."""
        layer = self.stem[layer_index]
        res, ch = self.stem_geometry[layer_index]
        mid = layer.expansion * ch
        return BlockSpec(
            res,
            ch,
            layer.out_channels,
            layer.stride,
            layer.act,
            layer.kernel,
            layer.expansion,
            layer.se_channels,
            mid,
            mid,
            mid,
        )

    def all_block_specs(self) -> list[BlockSpec]:
        """Every distinct searchable block identity of the space (what a latency table holds)."""
        seen: dict[BlockSpec, None] = {}
        for pos in self.iter_positions():
            for spec in self.candidates(pos.stage, pos.index):
                seen.setdefault(spec)
        return list(seen)


# -- loading ----------------------------------------------------------------------------------

BUILTIN_SPACES = ("tfnas-imagenet", "tfnas-small")


def builtin_space_names() -> tuple[str, ...]:
    return BUILTIN_SPACES


def builtin_spaces_report() -> str:
    """The built-in spaces side by side, then each one's description (``tfnas spaces``)."""
    spaces = [load_space(name) for name in BUILTIN_SPACES]
    rows = [
        (s.name, f"{s.input_size}px x{s.input_channels}", len(s.stages),
         sum(st.blocks for st in s.stages), len(s.stages[0].ops), s.hash)
        for s in spaces
    ]  # fmt: skip
    lines = [text_table(rows, ("space", "input", "stages", "blocks", "ops", "hash"))]
    lines += [f"\n{s.name}: {s.description}" for s in spaces]
    lines.append(
        "\nA YAML file of your own works wherever a space name does (tfnas space show FILE)."
    )
    return "\n".join(lines)


def space_of_file(
    path: str | Path,
    space_name: str,
    given: SearchSpace | str | Path | None,
    error: type[TfnasError],
) -> SearchSpace:
    """The space of a file (an architecture, a latency table) at ``path`` that names space
    ``space_name``: ``given`` (loaded, or a name or YAML file), else the built-in space of
    that name; a space that is not built in must be given, else ``error`` says so."""
    if isinstance(given, SearchSpace):
        return given
    if given is not None:
        return load_space(given)
    try:
        return load_space(space_name)
    except TfnasError:
        raise error(
            f"{path}: belongs to space '{space_name}', which is not built in; pass its YAML "
            f"file as {named('space')}."
        ) from None


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Load a built-in space by name, or a user's YAML file by path."""
    text_name = str(name_or_path)
    if text_name in BUILTIN_SPACES:
        resource = resources.files("tfnas") / "spaces" / f"{text_name}.yaml"
        return parse_space(
            resource.read_text(encoding="utf-8"), source=f"built-in space {text_name}"
        )
    path = Path(name_or_path)
    if not path.is_file():
        raise SpaceError(
            f"'{text_name}' is neither a built-in space ({', '.join(BUILTIN_SPACES)}) "
            "nor an existing YAML file."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"{path}: cannot be read ({exc}).") from exc
    return parse_space(text, source=str(path))


# Bounds of a space's numbers: far beyond any network trained or timed on one machine, so
# that a typo (an extra zero or three) is refused on load, not by an allocation later.
LIMITS = {"pixels": 4096, "classes": 100_000, "channels": 16_384, "blocks": 64, "count": 1024}


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that names a key twice."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue  # an odd key: the parser that reads the mapping says what is wrong
            if key in seen:
                raise DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_space(text: str, source: str = "<string>") -> SearchSpace:
    """Parse and validate a space from YAML text; errors name ``source`` and the field."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except DuplicateKey as exc:
        key, line = exc.args
        raise SpaceError(
            f"{source}: names {key!r} twice in one mapping (line {line}); YAML keeps the "
            "last silently, tfnas refuses to guess: keep one."
        ) from None
    except RecursionError:
        raise SpaceError(f"{source}: nests deeper than any search space does.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpaceError(f"{source}: is not valid YAML{where}.") from exc
    return _SpaceParser(source).space(data)


class _SpaceParser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, reason: str) -> SpaceError:
        # list positions count from 0 in the field's path; the stage is also said from 1,
        # as every other message says it
        found = re.match(r"(stages|stem)\[(\d+)\]", where)
        at = ""
        if found:
            kind, index = found.groups()
            at = f" ({'stage' if kind == 'stages' else 'stem layer'} {int(index) + 1})"
        return SpaceError(f"{self.source}: field '{where}'{at} {reason}.")

    # typed field readers --------------------------------------------------------------
    def mapping(self, data: Any, where: str, known: tuple[str, ...], required: tuple[str, ...]):
        if not isinstance(data, dict):
            raise self.fail(where or "(top level)", f"must be a mapping, got {_show(data)}")
        for key in data:
            if key not in known:
                raise self.fail(
                    _join(where, str(key)), f"is unknown (known fields: {', '.join(known)})"
                )
        for key in required:
            if key not in data:
                raise self.fail(_join(where, key), "is missing")
        return data

    def integer(
        self,
        data: dict,
        key: str,
        where: str,
        low: int = 1,
        default: Any = None,
        high: int = LIMITS["count"],
    ) -> int:
        value = data.get(key, default)
        path = _join(where, key)
        if value is None:
            raise self.fail(path, "is missing")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"must be an integer, got {_show(value)}")
        if value < low:
            raise self.fail(path, f"must be at least {low}, got {value}")
        if value > high:
            raise self.fail(
                path, f"must be at most {high} (no network of more is built here), got {value}"
            )
        return value

    def boolean(self, data: dict, key: str, where: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(_join(where, key), f"must be true or false, got {_show(value)}")
        return value

    def act(self, data: dict, key: str, where: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if value not in ACTIVATIONS:
            raise self.fail(
                _join(where, key), f"must be one of {', '.join(ACTIVATIONS)}, got {_show(value)}"
            )
        return value

    def kernel(self, data: dict, key: str, where: str, default: Any = None) -> int:
        value = self.integer(data, key, where, default=default)
        if value % 2 == 0:
            raise self.fail(_join(where, key), f"must be an odd kernel size, got {value}")
        return value

    def fraction(self, data: dict, key: str, where: str, default: Any) -> Fraction:
        value = data.get(key, default)
        path = _join(where, key)
        try:
            if isinstance(value, bool):
                raise ValueError
            result = Fraction(str(value)) if isinstance(value, float) else Fraction(value)
        except (TypeError, ValueError, ZeroDivisionError):
            raise self.fail(
                path, f"must be a number or a fraction like 2/3, got {_show(value)}"
            ) from None
        if result <= 0:
            raise self.fail(path, f"must be positive, got {value}")
        return result

    def string(self, data: dict, key: str, where: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(_join(where, key), f"must be a non-empty string, got {_show(value)}")
        return value

    # the document ---------------------------------------------------------------------
    def space(self, data: Any) -> SearchSpace:
        if isinstance(data, dict) and "hash" in data:
            # `tfnas space show --json` writes the hash beside the fields; it is recomputed
            data = {k: v for k, v in data.items() if k != "hash"}
        top = self.mapping(
            data,
            "",
            (
                "name",
                "description",
                "input",
                "classes",
                "stem",
                "ops",
                "se_ratio",
                "mid_width",
                "stages",
                "head",
            ),
            ("name", "input", "stages", "head"),
        )
        name = self.string(top, "name", "")
        description = top.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"must be a string, got {_show(description)}")
        inp = self.mapping(top["input"], "input", ("size", "channels"), ("size",))
        size = self.integer(inp, "size", "input", high=LIMITS["pixels"])
        channels = self.integer(inp, "channels", "input", default=3)
        if channels not in IN_CHANNELS:
            raise self.fail("input.channels", f"must be 1 (grayscale) or 3 (RGB), got {channels}")
        classes = self.integer(top, "classes", "", default=1000, high=LIMITS["classes"])
        stem = self.stem(top.get("stem", []))
        ops = self.ops(top["ops"], "ops") if "ops" in top else None
        se_ratio = self.fraction(top, "se_ratio", "", default="1/4")
        width = self.mapping(top.get("mid_width", {}), "mid_width", ("min", "max"), ())
        width_min = self.fraction(width, "min", "mid_width", default=1)
        width_max = self.fraction(width, "max", "mid_width", default=1)
        if not width_min <= 1 <= width_max:
            raise self.fail(
                "mid_width",
                f"must satisfy min <= 1 <= max so that the nominal width expansion x in lies "
                f"within the bounds, got min {width_min} and max {width_max}",
            )
        stages_data = top["stages"]
        if not isinstance(stages_data, list) or not stages_data:
            raise self.fail("stages", f"must be a non-empty list, got {_show(stages_data)}")
        stages = tuple(self.stage(s, f"stages[{i}]", ops) for i, s in enumerate(stages_data))
        head_data = self.mapping(top["head"], "head", ("out", "act", "dropout"), ())
        head_out = self.integer(head_data, "out", "head", low=0, default=0, high=LIMITS["channels"])
        dropout = head_data.get("dropout", 0.0)
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, int | float)
            or not 0 <= dropout < 1
        ):
            raise self.fail("head.dropout", f"must be a number in [0, 1), got {_show(dropout)}")
        head = HeadSpec(
            head_out, self.act(head_data, "act", "head", default="relu"), float(dropout)
        )
        return SearchSpace(
            name=name,
            description=description.strip(),
            input_size=size,
            input_channels=channels,
            classes=classes,
            stem=stem,
            stages=stages,
            head=head,
            se_ratio=se_ratio,
            width_min=width_min,
            width_max=width_max,
            source=self.source,
        )

    def stem(self, data: Any) -> tuple[StemLayer, ...]:
        if not isinstance(data, list):
            raise self.fail("stem", f"must be a list of layers, got {_show(data)}")
        layers = []
        for i, item in enumerate(data):
            where = f"stem[{i}]"
            fields = self.mapping(
                item,
                where,
                ("type", "out", "kernel", "stride", "act", "expansion", "se_channels"),
                ("type", "out"),
            )
            kind = fields["type"]
            if kind not in STEM_KINDS:
                raise self.fail(
                    f"{where}.type", f"must be one of {', '.join(STEM_KINDS)}, got {_show(kind)}"
                )
            extra_ok = kind == "mbconv"
            if not extra_ok and ("expansion" in fields or "se_channels" in fields):
                raise self.fail(where, "is a plain conv and cannot have expansion or se_channels")
            layers.append(
                StemLayer(
                    kind=kind,
                    out_channels=self.integer(fields, "out", where, high=LIMITS["channels"]),
                    kernel=self.kernel(fields, "kernel", where, default=3),
                    stride=self.integer(fields, "stride", where, default=1),
                    act=self.act(fields, "act", where, default="relu"),
                    expansion=self.integer(fields, "expansion", where, default=1),
                    se_channels=self.integer(fields, "se_channels", where, low=0, default=0),
                )
            )
        return tuple(layers)

    def ops(self, data: Any, where: str) -> tuple[OpSpec, ...]:
        """Either a grid ``{kernel: [...], expansion: [...], se: [...]}`` or a list of ops."""
        if isinstance(data, dict):
            grid = self.mapping(data, where, ("kernel", "expansion", "se"), ("kernel", "expansion"))
            values: dict[str, list[Any]] = {}
            for key, default in (("kernel", None), ("expansion", None), ("se", [False])):
                raw = grid.get(key, default)
                if not isinstance(raw, list) or not raw:
                    raise self.fail(
                        _join(where, key), f"must be a non-empty list, got {_show(raw)}"
                    )
                values[key] = raw
            items = [
                {"kernel": k, "expansion": e, "se": se}
                for se in values["se"]
                for k in values["kernel"]
                for e in values["expansion"]
            ]
            # Report problems against the grid's own field, not a synthetic list index.
            ops = [self.op(item, where, grid_form=True) for item in items]
        elif isinstance(data, list) and data:
            ops = [self.op(item, f"{where}[{i}]") for i, item in enumerate(data)]
        else:
            raise self.fail(
                where, f"must be a grid mapping or a non-empty list of ops, got {_show(data)}"
            )
        if len(set(ops)) != len(ops):
            raise self.fail(where, "lists the same op twice")
        return tuple(ops)

    def op(self, item: Any, where: str, grid_form: bool = False) -> OpSpec:
        fields = self.mapping(item, where, ("kernel", "expansion", "se"), ("kernel", "expansion"))
        if grid_form:
            # Name the list that holds the bad value.
            for key in ("kernel", "expansion"):
                value = fields[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise self.fail(
                        f"{where}.{key}", f"must list positive integers, got {_show(value)}"
                    )
        kernel = self.kernel(fields, "kernel", where)
        expansion = self.integer(fields, "expansion", where)
        se = self.boolean(fields, "se", where, default=False)
        return OpSpec(kernel, expansion, se)

    def stage(self, data: Any, where: str, default_ops: tuple[OpSpec, ...] | None) -> StageSpec:
        fields = self.mapping(
            data,
            where,
            ("out", "blocks", "stride", "act", "ops", "min_depth", "elastic"),
            ("out", "blocks"),
        )
        blocks = self.integer(fields, "blocks", where, high=LIMITS["blocks"])
        min_depth = self.integer(fields, "min_depth", where, default=1)
        if min_depth > blocks:
            raise self.fail(
                f"{where}.min_depth", f"must be at most blocks ({blocks}), got {min_depth}"
            )
        if "ops" in fields:
            ops = self.ops(fields["ops"], f"{where}.ops")
        elif default_ops is None:
            raise self.fail(f"{where}.ops", "is missing and the space gives no top-level ops")
        else:
            ops = default_ops
        return StageSpec(
            out_channels=self.integer(fields, "out", where, high=LIMITS["channels"]),
            blocks=blocks,
            stride=self.integer(fields, "stride", where, default=1),
            act=self.act(fields, "act", where, default="relu"),
            ops=ops,
            min_depth=min_depth,
            elastic=self.boolean(fields, "elastic", where, default=True),
        )


def _round(value: Fraction) -> int:
    """Round half up, exactly (no float error on ratios like 2/3)."""
    return math.floor(value + Fraction(1, 2))


def _fraction_text(value: Fraction) -> int | str:
    return value.numerator if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _stem_to_dict(layer: StemLayer) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": layer.kind,
        "out": layer.out_channels,
        "kernel": layer.kernel,
        "stride": layer.stride,
        "act": layer.act,
    }
    if layer.kind == "mbconv":
        out.update(expansion=layer.expansion, se_channels=layer.se_channels)
    return out


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
