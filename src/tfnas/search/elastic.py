"""Elasticity-scaling: adjust mid widths, ever finer, until the LUT latency meets the target.

Op and depth choices only give coarse, discrete latencies; this is what lands the searched
network on the target (docs/method.md section 5). It works on an :class:`Architecture` and a
latency table alone, so it can be checked on any table, the paper's included; the supernet
then applies the new widths as channel masks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..arch import Architecture, BlockChoice
from ..latency.table import LatencyTable
from ..space import SearchSpace


@dataclass(frozen=True)
class ScalingResult:
    arch: Architecture
    latency_ms: float
    start_latency_ms: float
    steps: int


def elastic_scale(
    space: SearchSpace,
    arch: Architecture,
    table: LatencyTable,
    target_ms: float,
    on_knots: bool = False,
) -> ScalingResult:
    """Shrink or grow the widths of ``arch`` so that its predicted latency is at or just
    below ``target_ms``.

    1. If above the target, shrink every block together (each by a step proportional to its
       width) until at or below it, or until every width is at its lower bound.
    2. If below, grow every block together while the latency stays at or below the target.
    3. Then grow only stages 2..N, then 3..N, ..., then the last stage, the same way: ever
       finer scopes take up the remaining slack.
    4. Then one block at a time, from the last to the first, the same way.
    Widths never leave their op's bounds. With ``on_knots`` every width is one the table
    measured (its knots: multiples of the build's width step, and the bounds): a step moves
    to the next knot at or beyond the proportional step, so the prediction is a sum of
    measurements, never an interpolation between them.
    """
    blocks = [(s, j, spec) for s, j, spec, _ in arch.blocks(space)]
    widths = [w for _, _, _, w in arch.blocks(space)]
    grids = [table.knots(spec) for _, _, spec in blocks] if on_knots else None
    if grids is not None:  # start from the measured width at or below each one
        widths = [
            max([k for k in g if k <= w] or g[:1]) for g, w in zip(grids, widths, strict=True)
        ]
    steps = 0

    def latency(ws: list[int]) -> float:
        return table.predict(space, _with_widths(arch, blocks, ws))

    def step_sizes(scope: list[int]) -> dict[int, int]:
        smallest = max(1, min(widths[i] for i in scope))
        return {i: max(1, round(widths[i] / smallest)) for i in scope}

    def moved(scope: list[int], sign: int) -> list[int] | None:
        sizes = step_sizes(scope)
        new = list(widths)
        for i in scope:
            spec = blocks[i][2]
            wanted = widths[i] + sign * sizes[i]
            if grids is not None:
                new[i] = _next_knot(grids[i], widths[i], wanted, sign)
            else:
                new[i] = min(spec.max_width, max(spec.min_width, wanted))
        return None if new == widths else new

    start = current = latency(widths)
    everything = list(range(len(blocks)))
    while current > target_ms:
        new = moved(everything, -1)
        if new is None:
            break  # all at their lower bounds: the target is below this op/depth choice
        widths, current, steps = new, latency(new), steps + 1
    n_stages = len(space.stages)
    scopes = [[i for i, (s, _, _) in enumerate(blocks) if s >= first] for first in range(n_stages)]
    # the finest scope last: one block at a time, from the last (a step of a whole stage
    # can be coarser than the slack left, in a small space)
    scopes += [[i] for i in reversed(everything)]
    for scope in scopes:
        while scope:
            new = moved(scope, +1)
            if new is None:
                break
            candidate = latency(new)
            if candidate > target_ms:
                break
            widths, current, steps = new, candidate, steps + 1
    return ScalingResult(_with_widths(arch, blocks, widths), current, start, steps)


def scale_onto_target(
    space: SearchSpace,
    arch: Architecture,
    table: LatencyTable,
    target_ms: float,
    tolerance: float = 0.01,
    on_knots: bool = False,
) -> Architecture | None:
    """``arch`` elasticity-scaled onto ``target_ms``, or None when its widths cannot bring it
    within ``tolerance`` (relative) of the target: its ops and depths are too slow or too
    fast for it. Random baselines and selection candidates use it to be compared at one
    latency."""
    scaled = elastic_scale(space, arch, table, target_ms, on_knots=on_knots)
    return scaled.arch if abs(scaled.latency_ms / target_ms - 1) <= tolerance else None


def _next_knot(knots: list[int], width: int, wanted: int, sign: int) -> int:
    """The first knot at or beyond ``wanted`` in the direction ``sign`` (at least one knot
    away from ``width``), or the last knot that way; ``width`` when there is none."""
    if sign > 0:
        ahead = [k for k in knots if k > width]
        return next((k for k in ahead if k >= wanted), ahead[-1] if ahead else width)
    behind = [k for k in reversed(knots) if k < width]
    return next((k for k in behind if k <= wanted), behind[-1] if behind else width)


def _with_widths(arch: Architecture, blocks, widths: list[int]) -> Architecture:
    stages: list[list[BlockChoice]] = [[] for _ in arch.stages]
    for (s, j, _), width in zip(blocks, widths, strict=True):
        stages[s].append(BlockChoice(arch.stages[s][j].op, width))
    return replace(arch, stages=tuple(tuple(stage) for stage in stages))
