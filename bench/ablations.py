"""Ablations of the three freedoms on Fashion-MNIST: same data, budget, target and seeds.

Usage: python bench/ablations.py --lut LUT.json --out DIR [--seeds 0,1]
       [--variants default,separate-ops,gumbel,gumbel-gumbel,gumbel-max,skip-op,fixed-depth,
       fixed-width]
       [--fraction 0.5] [--search-images 4000] [--search-epochs 4] [--train-images 10000]
       [--train-epochs 2]

Each variant changes one thing of the default search (shared op weights, gumbel-random
sampling, sink-connected depth, elastic widths) and runs as a full `tfnas pipeline` (search,
retrain the derived network, evaluate on the 10,000 test images, profile) in
DIR/VARIANT-seedS, so a killed bench resumes. Per variant it reports, as mean and spread over
the seeds: the searched network's predicted and measured latency against the target, the
supernet's accuracy on the architecture split, the mean entropy of the operation
distributions at the end of the search (lower: the op choice collapsed further), and the
retrained test top-1. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from tfnas.pipeline import run_pipeline
from tfnas.pipeline_config import PipelineConfig

VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "separate-ops": {"op_weights": "separate"},
    "gumbel": {"sampling": "gumbel"},
    "gumbel-gumbel": {"sampling": "gumbel-gumbel"},
    "gumbel-max": {"sampling": "gumbel-max"},
    "skip-op": {"depth": "skip-op"},
    "fixed-depth": {"depth": "fixed"},
    "fixed-width": {"width": "fixed"},
}


def spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def search_facts(run_dir: Path) -> dict[str, Any]:
    text = (run_dir / "search" / "metrics.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines() if line]
    last = rows[-1]
    entropies = [h for stage in last["op_entropy"] for h in stage]
    return {
        "arch_split_acc": last.get("arch_acc"),
        "derived_arch_split_acc": last.get("derived_arch_split_acc"),
        "op_entropy_per_epoch": [
            statistics.fmean(h for stage in r["op_entropy"] for h in stage) for r in rows
        ],
        "final_op_entropy": statistics.fmean(entropies),
        "search_seconds": sum(r["seconds"] for r in rows),
    }


def budget_config(args: argparse.Namespace, seed: int, **settings: Any) -> PipelineConfig:
    """The pipeline every ablation and baseline shares: the same table, data, seed and
    retraining budget (a short schedule: higher learning rate, no drop-connect)."""
    return PipelineConfig(
        space=args.space,
        lut=args.lut,
        data=args.data,
        seed=seed,
        calibrate_archs=0,
        train={
            "epochs": args.train_epochs,
            "limit": args.train_images,
            "lr": 0.1,
            "drop_connect": 0.0,
        },  # fmt: skip
        **settings,
    )


def searched_config(args: argparse.Namespace, variant: str, seed: int) -> PipelineConfig:
    """A search with one freedom changed (``variant``), at ``args.fraction`` of the range."""
    search = {"epochs": args.search_epochs, "warmup_epochs": 1, "limit": args.search_images}
    return budget_config(
        args, seed, target_fraction=args.fraction, search={**search, **VARIANTS[variant]}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--space", default="tfnas-small")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--search-images", type=int, default=4000)
    parser.add_argument("--search-epochs", type=int, default=4)
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--train-epochs", type=int, default=2)
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    result: dict[str, Any] = {"command": "python " + " ".join(sys.argv), "variants": {}}
    for name in names:
        runs = []
        for seed in seeds:
            run_dir = Path(args.out) / f"{name}-seed{seed}"
            print(f"== {name}, seed {seed}: {run_dir}", file=sys.stderr, flush=True)
            config = searched_config(args, name, seed)
            summary = run_pipeline(config, run_dir, log=lambda _: None).to_dict()
            runs.append({"seed": seed, **_summary_facts(summary), **search_facts(run_dir)})
            _save_partial(args.out, result, name, runs)
        result["variants"][name] = {
            "settings": VARIANTS[name],
            "runs": runs,
            **{
                key: spread([r[key] for r in runs])
                for key in (
                    "predicted_vs_target_pct",
                    "measured_vs_target_pct",
                    "top1",
                    "arch_split_acc",
                    "final_op_entropy",
                    "search_seconds",
                )
            },
        }
    print(json.dumps(result, indent=2))


def _save_partial(out: str, result: dict[str, Any], name: str, runs: list[dict]) -> None:
    """Runs finished so far, so that a long bench shows its results before it ends."""
    from tfnas.io import atomic_write_json

    atomic_write_json(Path(out) / "ablations.partial.json", {**result, "running": {name: runs}})


def _summary_facts(summary: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "target_ms",
        "predicted_ms",
        "measured_ms",
        "predicted_vs_target_pct",
        "measured_vs_target_pct",
        "top1",
        "params",
        "macs",
        "architecture",
    )
    return {k: summary[k] for k in keys}


if __name__ == "__main__":
    main()
