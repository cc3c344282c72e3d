"""How well a trained supernet ranks the ground-truth set: minutes per supernet, no retraining.

Usage: python bench/supernet_rank.py RUN_DIR [RUN_DIR ...] [--set bench/results/ground_truth]
       [--bn-batches 20] [--eval-images 2000] [--threads 2] [--out FILE.json]

RUN_DIR is a search run (``tfnas search --out RUN_DIR``, or a pipeline's ``RUN/search``).
Every architecture of the ground-truth set (bench/ground_truth.py) that has retrained
results is scored as a path of the run's supernet (tfnas.search.path_score: batch norms
re-estimated on ``--bn-batches`` training batches, top-1 on the first ``--eval-images`` of
the 10,000 test images, the same images for every architecture) and compared with its
retrained mean top-1: Kendall's tau, Spearman's rho, and the precision of the supernet's
top 5 (how many of the 5 it scores best are among the set's best 5). Several runs: each
one, and the mean tau. Prints JSON (also to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from tfnas.arch import architecture_from_dict
from tfnas.data import open_dataset
from tfnas.io import atomic_write_json
from tfnas.loader import Batches
from tfnas.search.path_score import PathScorer, ranking_quality, trained_supernet

ROOT = Path(__file__).resolve().parent.parent


def load_set(directory: Path) -> list[dict[str, Any]]:
    """The set's architectures that have results, with their mean retrained top-1."""
    listing = json.loads((directory / "archs.json").read_text())
    out = []
    for entry in listing["archs"]:
        runs = [json.loads(p.read_text()) for p in directory.glob(f"{entry['name']}-seed*.json")]
        if runs:
            out.append(
                {
                    "name": entry["name"],
                    "arch": architecture_from_dict(entry["arch"]),
                    "top1": statistics.fmean(r["top1"] for r in runs),
                }
            )
    return out


def score_run(run_dir: Path, members: list[dict[str, Any]], args) -> dict[str, Any]:
    started = time.perf_counter()
    net, config = trained_supernet(run_dir)
    net = net.to(memory_format=torch.channels_last)
    size, channels = net.space.input_size, net.in_channels
    train = open_dataset(config.data, "train", image_size=size, channels=channels)
    test = open_dataset(config.data, "test", image_size=size, channels=channels)
    bn = list(Batches(train, 64).epoch(7))[: args.bn_batches]
    evaluation = list(Batches(test, 500, shuffle=False, drop_last=False).epoch(0))
    kept, images = [], 0
    for images_batch, labels in evaluation:
        if images >= args.eval_images:
            break
        kept.append((images_batch, labels))
        images += len(labels)
    scorer = PathScorer(
        net, bn, kept, prepare=lambda x: x.contiguous(memory_format=torch.channels_last)
    )
    scores = scorer.score_all([m["arch"] for m in members])
    truth = [m["top1"] for m in members]
    return {
        "run": str(run_dir),
        "search": {k: getattr(config, k) for k in ("seed", "epochs", "limit", "sampling",
                                                    "op_weights", "depth", "lambda_lat")},
        "scores": dict(zip([m["name"] for m in members], scores, strict=True)),
        **ranking_quality(scores, truth),
        "seconds": time.perf_counter() - started,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--set", type=Path, default=ROOT / "bench" / "results" / "ground_truth")
    parser.add_argument("--bn-batches", type=int, default=20)
    parser.add_argument("--eval-images", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    members = load_set(args.set)
    if len(members) < 3:
        sys.exit(f"{args.set}: fewer than 3 architectures have results; nothing to rank.")
    runs = [score_run(run, members, args) for run in args.runs]
    result = {
        "command": "python " + " ".join(sys.argv),
        "architectures": len(members),
        "bn_batches": args.bn_batches,
        "eval_images": args.eval_images,
        "runs": runs,
        "kendall_tau_mean": statistics.fmean(r["kendall_tau"] for r in runs),
        "spearman_rho_mean": statistics.fmean(r["spearman_rho"] for r in runs),
    }
    if args.out:
        atomic_write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
