"""What the search reads off its supernet at an epoch's end: the architecture it derives
for the target, and the row of figures that show how far the search has come.

Derivation is the argmax of the learned distribution, made able to meet the target
(projection, :mod:`tfnas.search.projection`) and scaled onto it (elasticity-scaling,
:mod:`tfnas.search.elastic`), unless the widths are fixed.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..arch import Architecture
from ..latency.table import LatencyTable
from ..nn.supernet import Supernet
from ..space import SearchSpace
from .config import SearchConfig
from .elastic import elastic_scale
from .projection import first_changes, project_to_target


@torch.no_grad()
def derive_for_target(
    net: Supernet, space: SearchSpace, table: LatencyTable, config: SearchConfig
) -> tuple[Architecture, list[list[int]], list[str]]:
    """The derived architecture at ``config.target_ms``, which supernet op each block takes
    its weights from, and what projection changed; elastic widths are applied to ``net``."""
    arch, sources = net.derive()
    op_log_probs = [
        [torch.log_softmax(net.alpha(s, b), 0).tolist() for b in range(len(stage))]
        for s, stage in enumerate(net.stages)
    ]
    depth_log_probs = (
        [torch.log_softmax(beta, 0).tolist() for beta in net.betas]
        if config.depth == "sink"
        else None
    )
    elastic = config.width == "elastic"
    if not elastic:
        projection = project_to_target(
            space, table, arch, sources, config.target_ms, op_log_probs, depth_log_probs, False
        )
        return projection.arch, projection.sources, projection.changes
    target, on_knots = config.target_ms, config.width_grid == "knots"

    def land(start: Architecture, start_sources, careful: bool, first: list[str]):
        projection = project_to_target(
            space, table, start, start_sources, target, op_log_probs, depth_log_probs,
            careful=careful,
        )  # fmt: skip
        scaled = elastic_scale(space, projection.arch, table, target, on_knots=on_knots)
        changes = first + projection.changes
        return abs(scaled.latency_ms - target), len(changes), scaled, projection.sources, changes

    # two projections, each then scaled: one that keeps the target in reach at every change,
    # one that takes the likeliest change and lets the other pass make up; the one that
    # lands nearer the target wins (the careful one on a tie)
    landed = [land(arch, sources, careful, []) for careful in (True, False)]
    if min(landed, key=lambda item: item[0])[0] > config.target_tolerance * target:
        # neither reaches it: one change of the argmax first, either way and even past the
        # target, then a careful projection from there (a block less, then a dearer op)
        for upper in (False, True):
            for description, start, start_sources in first_changes(
                space, table, arch, sources, upper, op_log_probs, depth_log_probs
            ):
                landed.append(land(start, start_sources, True, [description]))
    _, _, scaled, sources, changes = min(landed, key=lambda item: (item[0], item[1]))
    net.apply_widths(scaled.arch, sources)
    return scaled.arch, sources, changes


@torch.no_grad()
def distribution_row(
    net: Supernet, space: SearchSpace, table: LatencyTable, arch: Architecture
) -> dict[str, Any]:
    """The learned distribution's figures, and those of ``arch`` (the derived one)."""
    probs = net.op_probabilities()
    entropies = [[float(-(p * p.clamp_min(1e-12).log()).sum()) for p in stage] for stage in probs]
    choices = [
        (e, p)
        for es, ps in zip(entropies, probs, strict=True)
        for e, p in zip(es, ps, strict=True)
        if len(p) > 1
    ] or [(0.0, torch.ones(2))]
    return {
        "expected_latency_ms": float(net.expected_latency(table)),
        "derived_latency_ms": table.predict(space, arch),
        "arch": arch.describe(),
        "depths": list(arch.depths),
        "depth_probs": [w.tolist() for w in net.depth_weights()],
        "op_probs": [[p.tolist() for p in stage] for stage in probs],
        "op_entropy": entropies,
        # 1.0: every block still uniform over its ops; 0.0: every block decided
        "op_entropy_ratio": sum(e / math.log(len(p)) for e, p in choices) / len(choices),
        "top_op_prob": sum(float(p.max()) for _, p in choices) / len(choices),
        "widths": [[choice.width for choice in stage] for stage in arch.stages],
    }


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """The one line an epoch's end prints."""
    return (
        f"epoch {row['epoch'] + 1}/{epochs} ({row['phase']}): loss {row['weight_loss']:.3f}, "
        f"path acc {row['weight_acc']:.3f}, arch-split acc "
        f"{row['derived_arch_split_acc']:.3f}, op entropy {row['op_entropy_ratio']:.2f} "
        f"of uniform, tau {row['tau']:.2f}, expected {row['expected_latency_ms']:.3f} ms, "
        f"derived {row['derived_latency_ms']:.3f} ms (target {row['target_ms']:g}), "
        f"{row['seconds']:.0f} s"
    )
