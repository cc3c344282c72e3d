"""Search variants judged against the ground-truth set: supernet tau first, retraining last.

Usage: python bench/search_variants.py [--variants default,one-sided,select16]
       [--seeds 0,1,2,3,4] [--threads 2] [--retrain] [--retrain-seeds 0,1]
       [--set bench/results/ground_truth] [--out bench/results/search_variants]

Each variant changes some SearchConfig fields of the demo's search (``make demo``: 4,000
images, 4 epochs, 1 of them warm-up) on the ground-truth set's committed table and target
(bench/ground_truth.py). Per variant and seed: the search (runs/variants/VARIANT-seedS,
resumed where a kill left it), then its supernet scored against the set
(bench/supernet_rank.py: Kendall tau, Spearman rho, top-5 precision), one result file per
search under OUT. With ``--retrain`` every searched network is retrained with the set's
recipe and seeds (one file per network and seed, as the set's own) and placed in the set:
its percentile among the set's architecture means.

Reported per variant (OUT/summary.json, also printed): tau mean and 95% interval over the
search seeds; with retraining, the searched networks' mean top-1, their median percentile,
a one-sided Mann-Whitney test of searched against the set's means, and how many beat the
MobileNetV2-style network.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from ground_truth import DEFAULT_OUT, ROOT, retrain
from scipy import stats
from search_vs_random import interval
from supernet_rank import load_set, score_run

from tfnas.arch import load_architecture
from tfnas.io import atomic_write_json
from tfnas.search.config import SearchConfig
from tfnas.search.searcher import search

# the demo's search budget (Makefile: --search-limit 4000 --search-epochs 4
# --search-warmup-epochs 1)
DEMO_SEARCH: dict[str, Any] = {"limit": 4000, "epochs": 4, "warmup_epochs": 1}
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "one-sided": {"latency_loss": "one-sided"},
    "select16": {"select_candidates": 16},
    "one-sided-select16": {"latency_loss": "one-sided", "select_candidates": 16},
    "separate-ops": {"op_weights": "separate"},
    "gumbel": {"sampling": "gumbel"},
    "gumbel-gumbel": {"sampling": "gumbel-gumbel"},
    "skip-op": {"depth": "skip-op"},
}
RUNS = ROOT / "runs" / "variants"


def run_search(name: str, seed: int, listing: dict[str, Any]) -> Path:
    run_dir = RUNS / f"{name}-seed{seed}"
    config = SearchConfig(
        space="tfnas-small",
        lut=str(ROOT / listing["lut"]),
        target_ms=listing["target_ms"],
        seed=seed,
        **DEMO_SEARCH,
        **VARIANTS[name],
    )
    if not (run_dir / "arch.json").exists():
        print(f"== search {name} seed {seed}", file=sys.stderr, flush=True)
        search(config, run_dir, resume=True, progress=False)
    return run_dir


def percentile(value: float, population: list[float]) -> float:
    """Share of ``population`` below ``value`` (ties count half), in per cent."""
    below = sum(p < value for p in population) + 0.5 * sum(p == value for p in population)
    return 100 * below / len(population)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="default,one-sided,select16")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--retrain-seeds", default="0,1")
    parser.add_argument("--set", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "search_variants")
    parser.add_argument("--bn-batches", type=int, default=20)
    parser.add_argument("--eval-images", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}.")
    listing = json.loads((args.set / "archs.json").read_text())
    members = load_set(args.set)
    set_means = {m["name"]: m["top1"] for m in members}
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"command": "python " + " ".join(sys.argv), "variants": {}}
    for name in names:
        rows = []
        for seed in (int(s) for s in args.seeds.split(",")):
            run_dir = run_search(name, seed, listing)
            row = score_run(run_dir, members, args)
            arch = load_architecture(run_dir / "arch.json")[0]
            row |= {"variant": name, "settings": VARIANTS[name], "architecture": arch.describe()}
            if args.retrain:
                top1 = [
                    retrain(f"searched-{name}-seed{seed}", run_dir / "arch.json", s, args.out)[
                        "top1"
                    ]
                    for s in (int(x) for x in args.retrain_seeds.split(","))
                ]
                row["retrained_top1"] = top1
                row["percentile_in_set"] = percentile(
                    statistics.fmean(top1), list(set_means.values())
                )
            atomic_write_json(args.out / f"{name}-seed{seed}.json", row)
            rows.append(row)
        result: dict[str, Any] = {
            "settings": VARIANTS[name],
            "kendall_tau": interval([r["kendall_tau"] for r in rows]),
            "spearman_rho": interval([r["spearman_rho"] for r in rows]),
            "architectures": [r["architecture"] for r in rows],
        }
        if args.retrain:
            means = [statistics.fmean(r["retrained_top1"]) for r in rows]
            test = stats.mannwhitneyu(means, list(set_means.values()), alternative="greater")
            result |= {
                "retrained_top1": interval(means),
                "median_percentile_in_set": statistics.median(r["percentile_in_set"] for r in rows),
                "mann_whitney_p_greater": float(test.pvalue),
                "set_mean_top1": statistics.fmean(set_means.values()),
                "beat_mobilenetv2_style": sum(
                    m > set_means.get("mobilenetv2-style", float("inf")) for m in means
                ),
            }
        summary["variants"][name] = result
    atomic_write_json(args.out / "summary.json", summary)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
