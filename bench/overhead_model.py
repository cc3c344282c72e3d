"""Does the per-call overhead model make tables add up? Per runtime, one table of tfnas-small
and two checks of it on the same random networks, back to back; every check scored four
ways: the raw sum with and without the call overhead taken off, and the leave-one-out
error of a calibration fitted as a line or with a per-block term, on each.

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
from pathlib import Path

from tfnas.latency.build import build_table
from tfnas.latency.check import check_table, error_stats, leave_one_out
from tfnas.latency.external import ExternalRunner, build_external_table
from tfnas.latency.measure import LatencyMeter
from tfnas.latency.meters import table_meter
from tfnas.latency.table import load_table
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


def scored(rows: list[dict], overhead_ms: float, applied: bool) -> dict:
    """The check's rows scored with and without the overhead taken off the raw sums."""
    measured = [r["measured_ms"] for r in rows]
    blocks = [r["blocks"] for r in rows]
    shift = [(n + 1) * overhead_ms for n in blocks]  # every call but the network's one
    taken = [r["raw_ms"] if applied else r["raw_ms"] - s for r, s in zip(rows, shift, strict=True)]
    summed = [t + s for t, s in zip(taken, shift, strict=True)]
    out = {}
    for name, raw in (("without_overhead", summed), ("with_overhead", taken)):
        out[name] = {
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
        overhead = table.meta.get("call_overhead", {})
        meter = table_meter(table, runner=runner)
        checks = []
        for _ in range(args.checks):
            result = check_table(
                space, table, meter, args.archs, seed=1000, on_knots=backend != "cpu"
            )
            checks.append(scored(result.rows, overhead["ms"], overhead["applied"]))
            print(f"{backend}: check {len(checks)} done", file=sys.stderr, flush=True)
        results[backend] = {
            "table": str(args.out / f"{backend}-lut.json"),
            "call_overhead": overhead,
            "width_grid": "any" if backend == "cpu" else "knots",
            "checks": checks,
            "median_of_checks": {
                way: {
                    model: statistics.median(c[way][model]["median_abs_pct"] for c in checks)
                    for model in checks[0][way]
                }
                for way in checks[0]
            },
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
