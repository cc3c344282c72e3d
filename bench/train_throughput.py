"""Retraining throughput: seconds per epoch and images/s of ``tfnas train``'s own loop.

Usage: python bench/train_throughput.py [--space tfnas-small] [--data fashion-mnist]
       [--epochs 2] [--limit N] [--batch-size 256] [--device cpu|cuda]
       [--precision auto|bf16|fp16|fp32] [--arch ARCH.json] [--out DIR]

Trains an architecture (default: every block k3 e6 without SE at full depth and nominal
widths, the MobileNetV2-style network of the space) for ``--epochs`` epochs with the real
Trainer and reports each epoch's training time from its metrics: the first epoch includes
one-time costs (data preparation on the device, kernel selection), so the figure to quote is
the last epoch's. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from tfnas.arch import uniform_architecture
from tfnas.block import OpSpec
from tfnas.options import PRECISIONS
from tfnas.space import load_space
from tfnas.train import train
from tfnas.train_config import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="tfnas-small")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, help="train on this many images")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--arch", help="an architecture file (default: MobileNetV2-style)")
    parser.add_argument("--out", help="keep the run directory here (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        arch = args.arch
        if arch is None:
            arch = str(Path(scratch) / "arch.json")
            uniform_architecture(load_space(args.space), OpSpec(3, 6, False)).save(arch)
        run_dir = Path(args.out) if args.out else Path(scratch) / "run"
        config = TrainConfig(
            arch=arch,
            space=args.space,
            data=args.data,
            epochs=args.epochs,
            batch_size=args.batch_size,
            limit=args.limit,
            device=args.device,
            precision=args.precision,
        )
        result = train(config, run_dir, progress=False)
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [
        {
            "epoch": r["epoch"],
            "train_seconds": r["train_seconds"],
            "images_per_second": r["train_images"] / r["train_seconds"],
            "test_top1": r["test_top1"],
        }
        for r in rows
    ]
    out = {
        "space": args.space,
        "data": args.data,
        "device": args.device,
        "precision": args.precision,
        "batch_size": args.batch_size,
        "epochs": epochs,
        "last_epoch_seconds": epochs[-1]["train_seconds"],
        "best_top1": result.best_top1,
    }
    if args.device == "cuda":
        out["gpu"] = torch.cuda.get_device_name()
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
