"""How close are interpolated latencies to direct measurements at widths that are not knots?

Usage: python bench/lut_interpolation.py --lut LUT.json [--samples 60] [--seed 0]

Draws random (block, width) pairs whose width is not a knot of the table, measures each block
directly with the table's own timing settings (rounds interleaved across all samples, best
round kept, as the build does), and compares with the table's interpolation.
As a noise floor it also re-measures random knots (where interpolation plays no part): the
interpolation error can be no smaller than the machine's own run-to-run spread. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from tfnas.latency.jobs import plan_jobs
from tfnas.latency.meters import table_meter
from tfnas.latency.table import load_table
from tfnas.nn.blocks import MBConv
from tfnas.space import load_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", required=True)
    parser.add_argument("--space", help="the table's space file, when not built in")
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    table = load_table(args.lut)
    space = load_space(args.space or table.space_name)
    table.check_space(space)
    meter = table_meter(table)
    rng = random.Random(args.seed)
    specs = {
        job.key: job.spec
        for job in plan_jobs(space, int(table.meta.get("width_step", 8)))
        if job.spec
    }
    keys = sorted(specs)

    def pick(on_knot: bool):
        key = rng.choice(keys)
        knots = sorted(table.entries[key])
        if on_knot:
            return specs[key], rng.choice(knots)
        gaps = [w for w in range(knots[0], knots[-1] + 1) if w not in table.entries[key]]
        return specs[key], rng.choice(gaps)

    picks = [
        ("at_knots" if i % 2 else "between_knots", *pick(bool(i % 2)))
        for i in range(2 * args.samples)
    ]
    start = time.perf_counter()
    # Timed like the table itself: the rounds of all samples interleaved, best round kept.
    direct = meter.measure_interleaved(
        [
            (MBConv(spec, width), (spec.in_channels, spec.resolution, spec.resolution))
            for _, spec, width in picks
        ]
    )
    rows = {"between_knots": [], "at_knots": []}
    for (kind, spec, width), ms in zip(picks, direct, strict=True):
        predicted = table.block_ms(spec, width)
        rows[kind].append(
            {
                "key": spec.lut_key,
                "width": width,
                "direct_ms": ms,
                "table_ms": predicted,
                "error_pct": (predicted - ms) / ms * 100,
            }
        )

    def summary(items):
        errs = [abs(r["error_pct"]) for r in items]
        return {
            "n": len(errs),
            "median_abs_pct": statistics.median(errs),
            "mean_abs_pct": statistics.fmean(errs),
            "p90_abs_pct": sorted(errs)[int(0.9 * (len(errs) - 1))],
            "within_3pct": sum(e <= 3 for e in errs) / len(errs),
        }

    print(
        json.dumps(
            {
                "lut": args.lut,
                "space": space.name,
                "device": table.device,
                "statistic": table.statistic,
                "width_step": table.meta.get("width_step"),
                "interpolated_vs_direct": summary(rows["between_knots"]),
                "noise_floor_remeasured_knots": summary(rows["at_knots"]),
                "seconds": round(time.perf_counter() - start, 1),
                "rows": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
