"""Do the overhead models make tables add up? Per runtime, one table of tfnas-small and two
checks of it on the same random networks, back to back; every check scored under each
overhead model (none; the cost of an empty call off every part but one; every entry's own
fixed cost, its intercept, off every block): the raw sum's error, and the leave-one-out
error of a calibration fitted on those sums as a line or with a per-block term.

Usage: python bench/overhead_model.py [--backends cpu,ort-cpu,openvino] [--archs 40]
       [--checks 2] [--out runs/overhead] [--threads 1]

Tables are built under OUT (resumable: a killed build continues); ONNX Runtime and OpenVINO
are checked on the table's knots (networks at multiples of 8 channels, as the docs advise
for runtimes that step there), torch on any width. OpenVINO runs through the shipped runner
(``python -m tfnas.runners.openvino``, the ``openvino`` extra). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path

from tfnas.arch import random_architecture
from tfnas.latency.build import build_table
from tfnas.latency.check import check_table, error_stats, leave_one_out
from tfnas.latency.external import ExternalRunner, build_external_table
from tfnas.latency.jobs import call_overhead_record
from tfnas.latency.measure import LatencyMeter
from tfnas.latency.meters import table_meter
from tfnas.latency.table import OVERHEAD_MODELS, load_table
from tfnas.space import load_space

OPENVINO = f"{sys.executable} -m tfnas.runners.openvino {{models}} --threads 1"


def table_for(backend: str, out: Path, threads: int):
    space = load_space("tfnas-small")
    path = out / f"{backend}-lut.json"
    runner = ExternalRunner(OPENVINO) if backend == "openvino" else None
    if path.exists():
        return space, load_table(path, space), runner
    if runner is not None:
        resume = Path(str(path) + ".partial").exists()
        table = build_external_table(space, runner, path, resume=resume, progress=False)
        return space, table, runner
    meter = LatencyMeter(backend, threads=threads)
    resume = Path(str(path) + ".partial").exists()
    return space, build_table(space, meter, path, resume=resume, progress=False), None


def scored(space, table, rows: list[dict], on_knots: bool) -> dict:
    """The check's networks scored under each overhead model: the raw sum's error, and the
    leave-one-out error of a calibration fitted on those sums as a line or with a
    per-block term."""
    measured = [r["measured_ms"] for r in rows]
    blocks = [r["blocks"] for r in rows]
    archs = [random_architecture(space, r["seed"]) for r in rows]
    if on_knots:
        archs = [table.on_knots(space, a) for a in archs]
    out = {}
    for model in OVERHEAD_MODELS:
        raw = [table.with_overhead_model(model).raw_predict(space, a) for a in archs]
        out[model] = {
            "raw": error_stats(raw, measured),
            "calibrated_line_loo": error_stats(leave_one_out(raw, measured), measured),
            "calibrated_per_block_loo": error_stats(leave_one_out(raw, measured, blocks), measured),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="cpu,ort-cpu,openvino")
    parser.add_argument("--archs", type=int, default=40)
    parser.add_argument("--checks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/overhead"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"command": "python bench/overhead_model.py " + " ".join(sys.argv[1:])}
    for backend in args.backends.split(","):
        space, table, runner = table_for(backend, args.out, args.threads)
        # the build's verdict, as this tfnas makes it from the build's own figures
        overhead = call_overhead_record(
            space, table, table.meta["call_overhead"]["ms"], table.meta["reference"]["ms"]
        )
        table = replace(table, meta={**table.meta, "call_overhead": overhead})
        meter = table_meter(table, runner=runner)
        checks = []
        for _ in range(args.checks):
            result = check_table(
                space, table, meter, args.archs, seed=1000, on_knots=backend != "cpu"
            )
            checks.append(scored(space, table, result.rows, on_knots=backend != "cpu"))
            print(f"{backend}: check {len(checks)} done", file=sys.stderr, flush=True)
        results[backend] = {
            "table": str(args.out / f"{backend}-lut.json"),
            "call_overhead": overhead,
            "width_grid": "any" if backend == "cpu" else "knots",
            "checks": checks,
            "median_of_checks": {
                model: {
                    way: statistics.median(c[model][way]["median_abs_pct"] for c in checks)
                    for way in checks[0][model]
                }
                for model in checks[0]
            },
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
