"""The report's figures, each drawn from a run's own records (``metrics.jsonl``, the
architecture file, the space) and returned as PNG bytes.

matplotlib runs headless (the Agg canvas, no display, no global pyplot state), so figures
can be drawn from a training script, a test or a server alike.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from ..arch import Architecture
from ..space import SearchSpace

Rows = Sequence[dict[str, Any]]
OP_COLOURS = (
    "#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd", "#dd8452", "#937860",
    "#da8bc3", "#8c8c8c",
)  # fmt: skip


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _integer_epochs(*axes) -> None:
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _epochs(rows: Rows) -> list[int]:
    return [int(r["epoch"]) + 1 for r in rows]


def latency_per_epoch(rows: Rows) -> bytes:
    """Expected (soft) and derived latency per epoch against the target line."""
    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot()
    x = _epochs(rows)
    ax.plot(x, [r["expected_latency_ms"] for r in rows], "o-", label="expected (soft)")
    ax.plot(x, [r["argmax_latency_ms"] for r in rows], "s--", alpha=0.6, label="argmax ops")
    ax.plot(x, [r["derived_latency_ms"] for r in rows], "D-", label="derived (elastic)")
    ax.axhline(rows[-1]["target_ms"], color="black", lw=1, ls=":", label="target")
    for r in rows:
        if r.get("phase") == "warmup":
            ax.axvspan(r["epoch"] + 0.5, r["epoch"] + 1.5, color="0.92", lw=0)
    ax.set(xlabel="epoch", ylabel="latency (ms)", title="Latency during search (grey: warm-up)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _integer_epochs(ax)
    return png(fig)


def op_probabilities(rows: Rows, space: SearchSpace) -> bytes:
    """One heatmap per searchable block: candidate ops (rows) by epoch (columns)."""
    blocks = [(s, b) for s, stage in enumerate(rows[-1]["op_probs"]) for b in range(len(stage))]
    cols = min(4, len(blocks))
    grid_rows = math.ceil(len(blocks) / cols)
    fig = Figure(figsize=(3.2 * cols, 2.3 * grid_rows + 0.6), layout="constrained")
    axes = fig.subplots(grid_rows, cols, squeeze=False)
    image = None
    # colours span what occurs: after a short search the probabilities stay near uniform
    top = max(max(p) for r in rows for stage in r["op_probs"] for p in stage)
    for ax, (s, b) in zip(axes.flat, blocks, strict=False):
        matrix = [[r["op_probs"][s][b][o] for r in rows] for o in range(len(space.stages[s].ops))]
        image = ax.imshow(
            matrix, aspect="auto", cmap="viridis", vmin=0, vmax=top, interpolation="nearest",
            extent=(0.5, len(rows) + 0.5, len(matrix) - 0.5, -0.5),
        )  # fmt: skip
        ax.set_yticks(range(len(matrix)), [op.label for op in space.stages[s].ops], fontsize=6)
        ax.set_title(f"stage {s + 1} block {b + 1}", fontsize=8)
        ax.tick_params(axis="x", labelsize=6)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(blocks) :]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="probability")
    fig.suptitle("Operation probabilities per block over epochs")
    return png(fig)


def depth_probabilities(rows: Rows, space: SearchSpace) -> bytes:
    """Per stage, the probability of each admissible depth over epochs (stacked)."""
    stages = len(rows[-1]["depth_probs"])
    fig = Figure(figsize=(2.6 * stages, 2.8), layout="constrained")
    axes = fig.subplots(1, stages, squeeze=False)[0]
    x = _epochs(rows)
    for s, ax in enumerate(axes):
        depths = list(space.stages[s].depths)
        series = [[r["depth_probs"][s][d] for r in rows] for d in range(len(depths))]
        ax.stackplot(x, series, labels=[f"depth {d}" for d in depths], alpha=0.85)
        ax.set(ylim=(0, 1), title=f"stage {s + 1}", xlabel="epoch")
        ax.legend(fontsize=6, loc="lower left")
        _integer_epochs(ax)
    axes[0].set_ylabel("probability")
    fig.suptitle("Depth probabilities per stage (sink-connecting)")
    return png(fig)


def widths(arch: Architecture, space: SearchSpace) -> bytes:
    """Mid width of every block after elasticity-scaling, within its bounds."""
    blocks = list(arch.blocks(space))
    fig = Figure(figsize=(max(6, 0.55 * len(blocks)), 3.6))
    ax = fig.add_subplot()
    x = range(len(blocks))
    ax.vlines(x, [b[2].min_width for b in blocks], [b[2].max_width for b in blocks], color="0.7",
              lw=6, label="elastic bounds")  # fmt: skip
    ax.plot(x, [b[2].nominal_width for b in blocks], "_", ms=14, color="black", label="nominal")
    ax.plot(x, [b[3] for b in blocks], "o", color="#c44e52", label="searched")
    ax.set_xticks(list(x), [f"{s + 1}.{j + 1}\n{spec.op.label}" for s, j, spec, _ in blocks],
                  fontsize=6)  # fmt: skip
    ax.set(ylabel="mid channels", title="Widths after elasticity-scaling")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def architecture_diagram(arch: Architecture, space: SearchSpace) -> bytes:
    """The network left to right: one box per block, coloured by op, as tall as its width."""
    ops = sorted({op for stage in space.stages for op in stage.ops})
    colour = {op: OP_COLOURS[i % len(OP_COLOURS)] for i, op in enumerate(ops)}
    blocks = list(arch.blocks(space))
    tallest = max((spec.max_width for _, _, spec, _ in blocks), default=1)
    fig = Figure(figsize=(max(6, 0.7 * len(blocks) + 2), 3.4))
    ax = fig.add_subplot()
    x = 0.0
    stage_start: dict[int, float] = {}
    for s, _, spec, width in blocks:
        if s not in stage_start:
            stage_start[s] = x
        height = width / tallest
        ax.add_patch(Rectangle((x, -height / 2), 0.8, height, color=colour[spec.op], ec="black"))
        ax.text(x + 0.4, height / 2 + 0.04, str(width), ha="center", fontsize=6)
        x += 1.0
    for s, start in stage_start.items():
        ax.text(start, -0.62, f"stage {s + 1}", fontsize=7)
    used = sorted({spec.op for _, _, spec, _ in blocks})
    handles = [Rectangle((0, 0), 1, 1, color=colour[op]) for op in used]
    ax.legend(handles, [op.label for op in used], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.0, 1.0))  # fmt: skip
    ax.set(xlim=(-0.2, max(x, 1)), ylim=(-0.7, 0.7))
    ax.axis("off")
    ax.set_title(f"Architecture ({'-'.join(map(str, arch.depths))} blocks; box height = width)")
    return png(fig)


def op_decisions(rows: Rows) -> bytes:
    """Per epoch: op entropy as a fraction of the uniform distribution's (1: nothing learned)
    and the mean probability of each block's top op."""
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    ax = fig.add_subplot()
    x = _epochs(rows)
    ax.plot(x, [r["op_entropy_ratio"] for r in rows], "o-", label="op entropy / uniform")
    ax.plot(x, [r["top_op_prob"] for r in rows], "s-", label="top op probability (mean)")
    ax.set(xlabel="epoch", ylim=(0, 1.05), title="How decided the ops are")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _integer_epochs(ax)
    return png(fig)


def curves(rows: Rows, series: Sequence[tuple[str, str]], title: str) -> bytes:
    """Loss (left) and accuracy (right) per epoch; ``series`` names (key, label) pairs, and a
    key containing "loss" goes left."""
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    x = _epochs(rows)
    for key, label in series:
        values = [(e, r[key]) for e, r in zip(x, rows, strict=True) if r.get(key) is not None]
        if not values:
            continue
        ax = loss_ax if "loss" in key else acc_ax
        ax.plot([e for e, _ in values], [v for _, v in values], "o-", label=label)
    _integer_epochs(loss_ax, acc_ax)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    return png(fig)
