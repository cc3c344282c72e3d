"""Random networks at any width against the same networks with every width snapped to the
table's nearest knot, timed whole under ONNX Runtime (ort-cpu, 1 thread) and predicted by
an ort-cpu table. Prints JSON.

Usage: python bench/ort_widths.py --lut runs/external/ort-cpu.json [--archs 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from tfnas.arch import random_architecture
from tfnas.latency.measure import LatencyMeter
from tfnas.latency.meters import measure_networks
from tfnas.latency.table import load_table
from tfnas.space import load_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", required=True)
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    table = load_table(args.lut)
    space = load_space(table.space_name)
    archs = [random_architecture(space, args.seed + i) for i in range(args.archs)]
    on_knots = [table.on_knots(space, a) for a in archs]
    measured = measure_networks(space, archs + on_knots, LatencyMeter("ort-cpu", threads=1))
    result = {"command": "python bench/ort_widths.py " + " ".join(sys.argv[1:])}
    for name, group, ms in (
        ("any_width", archs, measured[: args.archs]),
        ("knot_widths", on_knots, measured[args.archs :]),
    ):
        errors = [(table.predict(space, a) - m) / m * 100 for a, m in zip(group, ms, strict=True)]
        result[name] = {
            "measured_median_ms": statistics.median(ms),
            "predicted_median_signed_error_pct": statistics.median(errors),
        }
    result["any_over_knots_measured_median_ratio"] = statistics.median(
        a / b for a, b in zip(measured[: args.archs], measured[args.archs :], strict=True)
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
