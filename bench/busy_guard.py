"""Does `lut build` tell a busy machine from a quiet one? The same coarse table of
tfnas-small built twice: once with nothing else running, once beside CPU hogs (busy
processes the bench starts before the build and stops after it). Prints JSON: each build's
stability record (the reference network's spread across passes, the load average, the
verdict) and how far the busy table's predictions lie from the quiet one's.

Usage: python bench/busy_guard.py [--hogs 2] [--width-step 64] [--out runs/busy-guard]

Run it on an otherwise idle machine: anything else running makes the quiet build busy too.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from pathlib import Path

from tfnas.arch import random_architecture
from tfnas.latency.build import build_table
from tfnas.latency.measure import LatencyMeter
from tfnas.space import load_space


def hog(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def build(space, path: Path, width_step: int):
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    table = build_table(space, LatencyMeter("cpu", threads=1), path, width_step=width_step)
    return table, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=2)
    parser.add_argument("--width-step", type=int, default=64)
    parser.add_argument(
        "--settle", type=float, default=60.0, help="seconds for the load average to settle"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/busy-guard"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    space = load_space("tfnas-small")
    time.sleep(args.settle)
    quiet, quiet_s = build(space, args.out / "quiet.json", args.width_step)
    stop = multiprocessing.Event()
    hogs = [multiprocessing.Process(target=hog, args=(stop,)) for _ in range(args.hogs)]
    for p in hogs:
        p.start()
    time.sleep(args.settle)  # the one-minute load average catches up with the hogs
    try:
        busy, busy_s = build(space, args.out / "busy.json", args.width_step)
    finally:
        stop.set()
        for p in hogs:
            p.join()
    archs = [random_architecture(space, 1000 + i) for i in range(30)]
    ratios = [busy.raw_predict(space, a) / quiet.raw_predict(space, a) for a in archs]
    print(json.dumps({
        "command": "python bench/busy_guard.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "hogs": args.hogs,
        "quiet": {"stability": quiet.meta["stability"], "build_seconds": quiet_s},
        "busy": {"stability": busy.meta["stability"], "build_seconds": busy_s},
        "busy_over_quiet_prediction_median": statistics.median(ratios),
        "flagged": {"quiet": bool(quiet.meta["stability"]["busy"]),
                    "busy": bool(busy.meta["stability"]["busy"])},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
