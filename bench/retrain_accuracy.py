"""Test accuracy of a searched network after a longer retraining, within a time budget.

Usage: python bench/retrain_accuracy.py ARCH.json --out RUN_DIR [--epochs 10] [--lr 0.1]
       [--drop-connect 0.0] [--batch-size 128] [--data fashion-mnist] [--seed 0]
       [--budget-minutes 30]

Retrains ARCH.json on the whole training set with `tfnas train`'s recipe (cosine schedule,
label smoothing, augmentation) and reports the test top-1 after every epoch, the wall time of
training and whether the best top-1 was reached within the budget. RUN_DIR keeps the
checkpoints: run the same command again after a kill and it resumes (the wall time then
counts the epochs' own seconds, as recorded). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from tfnas.arch import load_architecture
from tfnas.complexity import network_cost
from tfnas.nn.network import Network
from tfnas.train import train
from tfnas.train_config import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch")
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--drop-connect", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--budget-minutes", type=float, default=30.0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(
        arch=args.arch,
        data=args.data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        drop_connect=args.drop_connect,
        seed=args.seed,
    )
    started = time.perf_counter()
    result = train(config, args.out, resume=True)
    wall = time.perf_counter() - started
    history = result.history
    arch, space = load_architecture(args.arch)
    cost = network_cost(Network(space, arch))
    epoch_seconds = [row["seconds"] for row in history]
    best = max(history, key=lambda row: row["test_top1"])
    reached_at = sum(epoch_seconds[: best["epoch"] + 1])
    print(
        json.dumps(
            {
                "command": "python " + " ".join(sys.argv),
                "architecture": arch.describe(),
                "params": cost.params,
                "macs": cost.macs,
                "config": {k: v for k, v in vars(args).items() if k not in ("arch", "out")},
                "threads": torch.get_num_threads(),
                "test_top1_per_epoch": [row["test_top1"] for row in history],
                "epoch_seconds": epoch_seconds,
                "best_test_top1": best["test_top1"],
                "best_epoch": best["epoch"] + 1,
                "training_seconds": sum(epoch_seconds),
                "best_reached_after_seconds": reached_at,
                "within_budget": reached_at <= args.budget_minutes * 60,
                "this_invocation_wall_seconds": wall,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
