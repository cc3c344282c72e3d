"""Elasticity-scaling onto the table's knots against onto any width: precision and speed.

Usage: python bench/knot_widths.py --lut LUT.json [--space NAME] [--fraction 0.5]
       [--pairs 16] [--precision-archs 60]

A table measures every ``width_step``-th mid width and interpolates between; widths that
are not multiples of the machine's vector width may run slower than the straight line
between knots. ``--width-grid knots`` makes elasticity-scaling use measured widths only.
This bench answers, for random architectures that elasticity-scaling can bring onto a target
at ``--fraction`` of the table's range:

- prediction precision: how far below the target each way lands (no measuring);
- measured against predicted: ``--pairs`` architectures scaled both ways, every network
  measured whole with the table's own timing settings (rounds interleaved), the median ratio
  measured / predicted per way, and the median ratio of the two ways' measured latencies.

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics

from tfnas.arch import random_architecture
from tfnas.latency.meters import measure_networks, table_meter
from tfnas.latency.table import load_table, target_at_fraction
from tfnas.search.elastic import elastic_scale
from tfnas.space import load_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", required=True)
    parser.add_argument("--space", default="tfnas-small")
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--precision-archs", type=int, default=60)
    args = parser.parse_args()
    space = load_space(args.space)
    table = load_table(args.lut, space)
    target = target_at_fraction(space, table, args.fraction)
    pairs = []
    for seed in range(20_000):
        arch = random_architecture(space, seed)
        anywhere = elastic_scale(space, arch, table, target)
        if abs(anywhere.latency_ms / target - 1) > 0.01:
            continue  # its ops and depths cannot reach the target by width alone
        pairs.append((anywhere, elastic_scale(space, arch, table, target, on_knots=True)))
        if len(pairs) >= max(args.pairs, args.precision_archs):
            break

    def below(results) -> dict[str, float]:
        pct = [(1 - r.latency_ms / target) * 100 for r in results]
        return {
            "median_below_target_pct": statistics.median(pct),
            "worst_below_target_pct": max(pct),
            "within_0.5pct": sum(p <= 0.5 for p in pct) / len(pct),
        }

    precision = pairs[: args.precision_archs]
    timed = pairs[: args.pairs]
    archs = [r.arch for pair in timed for r in pair]
    meter = table_meter(table)
    measured = measure_networks(
        space, archs, meter, table.meta.get("classes"), table.meta.get("in_channels")
    )
    ratio = [m / table.predict(space, a) for m, a in zip(measured, archs, strict=True)]
    off_grid = [
        sum(c.width % 8 != 0 for stage in a.stages for c in stage)
        / sum(len(stage) for stage in a.stages)
        for a in archs
    ]
    out = {
        "command": "python bench/knot_widths.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "target_ms": target,
        "width_step": table.meta.get("width_step"),
        "precision": {
            "archs": len(precision),
            "any": below([a for a, _ in precision]),
            "knots": below([k for _, k in precision]),
        },
        "measured": {
            "pairs": len(timed),
            "any_median_measured_over_predicted": statistics.median(ratio[0::2]),
            "knots_median_measured_over_predicted": statistics.median(ratio[1::2]),
            "any_share_of_widths_not_multiples_of_8": statistics.fmean(off_grid[0::2]),
            "knots_share_of_widths_not_multiples_of_8": statistics.fmean(off_grid[1::2]),
            "median_knots_over_any_measured": statistics.median(
                k / a for a, k in zip(measured[0::2], measured[1::2], strict=True)
            ),
        },
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
