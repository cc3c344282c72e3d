"""A tiny world to run every command in: a space, its table, data, an architecture and a
finished training run. The hardening tests and bench/input_sweep.py share it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from tfnas.arch import random_architecture
from tfnas.cli import main
from tfnas.latency.build import build_table
from tfnas.latency.table import latency_range
from tfnas.space import load_space

from .test_data import write_idx_dataset
from .test_latency import TINY_SPACE, CountingMeter


def run_quietly(argv: list[str]) -> None:
    """Run a tfnas command that must succeed, its output swallowed."""
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        code = main([str(a) for a in argv])
    assert code == 0, quiet.getvalue()


def make_tiny_world(root: Path) -> dict:
    """Everything under ``root``; returns the paths (as strings) and the table's range."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "tiny.yaml").write_text(TINY_SPACE)
    space = load_space(root / "tiny.yaml")
    table = build_table(space, CountingMeter(), root / "lut.json", width_step=4, progress=False)
    r = latency_range(space, table)
    write_idx_dataset(root / "fm", n_train=60, n_test=12)
    random_architecture(space, 3).save(root / "arch.json")
    world = {
        "root": root,
        "space": str(root / "tiny.yaml"),
        "lut": str(root / "lut.json"),
        "data": f"fashion-mnist:{root / 'fm'}",
        "arch": str(root / "arch.json"),
        "target": round(r.fastest_ms + 0.5 * (r.slowest_ms - r.fastest_ms), 4),
        "fastest": r.fastest_ms,
        "slowest": r.slowest_ms,
        "train_args": [
            "train",
            str(root / "arch.json"),
            "--space",
            str(root / "tiny.yaml"),
            "--data",
            f"fashion-mnist:{root / 'fm'}",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--out",
            str(root / "train"),
        ],  # fmt: skip
    }
    run_quietly(world["train_args"])
    world["weights"] = str(root / "train" / "best.pt")
    return world
