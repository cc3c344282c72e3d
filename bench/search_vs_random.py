"""Searched networks against random ones at equal predicted latency, on Fashion-MNIST.

Usage: python bench/search_vs_random.py --lut LUT.json --out DIR [--search-seeds 0,1,2,3,4]
       [--randoms 10] [--fraction 0.5] [--search-images 4000] [--search-epochs 4]
       [--train-images 60000] [--train-epochs 4] [--train-lr 0.1] [--bn-batches 20]
       [--tag NAME --search-set KEY=VALUE ...] [--noise-archs 2 --noise-seeds 100,101]

At the target ``--fraction`` of the table's feasible range (the demo's: the middle):

- searched: the default search (``tfnas pipeline`` settings of the demo) with each seed;
- random: ``--randoms`` architectures drawn uniformly (op per block, depth per stage) and
  elasticity-scaled to the same predicted latency (a draw that cannot reach the target within
  its width bounds is replaced by the next, and counted);
- mobilenetv2-style: every block k3 e6 without SE at full depth, scaled the same way.

Every network is retrained with one identical recipe (``--train-*``; the seed of the k-th
network of each group is k, a searched network's its search seed), evaluated on
the 10,000 test images and profiled, each as one resumable ``tfnas pipeline`` run under DIR,
so a killed bench resumes. Reported: every network; mean and 95% interval (Student t) per
group; Welch's t-test searched vs random; the rank of each searched network among the random
ones; and the supernet's ranking quality: Kendall's tau between each random architecture's
accuracy as a path of each search's trained supernet (batch-norm statistics re-estimated
on ``--bn-batches`` training batches, scored on the 10,000 test images) and its retrained
accuracy; and each searched architecture's own score in its supernet, the same way (does the
search pick what its supernet ranks best?).

A variant of the search (``--search-set lambda_lat=1.0``, any :class:`SearchConfig` field)
runs under its own ``--tag`` beside the same random networks, which a rerun into the same
DIR reuses. ``--noise-archs K --noise-seeds S,...`` retrains the first K random
architectures again with the other seeds: how much of the spread between random
architectures is only retraining noise, i.e. how large a difference this budget can resolve.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from ablations import budget_config
from scipy import stats

from tfnas.arch import (
    Architecture,
    load_architecture,
    random_architecture,
    uniform_architecture,
)
from tfnas.block import OpSpec
from tfnas.data import open_dataset
from tfnas.io import atomic_write_json
from tfnas.latency.table import load_table, target_at_fraction
from tfnas.loader import Batches
from tfnas.pipeline import run_pipeline
from tfnas.search.elastic import scale_onto_target
from tfnas.search.path_score import PathScorer, trained_supernet
from tfnas.space import load_space


def interval(values: list[float]) -> dict[str, float]:
    """Mean and the half-width of its 95% confidence interval (Student t)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": mean, "ci95": float("nan"), "n": len(values)}
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return {"mean": mean, "ci95": half, "n": len(values)}


