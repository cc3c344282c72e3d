"""The latency lookup table: per block identity, latency at measured mid widths (knots).

Lookups interpolate linearly between knots of a monotone (non-decreasing in width) fit of the
measurements, so a wider block is never predicted faster than a narrower one. A prediction is
``base + sum of the present blocks' latencies``, less the per-call overhead a network does
not pay once per block where the table applies one (``meta["call_overhead"]``), then the
table's calibration (``scale * sum + per_block * blocks + offset``, fitted on whole-network
measurements), if it has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..arch import Architecture, BlockChoice
from ..block import BlockSpec
from ..errors import SettingError, TfnasError
from ..io import atomic_write_json, read_json
from ..space import SearchSpace, space_of_file
from .table_schema import LUT_FORMAT, LUT_VERSION, validate_table_file

# how a table's predictions take the cost of separate calls off (LatencyTable.overhead_model)
OVERHEAD_MODELS = ("none", "call", "intercepts")


class LatencyTableError(TfnasError):
    """A latency table that cannot be used."""


@dataclass(frozen=True)
class Calibration:
    """``measured ~ scale * predicted + per_block_ms * blocks + offset_ms``, fitted on whole
    networks. The per-block term is what a network pays per block beyond the sum of its
    blocks' separate timings (negative where a runtime runs a whole network as one call and
    a table charges the call's cost to every block); 0 where the fit did not need it."""

    scale: float = 1.0
    offset_ms: float = 0.0
    archs: int = 0
    per_block_ms: float = 0.0

    def apply(self, ms: Any, blocks: Any = 0) -> Any:
        return self.scale * ms + self.per_block_ms * blocks + self.offset_ms

    def describe(self) -> str:
        per_block = f" {self.per_block_ms * 1000:+.1f} us per block" if self.per_block_ms else ""
        return f"measured = {self.scale:.4f} x predicted{per_block} {self.offset_ms:+.4f} ms"

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "offset_ms": self.offset_ms, "archs": self.archs,
                "per_block_ms": self.per_block_ms}  # fmt: skip


