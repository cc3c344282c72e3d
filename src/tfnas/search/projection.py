"""Make a derived architecture able to meet the target before elasticity-scaling does the rest.

Elasticity-scaling moves widths only within each op's bounds, so the argmax architecture of a
search whose op and depth distributions are still flat (a short search, or one stopped early)
can lie entirely above the target even at its narrowest widths, or below it at its widest. The
paper's method then misses the target. tfnas goes further: it changes the fewest, least
likely choices. While the architecture's latency at its lower width bounds exceeds the target,
it applies the single change (another op in one block, or one block less in a stage when
sinking) that gives up the least log-probability per millisecond saved; symmetrically while
the latency at the upper width bounds falls short of the target. A change that would jump
past the target (a block added whose narrowest widths already exceed it) gives way to one that
keeps the target within the widths' reach; where every change jumps past it, the target lies
in a gap between architectures, and the one that lands nearest it is taken, if nearer than
staying. Every change is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..arch import Architecture, BlockChoice
from ..block import BlockSpec
from ..latency.table import LatencyTable
from ..space import SearchSpace


@dataclass(frozen=True)
class Projection:
    arch: Architecture
    sources: list[list[int]]
    changes: list[str]


def _bound(spec: BlockSpec, upper: bool, elastic: bool) -> int:
    if not elastic:
        return spec.nominal_width
    return spec.max_width if upper else spec.min_width


def _at_bound(space: SearchSpace, arch: Architecture, upper: bool, elastic: bool) -> Architecture:
    stages = []
    for s, stage in enumerate(arch.stages):
        blocks = []
        for j, choice in enumerate(stage):
            spec = space.block_spec(s, j, choice.op)
            blocks.append(BlockChoice(choice.op, _bound(spec, upper, elastic)))
        stages.append(tuple(blocks))
    return replace(arch, stages=tuple(stages))


def project_to_target(
    space: SearchSpace,
    table: LatencyTable,
    arch: Architecture,
    sources: list[list[int]],
    target_ms: float,
    op_log_probs: Sequence[Sequence[Sequence[float]]],
    depth_log_probs: Sequence[Sequence[float]] | None,
    elastic: bool = True,
    careful: bool = True,
) -> Projection:
    """Change as little probability as possible until ``target_ms`` lies within the widths'
    reach. ``op_log_probs[s][b][i]`` scores op ``i`` of the stage's candidates at supernet
    block ``b``; ``depth_log_probs[s][k]`` scores ``stage.depths[k]`` (``None``: depth fixed).
    Without ``elastic`` widths, every block's reach is its nominal width alone. Not
    ``careful``: the likeliest change every time, even one that jumps past the target (the
    other pass may then bring it back within reach, which no single change could).
    """
    stages = [list(stage) for stage in arch.stages]
    sources = [list(src) for src in sources]
    changes: list[str] = []

    def current() -> Architecture:
        return replace(arch, stages=tuple(tuple(st) for st in stages))

    # Fixed widths cannot take up slack, so only an architecture above the target is changed.
    for upper in (False, True) if elastic else (False,):
        while True:
            latency = table.predict(space, _at_bound(space, current(), upper, elastic))
            if (latency <= target_ms) if not upper else (latency >= target_ms):
                break
            taken = None
            options = sorted(
                _changes(
                    space, table, stages, sources, upper, elastic, op_log_probs, depth_log_probs
                ),
                key=lambda option: option[0],
            )
            crossing = []  # changes that jump past the target: (how far past it, option)
            for option in options:
                if not (elastic and careful):  # the likeliest change, wherever it lands
                    taken = option
                    break
                far = _far_latency(space, table, arch, option[2], stages, sources, upper, elastic)
                if (far <= target_ms) if upper else (far >= target_ms):
                    taken = option  # the target stays within the widths' reach
                    break
                crossing.append((abs(far - target_ms), option))
            if taken is None and crossing:
                # every change jumps past the target, which no architecture near this one
                # reaches: the one that lands nearest it, if nearer than staying here
                past, option = min(crossing, key=lambda c: c[0])
                if past < abs(latency - target_ms):
                    taken = option
            if taken is None:
                break  # nothing left to change: the widths will get as close as they can
            _, description, change = taken
            changes.append(description)
            stages, sources = _applied(space, change, stages, sources, upper, elastic)
    return Projection(current(), sources, changes)


def first_changes(
    space: SearchSpace,
    table: LatencyTable,
    arch: Architecture,
    sources: list[list[int]],
    upper: bool,
    op_log_probs: Sequence[Sequence[Sequence[float]]],
    depth_log_probs: Sequence[Sequence[float]] | None,
) -> list[tuple[str, Architecture, list[list[int]]]]:
    """Every single change of op or depth that makes ``arch`` slower (``upper``) or faster,
    each applied: (description, architecture, sources). A projection from each of them
    reaches what no single change can (a block less, then a dearer op)."""
    stages = [list(stage) for stage in arch.stages]
    out = []
    for _, description, change in _changes(
        space, table, stages, sources, upper, True, op_log_probs, depth_log_probs
    ):
        new, new_sources = _applied(space, change, stages, sources, upper, True)
        out.append((description, replace(arch, stages=tuple(map(tuple, new))), new_sources))
    return out


def _changes(space, table, stages, sources, upper, elastic, op_log_probs, depth_log_probs):
    """Every single change of the pass: (log-probability given up per ms, description, change),
    where a change is ("op", stage, block, op), ("drop", stage) or ("add", stage, op)."""
    for s, stage in enumerate(stages):
        spec_s = space.stages[s]
        for j, choice in enumerate(stage):
            here = space.block_spec(s, j, choice.op)
            now_ms = table.block_cost_ms(here, _bound(here, upper, elastic))
            now_lp = op_log_probs[s][sources[s][j]][spec_s.ops.index(choice.op)]
            for i, op in enumerate(spec_s.ops):
                if op == choice.op:
                    continue
                other = space.block_spec(s, j, op)
                gain = table.block_cost_ms(other, _bound(other, upper, elastic))
                gain = gain - now_ms if upper else now_ms - gain
                if gain > 0:
                    cost = max(0.0, now_lp - op_log_probs[s][sources[s][j]][i]) / gain
                    yield (
                        cost,
                        f"stage {s + 1} block {j + 1}: {choice.op.label} -> {op.label}",
                        ("op", s, j, op),
                    )
        if depth_log_probs is None:
            continue
        depth = len(stage)
        if not upper and depth - 1 in spec_s.depths and sources[s] == list(range(depth)):
            last = space.block_spec(s, depth - 1, stage[-1].op)
            gain = table.block_cost_ms(last, _bound(last, False, elastic))
            k = spec_s.depths.index(depth)
            if gain > 0:
                cost = max(0.0, depth_log_probs[s][k] - depth_log_probs[s][k - 1]) / gain
                yield cost, f"stage {s + 1}: depth {depth} -> {depth - 1}", ("drop", s)
        if upper and depth + 1 in spec_s.depths and sources[s] == list(range(depth)):
            lps = op_log_probs[s][depth]
            i = max(range(len(spec_s.ops)), key=lambda i: lps[i])
            new = space.block_spec(s, depth, spec_s.ops[i])
            gain = table.block_cost_ms(new, _bound(new, True, elastic))
            k = spec_s.depths.index(depth)
            if gain > 0:
                cost = max(0.0, depth_log_probs[s][k] - depth_log_probs[s][k + 1]) / gain
                yield (
                    cost,
                    f"stage {s + 1}: depth {depth} -> {depth + 1}",
                    ("add", s, spec_s.ops[i]),
                )


def _applied(space, change, stages, sources, upper, elastic):
    """``stages`` and ``sources`` after ``change`` (new lists; the arguments are kept)."""
    stages = [list(stage) for stage in stages]
    sources = [list(src) for src in sources]
    if change[0] == "op":
        _, s, j, op = change
        stages[s][j] = BlockChoice(op, _bound(space.block_spec(s, j, op), upper, elastic))
    elif change[0] == "drop":
        stages[change[1]].pop()
        sources[change[1]].pop()
    else:
        _, s, op = change
        spec = space.block_spec(s, len(stages[s]), op)
        stages[s].append(BlockChoice(op, _bound(spec, True, elastic)))
        sources[s].append(len(sources[s]))
    return stages, sources


def _far_latency(space, table, arch, change, stages, sources, upper, elastic) -> float:
    """The latency after ``change`` at the widths' other end: the lowest a change of the
    upper pass can still reach, the highest of the lower pass."""
    new, _ = _applied(space, change, stages, sources, upper, elastic)
    changed = replace(arch, stages=tuple(tuple(stage) for stage in new))
    return table.predict(space, _at_bound(space, changed, not upper, elastic))
