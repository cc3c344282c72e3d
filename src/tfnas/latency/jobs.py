"""What a latency table is measured from: the jobs (stem, head, the reference network, every
block identity at its sampled widths), the module each job times, and the table made from
one latency per job.

Every distinct block identity is measured at sampled mid widths (every ``width_step``
channels plus the bounds of each op that uses it); lookups interpolate between them. The
in-process build (:mod:`.build`), the carried plan (:mod:`.plan`) and the external runner
(:mod:`.external`) all measure these jobs and make their tables here, so the three routes
agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from ..block import BlockSpec
from ..errors import SettingError
from ..nn.blocks import MBConv
from ..nn.network import Head, Network, build_stem
from ..space import SearchSpace
from .drift import reference_architecture, reference_record
from .table import OVERHEAD_MODELS, LatencyTable

REFERENCE_JOB = "reference"
# a call that does no work: what every separately timed call costs beyond its compute
CALL_JOB = "call"


class CallProbe(nn.Module):
    """A model that returns its input plus zero: one node, no weights, next to no work."""

    def forward(self, x):
        return x + 0.0


@dataclass(frozen=True)
class Job:
    """One measurement: a fixed part (``key`` 'stem', 'head' or the reference network) or a
    block at one width."""

    key: str
    width: int
    spec: BlockSpec | None = None

    @property
    def name(self) -> str:
        return self.key if self.spec is None else f"{self.key}@{self.width}"


def knot_widths(specs: list[BlockSpec], width_step: int) -> list[int]:
    """Every ``width_step`` channels across the specs' union range, plus each spec's bounds."""
    low = min(s.min_width for s in specs)
    high = max(s.max_width for s in specs)
    widths = {w for s in specs for w in (s.min_width, s.max_width)}
    widths.update(range(-(-low // width_step) * width_step, high + 1, width_step))
    return sorted(w for w in widths if low <= w <= high)


def plan_jobs(space: SearchSpace, width_step: int) -> list[Job]:
    """The measurements a table of ``space`` needs, fixed parts first."""
    if width_step < 1:
        raise SettingError("width_step", f"must be at least 1, got {width_step}.")
    groups: dict[str, list[BlockSpec]] = {}
    for spec in space.all_block_specs():
        groups.setdefault(spec.lut_key, []).append(spec)
    # the reference network (latency/drift.py) is measured in every pass like the blocks, so
    # its figure, the baseline of later drift checks, is the same best-of-passes
    jobs = [Job("stem", 0), Job("head", 0), Job(REFERENCE_JOB, 0), Job(CALL_JOB, 0)]
    for key, specs in groups.items():
        # Ops sharing a key differ only in nominal expansion; build the one with an expand conv.
        module_spec = max(specs, key=lambda s: s.has_expand)
        jobs += [Job(key, w, module_spec) for w in knot_widths(specs, width_step)]
    return jobs


class PlanModules:
    """The module and input shape of every planned measurement, as the networks build them."""

    def __init__(self, space: SearchSpace, classes: int, in_channels: int) -> None:
        self.space, self.classes, self.in_channels = space, classes, in_channels

    def module(self, job: Job) -> tuple[nn.Module, tuple[int, ...]]:
        space = self.space
        if job.key == "stem":
            return build_stem(space, self.in_channels), (
                self.in_channels,
                space.input_size,
                space.input_size,
            )
        if job.key == "head":
            res = space.final_resolution
            return Head(space, self.classes), (space.final_channels, res, res)
        if job.key == REFERENCE_JOB:
            net = Network(space, reference_architecture(space), self.classes, self.in_channels)
            return net, net.input_shape(1)[1:]
        if job.key == CALL_JOB:
            return CallProbe(), (self.in_channels, space.input_size, space.input_size)
        spec = job.spec
        assert spec is not None
        return MBConv(spec, job.width), (spec.in_channels, spec.resolution, spec.resolution)


def table_from_measurements(
    space: SearchSpace,
    jobs: list[Job],
    best: dict[str, float],
    device: dict[str, Any],
    statistic: str,
    meta: dict[str, Any],
    measured_at: str | None | bool = True,
) -> LatencyTable:
    """The table of ``space`` from one latency per planned job (``best``, by job name):
    ``lut build`` and ``lut assemble`` both make their tables here. ``measured_at`` stamps
    the reference network's record (True: now; None: no time, for a table that must be the
    same bytes whenever it is assembled)."""
    entries: dict[str, dict[int, float]] = {}
    for job in jobs:
        if job.spec is not None:
            entries.setdefault(job.key, {})[job.width] = best[job.name]
    table = LatencyTable(
        space_name=space.name,
        space_hash=space.hash,
        device=device,
        statistic=statistic,
        base_ms=best["stem"] + best["head"],
        entries=entries,
        meta={"base_parts_ms": {"stem": best["stem"], "head": best["head"]}, **meta},
    )
    reference = reference_architecture(space)
    table.meta["reference"] = reference_record(reference, best[REFERENCE_JOB], measured_at)
    if CALL_JOB in best:  # plans made before tfnas measured it have none
        table.meta["call_overhead"] = call_overhead_record(
            space, table, best[CALL_JOB], best[REFERENCE_JOB]
        )
    return table


def call_overhead_record(
    space: SearchSpace, table: LatencyTable, call_ms: float, reference_ms: float
) -> dict[str, Any]:
    """How the table's predictions take the cost of separate calls off
    (:attr:`~tfnas.latency.table.LatencyTable.overhead_model`), decided by the one whole
    network the build timed: a runtime that runs a network as one call (ONNX Runtime,
    OpenVINO, most external ones) pays it once where a sum of separately timed parts pays
    it per part; torch's eager mode calls every block inside a network too. The model that
    predicts the reference network best is kept (``none`` on a tie)."""
    reference = reference_architecture(space)
    errors = {}
    for model in OVERHEAD_MODELS:
        trial = replace(
            table, meta={**table.meta, "call_overhead": {"ms": call_ms, "model": model}}
        )
        errors[model] = (trial.raw_predict(space, reference) - reference_ms) / reference_ms * 100
    model = min(OVERHEAD_MODELS, key=lambda m: abs(errors[m]))
    return {"ms": call_ms, "model": model, "applied": model != "none",
            "reference_error_pct": errors}  # fmt: skip


__all__ = [
    "CALL_JOB",
    "REFERENCE_JOB",
    "CallProbe",
    "Job",
    "PlanModules",
    "knot_widths",
    "plan_jobs",
    "table_from_measurements",
]
