"""Estimate the time of a full latency-table build from a random subset of its measurements.

Usage: python bench/lut_build_estimate.py --space tfnas-imagenet [--device cpu] [--threads 1]
       [--batch-size 1] [--width-step 8] [--subset 120] [--seed 0]

Draws ``subset`` measurements uniformly from the build plan (so large and small blocks are
represented in proportion), runs each exactly as ``tfnas lut build`` would (module built,
warmed up, timed), and extrapolates: estimated seconds = mean seconds per measurement x number
of measurements. Prints JSON with the spread across measurements.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from tfnas.latency.jobs import PlanModules, plan_jobs
from tfnas.latency.measure import LatencyMeter
from tfnas.space import load_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="tfnas-imagenet")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--width-step", type=int, default=8)
    parser.add_argument("--subset", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    space = load_space(args.space)
    meter = LatencyMeter(args.device, args.threads, args.batch_size)
    jobs = plan_jobs(space, args.width_step)
    sample = random.Random(args.seed).sample(jobs, min(args.subset, len(jobs)))
    parts = PlanModules(space, space.classes, space.input_channels)
    seconds = []
    start = time.perf_counter()
    for job in sample:
        t0 = time.perf_counter()
        module, shape = parts.module(job)
        meter.measure(module, shape)
        seconds.append(time.perf_counter() - t0)
    mean = statistics.fmean(seconds)
    print(
        json.dumps(
            {
                "space": space.name,
                "device": meter.fingerprint(),
                "width_step": args.width_step,
                "measurements_in_full_build": len(jobs),
                "measured_subset": len(sample),
                "subset_seconds": round(time.perf_counter() - start, 1),
                "seconds_per_measurement": {
                    "mean": mean,
                    "median": statistics.median(seconds),
                    "max": max(seconds),
                },
                "estimated_full_build_minutes": round(mean * len(jobs) / 60, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
