"""Short trainings with and without re-estimated batch-norm statistics ("precise BN").

The same architecture, data and seed, trained for E epochs on N Fashion-MNIST images, then
evaluated on the 10,000 test images: once with the running statistics training left
(``--bn-batches 0``), once with them re-estimated on 50 training batches (the default for
runs of under 1,000 steps). Prints JSON: per seed, test top-1 of both and the training
accuracy of the last epoch.

Usage: python bench/precise_bn.py [--images 2000] [--epochs 1,2] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from tfnas.arch import random_architecture
from tfnas.space import load_space
from tfnas.train import train
from tfnas.train_config import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", default="1,2")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--arch-seed", type=int, default=0)
    args = parser.parse_args()
    space = load_space("tfnas-small")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        arch = Path(tmp) / "arch.json"
        random_architecture(space, args.arch_seed).save(arch)
        for epochs in map(int, args.epochs.split(",")):
            for seed in map(int, args.seeds.split(",")):
                row = {"epochs": epochs, "seed": seed}
                for name, bn in (("running", 0), ("re_estimated", 50)):
                    config = TrainConfig(
                        arch=str(arch), epochs=epochs, limit=args.images, seed=seed,
                        bn_batches=bn,
                    )  # fmt: skip
                    result = train(config, Path(tmp) / f"{epochs}-{seed}-{name}", progress=False)
                    last = result.last
                    row[f"test_top1_{name}"] = last["test_top1"]
                    row["train_acc"] = last["train_acc"]
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    summary = {}
    for epochs in sorted({r["epochs"] for r in rows}):
        group = [r for r in rows if r["epochs"] == epochs]
        summary[f"{epochs}_epochs"] = {
            k: statistics.mean(r[k] for r in group)
            for k in ("train_acc", "test_top1_running", "test_top1_re_estimated")
        }
    print(
        json.dumps(
            {
                "command": "python bench/precise_bn.py " + " ".join(sys.argv[1:]),
                "images": args.images,
                "architecture": f"random tfnas-small architecture, seed {args.arch_seed}",
                "mean": summary,
                "runs": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