@dataclass
class LatencyTable:
    space_name: str
    space_hash: str
    device: dict[str, Any]
    statistic: str
    base_ms: float
    entries: dict[str, dict[int, float]]
    calibration: Calibration | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    # -- lookups ------------------------------------------------------------------------------
    @cached_property
    def _curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        curves = {}
        for key, knots in self.entries.items():
            widths = np.array(sorted(knots), dtype=np.float64)
            values = np.array([knots[int(w)] for w in widths], dtype=np.float64)
            curves[key] = (widths, monotone_fit(values))
        return curves

    def block_ms(self, spec: BlockSpec, width: float) -> float:
        """Uncalibrated latency of ``spec`` at mid width ``width`` (interpolated)."""
        try:
            widths, values = self._curves[spec.lut_key]
        except KeyError:
            raise LatencyTableError(
                f"the latency table has no entry {spec.lut_key}; build it for this space."
            ) from None
        if not widths[0] <= width <= widths[-1]:
            raise LatencyTableError(
                f"width {width} of {spec.lut_key} lies outside the table's knots "
                f"{int(widths[0])}..{int(widths[-1])}."
            )
        return float(np.interp(width, widths, values))

    @property
    def overhead_model(self) -> str:
        """How the table's predictions take the cost of separate calls off (a network is one
        call, not one per part): ``none``; ``call``, the cost of a call that does no work,
        off every part; ``intercepts``, every entry's own fixed cost (the intercept of a
        line through its widths: the call, its input and output, the work no width changes)
        off every block. Chosen at the build (:func:`~tfnas.latency.jobs.call_overhead_record`)."""
        record = self.meta.get("call_overhead")
        if not isinstance(record, dict):
            return "none"
        return str(record.get("model") or ("call" if record.get("applied") else "none"))

    def overhead_models(self) -> tuple[str, ...]:
        """The overhead models this table can predict with, its own first (only ``none``
        for a table that timed no empty call)."""
        if not isinstance(self.meta.get("call_overhead"), dict):
            return ("none",)
        own = self.overhead_model
        return (own, *(m for m in OVERHEAD_MODELS if m != own))

    def with_overhead_model(self, model: str) -> LatencyTable:
        """This table predicting with overhead ``model`` (one of :meth:`overhead_models`)."""
        if model == self.overhead_model:
            return self
        record = {**self.meta["call_overhead"], "model": model, "applied": model != "none"}
        return replace(self, meta={**self.meta, "call_overhead": record})

    @property
    def call_overhead_ms(self) -> float:
        """What one separately timed call cost beyond its work, where the predictions take
        it off; else 0."""
        applied = self.overhead_model != "none"
        return float(self.meta["call_overhead"]["ms"]) if applied else 0.0

    @cached_property
    def entry_intercepts(self) -> dict[str, float]:
        """Per entry, the fixed cost of a separately timed call of it: the intercept of a
        least-squares line through its knots, within 0 and its smallest latency."""
        out = {}
        for key, knots in self.entries.items():
            widths = np.array(sorted(knots), dtype=np.float64)
            values = np.array([knots[int(w)] for w in widths], dtype=np.float64)
            fixed = np.polyfit(widths, values, 1)[1] if len(widths) > 1 else 0.0
            out[key] = float(np.clip(fixed, 0.0, values.min()))
        return out

    @property
    def network_base_ms(self) -> float:
        """The stem and head as a network runs them: two separate calls' costs, less one."""
        return self.base_ms - self.call_overhead_ms

    def network_block_ms(self, spec: BlockSpec, width: float) -> float:
        """A block's latency inside a network: its separate timing less what the table's
        overhead model takes off it."""
        model = self.overhead_model
        if model == "intercepts":
            return self.block_ms(spec, width) - self.entry_intercepts[spec.lut_key]
        return self.block_ms(spec, width) - (self.call_overhead_ms if model == "call" else 0.0)

    def block_cost_ms(self, spec: BlockSpec, width: float) -> float:
        """What a block adds to a prediction before the calibration's scale and offset: its
        latency inside a network and the calibration's per-block term, scaled back. The
        search's expected latency and its projection count blocks by this."""
        cal = self.calibration
        per_block = cal.per_block_ms / cal.scale if cal and cal.per_block_ms else 0.0
        return self.network_block_ms(spec, width) + per_block

    def raw_predict(self, space: SearchSpace, arch: Architecture) -> float:
        """Sum of base and blocks (less the call overhead where applied), uncalibrated."""
        self.check_space(space)
        blocks = sum(self.network_block_ms(spec, w) for _, _, spec, w in arch.blocks(space))
        return self.network_base_ms + blocks

    def predict(self, space: SearchSpace, arch: Architecture) -> float:
        """Predicted latency in ms of ``arch``, calibrated when the table has a calibration."""
        blocks = sum(1 for _ in arch.blocks(space))
        return self.calibrated(self.raw_predict(space, arch), blocks)

    def calibrated(self, raw_ms: Any, blocks: Any = 0) -> Any:
        return self.calibration.apply(raw_ms, blocks) if self.calibration else raw_ms

    def expected_latency(
        self,
        space: SearchSpace,
        op_probs: Sequence[Sequence[torch.Tensor]],
        depth_probs: Sequence[torch.Tensor],
        widths: Sequence[Sequence[Sequence[int]]],
    ) -> torch.Tensor:
        """Differentiable expected latency of a supernet (docs/method.md section 1).

        ``op_probs[s][b]`` weights the candidate ops of block ``b`` of stage ``s``,
        ``depth_probs[s]`` the stage's admissible depths (``stage.depths``, shallowest first),
        and ``widths[s][b][i]`` is op ``i``'s current mid width there; a probability beyond
        the candidates (the skip choice of the skip-op ablation) costs nothing. Gradients flow
        to the probabilities; widths are discrete and change by elasticity-scaling only.
        """
        self.check_space(space)
        first = op_probs[0][0]
        choices = [[len(p) for p in stage] for stage in op_probs]
        lookup = self._op_latencies(space, widths, choices, first.device, first.dtype)
        stages = []
        for s, (latencies, depths) in enumerate(lookup):
            block_lat = torch.stack(
                [(p * lat).sum() for p, lat in zip(op_probs[s], latencies, strict=True)]
            )
            stages.append((depth_probs[s] * torch.cumsum(block_lat, 0)[depths]).sum())
        return self.calibrated(torch.stack(stages).sum() + self.network_base_ms)

    def _op_latencies(self, space, widths, choices, device, dtype):
        """Per stage: each block's op latencies and the stage's depth indices, as tensors on
        ``device``. Looked up and copied once per set of widths (they change only by
        elasticity-scaling), so an architecture step neither interpolates nor waits for a
        host-to-device copy."""
        key = (space.hash, _frozen(widths), _frozen(choices), str(device), dtype)
        cached = self.__dict__.get("_op_latency_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        values, sizes, depths = [], [], []
        for s, stage in enumerate(space.stages):
            for b in range(stage.blocks):
                specs = space.candidates(s, b)
                # with the per-block term in every op's cost, the expected count of blocks
                # is in the expected latency, differentiably
                row = [self.block_cost_ms(spec, widths[s][b][i]) for i, spec in enumerate(specs)]
                row += [0.0] * (choices[s][b] - len(row))  # a 'skip' choice costs nothing
                values += row
                sizes.append(len(row))
            depths += [d - 1 for d in stage.depths]
        latencies = torch.tensor(values, dtype=torch.float64)  # one copy of each to the device
        latencies = latencies.to(device=device, dtype=dtype, non_blocking=True).split(sizes)
        indices = torch.tensor(depths).to(device, non_blocking=True)
        indices = indices.split([len(stage.depths) for stage in space.stages])
        lookup, at = [], 0
        for stage, stage_depths in zip(space.stages, indices, strict=True):
            lookup.append((list(latencies[at : at + stage.blocks]), stage_depths))
            at += stage.blocks
        self.__dict__["_op_latency_cache"] = (key, lookup)
        return lookup

    def check_space(self, space: SearchSpace) -> None:
        if (self.space_name, self.space_hash) != (space.name, space.hash):
            raise LatencyTableError(
                f"the latency table was built for space '{self.space_name}' (hash "
                f"{self.space_hash}), not for space '{space.name}' (hash {space.hash})."
            )

    def knots(self, spec: BlockSpec) -> list[int]:
        """The widths the table measured for ``spec``'s entry, within the op's bounds."""
        measured = self.entries.get(spec.lut_key, {})
        knots = sorted(w for w in measured if spec.min_width <= w <= spec.max_width)
        return knots or [spec.min_width, spec.max_width]

    def on_knots(self, space: SearchSpace, arch: Architecture) -> Architecture:
        """``arch`` with every width moved to the nearest width the table measured."""
        stages = []
        for s, stage in enumerate(arch.stages):
            chosen = []
            for j, choice in enumerate(stage):
                knots = self.knots(space.block_spec(s, j, choice.op))
                width = min(knots, key=lambda w: (abs(w - choice.width), w))
                chosen.append(BlockChoice(choice.op, width))
            stages.append(tuple(chosen))
        return Architecture(arch.space_name, arch.space_hash, tuple(stages), dict(arch.info))

    def check_entries(self, space: SearchSpace, source: str) -> None:
        """Refuse a table that cannot price every network of ``space``: a block without an
        entry, knots that do not reach a block's width bounds, or a latency within the
        bounds that is not positive (a broken measurement that would move the feasible
        range and the search's target). Knots outside the bounds are never used."""
        for spec in space.all_block_specs():
            knots = self.entries.get(spec.lut_key)
            if knots is None:
                raise LatencyTableError(
                    f"{source}: has no entry {spec.lut_key}, a block of space '{space.name}'; "
                    "build the table again for this space."
                )
            low, high = spec.min_width, spec.max_width
            if min(knots) > low or max(knots) < high:
                raise LatencyTableError(
                    f"{source}: entry {spec.lut_key} covers widths {min(knots)}..{max(knots)}, "
                    f"not the block's bounds {low}..{high}; build the table again."
                )
            for width, ms in sorted(knots.items()):
                if low <= width <= high and ms <= 0:
                    raise LatencyTableError(
                        f"{source}: entry {spec.lut_key} has latency {ms:g} ms at width "
                        f"{width}, within the block's bounds {low}..{high}; a latency must be "
                        "positive (remeasure the block, or build the table again)."
                    )

    # -- files --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": LUT_FORMAT,
            "version": LUT_VERSION,
            "space": {"name": self.space_name, "hash": self.space_hash},
            "device": self.device,
            "statistic": self.statistic,
            "unit": "ms",
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "meta": self.meta,
            "base": self.base_ms,
            "entries": {
                key: {str(w): ms for w, ms in sorted(knots.items())}
                for key, knots in sorted(self.entries.items())
            },
        }

    def describe(self) -> str:
        """What the table holds, in one line: entries, space, base, device."""
        device = self.device.get("gpu") or self.device.get("name") or self.device.get("cpu")
        return (
            f"{len(self.entries)} block entries of space {self.space_name}, base "
            f"{self.base_ms:.3f} ms, device {device or self.device.get('device', 'unknown')}"
        )

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    def with_calibration(self, calibration: Calibration | None) -> LatencyTable:
        return LatencyTable(
            self.space_name,
            self.space_hash,
            self.device,
            self.statistic,
            self.base_ms,
            self.entries,
            calibration,
            self.meta,
        )


