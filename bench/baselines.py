"""The searched network against baselines at the same latency target on Fashion-MNIST.

Usage: python bench/baselines.py --lut LUT.json --out DIR [--seeds 0,1] [--random 4]
       [--fraction 0.5] [--search-images 4000] [--search-epochs 4] [--train-images 10000]
       [--train-epochs 2]

Every network is retrained with the same budget and evaluated on the 10,000 test images, and
its latency measured as the table was:

- tfnas: the default search (bi-sampling, sink-connecting, elasticity-scaling);
- fbnet-style: the same search with a single Gumbel-sampled path per step;
- random (best of N): N uniformly random architectures, each elasticity-scaled to the target
  (so they cost what the searched network costs), best test top-1 of them;
- mobilenetv2-style: every block k3 e6 without SE at full depth, elasticity-scaled to the target.

Search runs share their folders with bench/ablations.py (DIR/default-seedS, DIR/gumbel-seedS):
pointed at the same DIR, either bench reuses the other's finished runs. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from ablations import budget_config, searched_config, spread

from tfnas.arch import random_architecture, uniform_architecture
from tfnas.block import OpSpec
from tfnas.io import atomic_write_json
from tfnas.latency.table import load_table, target_at_fraction
from tfnas.pipeline import run_pipeline
from tfnas.pipeline_config import PipelineConfig
from tfnas.search.elastic import elastic_scale
from tfnas.space import load_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--space", default="tfnas-small")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--random", type=int, default=4, help="random architectures per seed")
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--search-images", type=int, default=4000)
    parser.add_argument("--search-epochs", type=int, default=4)
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--train-epochs", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    space = load_space(args.space)
    table = load_table(args.lut, space)
    target = target_at_fraction(space, table, args.fraction)
    seeds = [int(s) for s in args.seeds.split(",")]

    def pipeline(run_dir: Path, config: PipelineConfig) -> dict[str, Any]:
        print(f"== {run_dir}", file=sys.stderr, flush=True)
        s = run_pipeline(config, run_dir, log=lambda _: None).to_dict()
        keys = ("predicted_ms", "measured_ms", "measured_vs_target_pct", "top1", "params")
        return {"run_dir": str(run_dir), "architecture": s["architecture"]} | {
            k: s[k] for k in keys
        }

    def searched(variant: str, seed: int) -> dict[str, Any]:
        return pipeline(out / f"{variant}-seed{seed}", searched_config(args, variant, seed))

    def scaled(name: str, arch, seed: int) -> dict[str, Any]:
        arch = elastic_scale(space, arch, table, target).arch
        path = out / "archs" / f"{name}.json"
        arch.save(path)
        return pipeline(out / name, budget_config(args, seed, arch=str(path)))

    methods: dict[str, list[dict[str, Any]]] = {
        "tfnas": [],
        "fbnet-style": [],
        "random-best": [],
        "mobilenetv2-style": [],
    }
    random_runs: list[dict[str, Any]] = []
    for seed in seeds:
        methods["tfnas"].append(searched("default", seed))
        methods["fbnet-style"].append(searched("gumbel", seed))
        mbv2 = uniform_architecture(space, OpSpec(3, 6, False))
        methods["mobilenetv2-style"].append(scaled(f"mobilenetv2-seed{seed}", mbv2, seed))
        candidates = [
            scaled(f"random{k}-seed{seed}", random_architecture(space, 1000 * seed + k), seed)
            for k in range(args.random)
        ]
        random_runs += candidates
        methods["random-best"].append(max(candidates, key=lambda c: c["top1"]))
        atomic_write_json(out / "baselines.partial.json", methods)
    result = {
        "command": "python " + " ".join(sys.argv),
        "target_ms": target,
        "methods": {
            name: {
                "top1": spread([r["top1"] for r in runs]),
                "measured_ms": spread([r["measured_ms"] for r in runs]),
                "runs": runs,
            }
            for name, runs in methods.items()
        },
        "random_all_top1": spread([r["top1"] for r in random_runs]),
        "tfnas_minus_random_best_top1_pct": 100
        * statistics.fmean(
            a["top1"] - b["top1"]
            for a, b in zip(methods["tfnas"], methods["random-best"], strict=True)
        ),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