def parse_setting(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON where it is JSON (numbers, true, null)."""
    key, _, value = item.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def retraining_noise(repeats: list[list[float]], random_top1: list[float]) -> dict[str, Any]:
    """Seed-to-seed spread of one architecture's retrained accuracy (pooled over the repeated
    architectures) against the spread between random architectures (one seed each): when
    they are alike, the bench cannot tell architectures apart at this retraining budget."""
    within = math.sqrt(statistics.fmean(statistics.variance(r) for r in repeats))
    between = statistics.stdev(random_top1)
    return {
        "repeats": repeats,
        "seed_sd": within,
        "random_architectures_sd": between,
        # share of the random architectures' variance that the seeds alone explain
        "seed_share_of_variance": min(1.0, within**2 / between**2),
    }


def scaled_to(space, table, target: float, arch: Architecture) -> Architecture | None:
    return scale_onto_target(space, arch, table, target)


def supernet_scorer(run_dir: Path, train_batches, test_batches) -> PathScorer:
    """A search run's supernet as a scorer of architectures (tfnas.search.path_score)."""
    net = trained_supernet(run_dir)[0].to(memory_format=torch.channels_last)
    return PathScorer(
        net,
        train_batches,
        test_batches,
        prepare=lambda x: x.contiguous(memory_format=torch.channels_last),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--space", default="tfnas-small")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--search-seeds", default="0,1,2,3,4")
    parser.add_argument("--randoms", type=int, default=10)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--search-images", type=int, default=4000)
    parser.add_argument("--search-epochs", type=int, default=4)
    parser.add_argument("--train-images", type=int, default=60000)
    parser.add_argument("--train-epochs", type=int, default=4)
    parser.add_argument("--train-lr", type=float, default=0.1)
    parser.add_argument("--bn-batches", type=int, default=20)
    parser.add_argument("--tag", default="", help="names the searched runs of a search variant")
    parser.add_argument(
        "--search-set", action="append", default=[], metavar="KEY=VALUE",
        help="a SearchConfig field of the searched runs (JSON value, else a string)",
    )  # fmt: skip
    parser.add_argument("--noise-archs", type=int, default=0)
    parser.add_argument("--noise-seeds", default="100,101")
    args = parser.parse_args()
    started = time.perf_counter()
    out = Path(args.out)
    space = load_space(args.space)
    table = load_table(args.lut, space)
    target = target_at_fraction(space, table, args.fraction)

    def retrain(name: str, seed: int, **settings: Any) -> dict[str, Any]:
        print(f"== {name}", file=sys.stderr, flush=True)
        config = budget_config(args, seed, **settings)
        config.train["lr"] = args.train_lr
        s = run_pipeline(config, out / name, log=lambda _: None).to_dict()
        keys = ("predicted_ms", "measured_ms", "top1")
        return {"name": name, "architecture": s["architecture"]} | {k: s[k] for k in keys}

    def fixed(name: str, arch: Architecture, seed: int, run: str | None = None) -> dict[str, Any]:
        path = out / "archs" / f"{name}.json"
        if not path.exists():
            arch.save(path)
        return retrain(run or name, seed, arch=str(path))

    overrides = dict(parse_setting(item) for item in args.search_set)
    prefix = f"searched-{args.tag}" if args.tag else "searched"
    searched = []
    for seed in (int(s) for s in args.search_seeds.split(",")):
        search = {"epochs": args.search_epochs, "warmup_epochs": 1, "limit": args.search_images}
        search |= overrides
        run = retrain(f"{prefix}-seed{seed}", seed, target_fraction=args.fraction, search=search)
        searched.append(run)
    randoms, random_archs, rejected, draw = [], [], 0, 0
    while len(randoms) < args.randoms:
        arch = scaled_to(space, table, target, random_architecture(space, 10_000 + draw))
        draw += 1
        if arch is None:
            rejected += 1
            continue
        random_archs.append(arch)
        randoms.append(fixed(f"random{len(randoms)}", arch, len(randoms)))
    mbv2 = scaled_to(space, table, target, uniform_architecture(space, OpSpec(3, 6, False)))
    mobilenet = fixed("mobilenetv2-style", mbv2, 0) if mbv2 is not None else None

    noise = []
    for k, arch in enumerate(random_archs[: args.noise_archs]):
        seeds = [int(seed) for seed in args.noise_seeds.split(",")]
        again = [fixed(f"random{k}", arch, seed, f"random{k}-seed{seed}") for seed in seeds]
        noise.append([randoms[k]["top1"]] + [r["top1"] for r in again])

    # ranking quality of every search's supernet
    r_top1 = [r["top1"] for r in randoms]
    channels = space.input_channels
    train = open_dataset(args.data, "train", image_size=space.input_size, channels=channels)
    test = open_dataset(args.data, "test", image_size=space.input_size, channels=channels)
    train_batches = list(Batches(train, 64).epoch(7))[: args.bn_batches]
    test_batches = list(Batches(test, 500, shuffle=False, drop_last=False).epoch(0))
    ranking = []
    for run in searched:
        scorer = supernet_scorer(out / run["name"] / "search", train_batches, test_batches)
        in_supernet = scorer.score_all(random_archs)
        run["supernet_path_top1_of_randoms"] = in_supernet
        own = load_architecture(out / run["name"] / "search" / "arch.json", space)[0]
        run["supernet_path_top1"] = scorer.score(own)
        tau, tau_p = stats.kendalltau(in_supernet, r_top1)
        ranking.append({"search": run["name"], "kendall_tau": float(tau), "p": float(tau_p)})

    s_top1 = [r["top1"] for r in searched]
    welch = stats.ttest_ind(s_top1, r_top1, equal_var=False)
    result = {
        "command": "python " + " ".join(sys.argv),
        "target_ms": target,
        "searched": {"top1": interval(s_top1), "runs": searched},
        "random": {"top1": interval(r_top1), "runs": randoms, "rejected_draws": rejected},
        "mobilenetv2_style": mobilenet,
        "searched_minus_random_mean_pct": 100
        * (statistics.fmean(s_top1) - statistics.fmean(r_top1)),
        # the difference of means this design detects at p < 0.05 with 80% power, given
        # the random networks' spread: what a real improvement must exceed to show here
        "detectable_difference_pct": 100
        * (stats.norm.ppf(0.975) + stats.norm.ppf(0.8))
        * statistics.stdev(r_top1)
        * math.sqrt(1 / len(s_top1) + 1 / len(r_top1)),
        "welch_t": float(welch.statistic),
        "welch_p_two_sided": float(welch.pvalue),
        "searched_rank_among_random": [1 + sum(r > s for r in r_top1) for s in s_top1],
        "kendall_tau_supernet_vs_retrained": ranking,
        "kendall_tau_mean": statistics.fmean(r["kendall_tau"] for r in ranking),
        "retraining_noise": retraining_noise(noise, r_top1) if noise else None,
        "seconds": time.perf_counter() - started,
    }
    name = f"search_vs_random-{args.tag}.json" if args.tag else "search_vs_random.json"
    atomic_write_json(out / name, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
