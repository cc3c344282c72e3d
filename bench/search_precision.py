"""Latency precision of search: how close does the searched network land to the target?

Usage: python bench/search_precision.py --lut LUT.json [--space tfnas-small]
       [--fractions 0.1,0.3,0.5,0.7,0.9] [--images 2000] [--epochs 3] [--seed 0]

For targets at the given fractions of the space's feasible range on the table, runs the
search with elastic widths and again with fixed widths (the width-freedom ablation), on the
same data, budget and seed, and reports the derived network's predicted latency against the
target, and its latency measured as the table was (the best of 15 windows spread over a few
seconds, as `tfnas profile` does). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from tfnas.latency.meters import table_meter
from tfnas.latency.table import latency_range, load_table, target_at_fraction
from tfnas.nn.network import Network
from tfnas.search.config import SearchConfig
from tfnas.search.searcher import search
from tfnas.space import load_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", required=True)
    parser.add_argument("--space", default="tfnas-small")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--fractions", default="0.1,0.3,0.5,0.7,0.9")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    space = load_space(args.space)
    table = load_table(args.lut, space)
    r = latency_range(space, table)
    meter = table_meter(table)
    rows = []
    for fraction in (float(f) for f in args.fractions.split(",")):
        target = target_at_fraction(space, table, fraction)
        for width in ("elastic", "fixed"):
            config = SearchConfig(
                space=args.space,
                lut=args.lut,
                target_ms=target,
                data=args.data,
                limit=args.images,
                epochs=args.epochs,
                warmup_epochs=1,
                seed=args.seed,
                width=width,
            )
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as run_dir:
                result = search(config, run_dir, progress=False)
            net = Network(
                space, result.arch, table.meta.get("classes"), table.meta.get("in_channels")
            )
            measured, _ = meter.measure_spread(net, net.input_shape(1)[1:])
            rows.append(
                {
                    "fraction": fraction,
                    "target_ms": target,
                    "width": width,
                    "predicted_ms": result.predicted_ms,
                    "error_pct": (result.predicted_ms - target) / target * 100,
                    "measured_ms": measured,
                    "measured_error_pct": (measured - target) / target * 100,
                    "arch": result.arch.describe(),
                    "projection_changes": result.history[-1]["projection_changes"],
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
    summary = {}
    for width in ("elastic", "fixed"):
        errors = [abs(row["error_pct"]) for row in rows if row["width"] == width]
        measured = [abs(row["measured_error_pct"]) for row in rows if row["width"] == width]
        summary[width] = {
            "max_abs_error_pct": max(errors),
            "mean_abs_error_pct": sum(errors) / len(errors),
            "measured_max_abs_error_pct": max(measured),
            "measured_mean_abs_error_pct": sum(measured) / len(measured),
        }
    print(
        json.dumps(
            {
                "command": "python " + " ".join(sys.argv),
                "space": space.name,
                "lut": args.lut,
                "range_ms": [r.fastest_ms, r.slowest_ms],
                "images": args.images,
                "epochs": args.epochs,
                "summary": summary,
                "rows": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