def _frozen(nested: Any) -> Any:
    """Nested sequences as nested tuples (a hashable cache key)."""
    if isinstance(nested, list | tuple):
        return tuple(_frozen(x) for x in nested)
    return nested


def latency(space: SearchSpace, arch: Architecture, table: LatencyTable) -> float:
    """Predicted latency in ms of ``arch``: base + blocks (+ the table's calibration)."""
    return table.predict(space, arch)


def monotone_fit(values: np.ndarray) -> np.ndarray:
    """Least-squares non-decreasing fit (pool adjacent violators): noise cannot make a wider
    block look faster than a narrower one."""
    blocks: list[list[float]] = []  # [mean, weight]
    for v in values:
        blocks.append([float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    return np.concatenate([np.full(int(w), m) for m, w in blocks])


def load_table(path: str | Path, space: SearchSpace | None = None) -> LatencyTable:
    """Read a latency table; with ``space``, refuse a table of another space."""
    path = Path(path)
    data = read_json(path, "latency table", LatencyTableError)
    table = table_from_dict(data, str(path))
    if space is not None:
        try:
            table.check_space(space)
        except LatencyTableError as exc:
            raise LatencyTableError(f"{path}: {exc}") from None
        table.check_entries(space, str(path))
    return table


def load_table_and_space(
    path: str | Path, space: SearchSpace | str | None = None
) -> tuple[LatencyTable, SearchSpace]:
    """A latency table and the space it belongs to: ``space`` (a name or YAML file), else
    the built-in space the table names; the two are checked to fit."""
    table = load_table(path)
    space = space_of_file(path, table.space_name, space, LatencyTableError)
    try:
        table.check_space(space)
    except LatencyTableError as exc:
        raise LatencyTableError(f"{path}: {exc}") from None
    table.check_entries(space, str(path))
    return table, space


def table_from_dict(data: Any, source: str) -> LatencyTable:
    """The table a file's JSON holds, checked by its declared schema
    (:mod:`tfnas.latency.table_schema`) first."""
    record = validate_table_file(data, source, LatencyTableError)
    cal = record.calibration
    return LatencyTable(
        record.space.name,
        record.space.hash,
        dict(record.device),
        record.statistic,
        record.base,
        {key: {int(w): ms for w, ms in knots.items()} for key, knots in record.entries.items()},
        None if cal is None else Calibration(cal.scale, cal.offset_ms, cal.archs, cal.per_block_ms),
        dict(data.get("meta") or {}),  # as written: the fields the schema leaves open kept
    )


# -- the feasible range -------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyRange:
    fastest_ms: float
    slowest_ms: float
    fastest: Architecture
    slowest: Architecture
    space: str = ""
    calibrated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "fastest_ms": self.fastest_ms,
            "slowest_ms": self.slowest_ms,
            "calibrated": self.calibrated,
            "fastest": self.fastest.to_dict(),
            "slowest": self.slowest.to_dict(),
        }

    def report(self, table_name: str) -> str:
        return (
            f"feasible latency range of {self.space} on {table_name}: "
            f"{self.fastest_ms:.2f} to {self.slowest_ms:.2f} ms"
            + (" (calibrated)" if self.calibrated else "")
            + f"\nfastest: {self.fastest.describe()}\nslowest: {self.slowest.describe()}"
        )


def latency_range(space: SearchSpace, table: LatencyTable) -> LatencyRange:
    """The fastest and slowest architectures reachable within the width bounds.

    Per block, the extreme op at its extreme width; per stage, the depth whose cumulative
    latency is extreme (the first block is always present).
    """
    table.check_space(space)

    def extreme(pick_slowest: bool) -> Architecture:
        stages = []
        for s, stage in enumerate(space.stages):
            chosen, cumulative = [], []
            for b in range(stage.blocks):
                options = []
                for spec in space.candidates(s, b):
                    width = spec.max_width if pick_slowest else spec.min_width
                    options.append((table.block_cost_ms(spec, width), BlockChoice(spec.op, width)))
                ms, choice = (max if pick_slowest else min)(options, key=lambda o: o[0])
                chosen.append(choice)
                cumulative.append((cumulative[-1] if cumulative else 0.0) + ms)
            depth = (max if pick_slowest else min)(stage.depths, key=lambda d: cumulative[d - 1])
            stages.append(tuple(chosen[:depth]))
        return Architecture(
            space.name,
            space.hash,
            tuple(stages),
            {"origin": "slowest" if pick_slowest else "fastest"},
        )

    fastest, slowest = extreme(False), extreme(True)
    return LatencyRange(
        table.predict(space, fastest),
        table.predict(space, slowest),
        fastest,
        slowest,
        space.name,
        table.calibration is not None,
    )


def check_target(space: SearchSpace, table: LatencyTable, target_ms: float) -> tuple[float, float]:
    """Refuse a target outside the space's feasible range on this table, naming the range."""
    r = latency_range(space, table)
    if not r.fastest_ms <= target_ms <= r.slowest_ms:
        raise LatencyTableError(
            f"target {target_ms:.6g} ms is outside the feasible latency range of space "
            f"'{space.name}' on this table, {r.fastest_ms:.6g} to {r.slowest_ms:.6g} ms; "
            "choose a target within it."
        )
    return r.fastest_ms, r.slowest_ms


def target_at_fraction(space: SearchSpace, table: LatencyTable, fraction: float) -> float:
    """The latency (ms, 4 decimals, rounded into the range: fractions 0 and 1 are the
    fastest and the slowest themselves) ``fraction`` of the way from the fastest to the
    slowest architecture of ``space`` on ``table``."""
    if not 0 <= fraction <= 1:
        raise SettingError("target_fraction", f"must lie in [0, 1], got {fraction}.")
    r = latency_range(space, table)
    target = round(r.fastest_ms + fraction * (r.slowest_ms - r.fastest_ms), 4)
    return min(max(target, r.fastest_ms), r.slowest_ms)
