"""``tfnas sweep``: one pipeline per latency target, and the accuracy-latency curve they make.

Each target runs as a full :mod:`~tfnas.pipeline` (search, retrain, evaluate, profile) in its
own sub-folder, so a killed sweep resumes target by target, step by step. The curve puts the
*measured* latency on the x axis: what the networks really cost on this device, not what the
table promised.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .errors import TargetMissed, TfnasError, named
from .io import atomic_write_bytes, atomic_write_json, atomic_write_text, check_output
from .pipeline import Pipeline, ensure_table
from .pipeline_config import PipelineConfig
from .text import millions, text_table

COLUMNS = (
    "target", "target_ms", "predicted_ms", "measured_ms", "measured_vs_target_pct", "top1",
    "top5", "params", "flops", "architecture", "run_dir",
)  # fmt: skip


def parse_targets(text: str, flag: str) -> list[float]:
    """Comma-separated numbers, e.g. ``1.5,2,2.5``."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise TfnasError(
            f"{flag} takes comma-separated numbers, e.g. 1.5,2,2.5; got '{text}'."
        ) from None
    if not values:
        raise TfnasError(f"{flag} names no target.")
    if len(set(values)) != len(values):
        raise TfnasError(f"{flag} names a target twice: '{text}'.")
    return values


def run_sweep(
    base: PipelineConfig,
    run_dir: str | Path,
    targets_ms: list[float] | None = None,
    fractions: list[float] | None = None,
    log: Callable[[str], None] | None = None,
    build_lut: bool = False,
    runner=None,
    accept_busy_table: bool = False,
) -> list[dict[str, Any]]:
    """Run a pipeline per target (in ms, or as fractions of the feasible range) and write
    ``sweep.csv``, ``sweep.json`` and ``sweep.png`` into ``run_dir``.

    Every target is checked against the table's feasible range before the first pipeline
    starts; a table that has to be built (``build_lut``) is built first, then checked."""
    if (targets_ms is None) == (fractions is None):
        raise TfnasError(
            f"give the sweep's targets as {named('targets')} (ms) or {named('target_fractions')}."
        )
    run_dir = check_output(run_dir, "out", "directory")
    configs = [
        (f"{t:g} ms", run_dir / f"target-{t:g}ms", replace(base, target_ms=t, target_fraction=None))
        for t in targets_ms or []
    ] + [
        (f"{f:g} of range", run_dir / f"fraction-{f:g}",
         replace(base, target_ms=None, target_fraction=f))
        for f in fractions or []
    ]  # fmt: skip
    pipelines = [
        (label, sub, Pipeline(config, sub, log, build_lut, runner, accept_busy_table))
        for label, sub, config in configs
    ]
    for _, _, pipeline in pipelines:
        space = pipeline.check_inputs()  # settings, data, and the target when the table exists
    if not Path(base.lut).exists():
        ensure_table(base, space, log or (lambda line: None), runner, accept_busy_table)
        for _, _, pipeline in pipelines:
            pipeline.check_inputs()  # now every target against the table's range
    rows, missed = [], []
    for i, (label, sub, pipeline) in enumerate(pipelines, 1):
        if log:
            log(f"== target {i} of {len(configs)}: {label} ({sub})")
        try:
            s = pipeline.run().to_dict()
        except TargetMissed:  # the other targets may be reachable: on to them
            missed.append(label)
            if log:
                log(f"target {label}: missed by more than the tolerance; on to the next")
            continue
        rows.append({"target": label, **{k: s[k] for k in COLUMNS if k in s}, "run_dir": str(sub)})
        _write(run_dir, rows)
    if missed:
        raise TargetMissed(
            f"{len(missed)} of the sweep's {len(configs)} targets ({', '.join(missed)}) could "
            f"not be met within {named('search.target_tolerance')}, so no network was "
            f"retrained for them (each target's search/arch.json says where it landed); the "
            f"other targets are in {run_dir / 'sweep.csv'}."
        )
    return rows


def sweep_table(rows: list[dict[str, Any]]) -> str:
    """A sweep's rows for a terminal: per target its measured latency, accuracy and size."""
    table = [
        (r["target"], f"{r['measured_ms']:.3f}", f"{r['measured_vs_target_pct']:+.1f}%",
         f"{r['top1']:.2%}", millions(r["params"]))
        for r in rows
    ]  # fmt: skip
    return text_table(table, ("target", "measured ms", "vs target", "top-1", "params"))


def _write(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run_dir / "sweep.csv", buffer.getvalue())
    atomic_write_json(run_dir / "sweep.json", rows)
    atomic_write_bytes(run_dir / "sweep.png", accuracy_latency_plot(rows))


def accuracy_latency_plot(rows: list[dict[str, Any]]) -> bytes:
    """Test top-1 against measured latency, each point labelled with its target."""
    from matplotlib.figure import Figure

    from .report.figures import png

    ordered = sorted(rows, key=lambda r: r["measured_ms"])
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    ax.plot([r["measured_ms"] for r in ordered], [r["top1"] * 100 for r in ordered], "o-")
    for r in ordered:
        ax.annotate(
            f"target {r['target_ms']:.3g} ms",
            (r["measured_ms"], r["top1"] * 100),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
        )
    ax.set(
        xlabel="measured latency (ms)",
        ylabel="test top-1 (%)",
        title="Accuracy against measured latency",
    )
    ax.grid(alpha=0.3)
    return png(fig)


__all__ = ["accuracy_latency_plot", "parse_targets", "run_sweep"]
