"""Does this tree give the same results as an earlier commit? A search and a short training,
run by both with the same settings and seeds, compared file by file.

Usage: python bench/same_results.py [--base c48a453] [--limit 4000] [--search-epochs 4]
       [--warmup-epochs 1] [--train-limit 2000] [--train-epochs 1] [--threads 1]

The defaults are the demo's search (4,000 images, 4 epochs, 1 warm-up epoch, at the middle
of the committed table's range) and a one-epoch training of its result. The base commit is
checked out into a temporary git worktree and run with the same interpreter and packages
(its source first on the path). Compared: ``arch.json`` byte for byte, the search's
metrics without timings, and every tensor of the training's ``best.pt`` and ``last.pt``
(``torch.equal``). Prints JSON; exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from common import ROOT, run_tfnas, source_of

LUT = ROOT / "bench" / "data" / "tfnas-small-cpu-lut.json"
TIMINGS = {"seconds", "images_per_second", "train_seconds"}  # wall-clock figures, not results


def run(src: Path, out: Path, args: argparse.Namespace) -> None:
    threads = ["--threads", str(args.threads)]
    search = ["search", "--space", "tfnas-small", "--lut", str(LUT), "--target-fraction", "0.5",
              "--data", "fashion-mnist", "--limit", str(args.limit), "--epochs",
              str(args.search_epochs), "--warmup-epochs", str(args.warmup_epochs),
              "--out", str(out / "search")]  # fmt: skip
    train = ["train", str(out / "search" / "arch.json"), "--data", "fashion-mnist", "--limit",
             str(args.train_limit), "--epochs", str(args.train_epochs), "--out",
             str(out / "train")]  # fmt: skip
    for command in (search, train):
        run_tfnas(src, [*command, *threads], stdout=subprocess.DEVNULL)


def metrics(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


def tensors_equal(a: Path, b: Path) -> list[str]:
    """The names of the entries that differ between two checkpoints."""
    sa = torch.load(a, map_location="cpu", weights_only=True)
    sb = torch.load(b, map_location="cpu", weights_only=True)

    def flat(state, prefix=""):
        if isinstance(state, dict):
            for k, v in state.items():
                yield from flat(v, f"{prefix}{k}.")
        else:
            yield prefix.rstrip("."), state

    fa, fb = dict(flat(sa)), dict(flat(sb))
    differ = sorted(fa.keys() ^ fb.keys())
    for key in sorted(fa.keys() & fb.keys()):
        x, y = fa[key], fb[key]
        same = torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
        if not same and key not in TIMINGS:
            differ.append(key)
    return differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", default="c48a453", help="the commit before the redesign (issue 20) began"
    )
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--search-epochs", type=int, default=4)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--train-limit", type=int, default=2000)
    parser.add_argument("--train-epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tfnas-same-") as tmp:
        tmp = Path(tmp)
        with source_of(args.base) as base_src:
            run(base_src, tmp / "base", args)
        run(ROOT / "src", tmp / "here", args)
        base, here = tmp / "base", tmp / "here"
        result = {
            "command": "python bench/same_results.py " + " ".join(sys.argv[1:]),
            "base": args.base,
            "arch_json_identical": (base / "search" / "arch.json").read_bytes()
            == (here / "search" / "arch.json").read_bytes(),
            "search_metrics_equal": metrics(base / "search" / "metrics.jsonl")
            == metrics(here / "search" / "metrics.jsonl"),
            "best_pt_entries_differing": tensors_equal(
                base / "train" / "best.pt", here / "train" / "best.pt"
            ),
            "last_pt_entries_differing": tensors_equal(
                base / "train" / "last.pt", here / "train" / "last.pt"
            ),
            "architecture": json.loads((here / "search" / "arch.json").read_text()),
        }
    print(json.dumps(result, indent=2))
    same = result["arch_json_identical"] and result["search_metrics_equal"]
    same = same and not (result["best_pt_entries_differing"] or result["last_pt_entries_differing"])
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
