"""A ground-truth set of retrained architectures at one latency, for judging searches cheaply.

Usage: python bench/ground_truth.py [--archs 30] [--seeds 0,1] [--threads 2] [--report-only]
       [--lut bench/data/tfnas-small-cpu-lut.json] [--out bench/results/ground_truth]

One committed latency table (``bench/data/``, a demo table of ``tfnas-small``) and its
target, the middle of its feasible range, fix what every number refers to. The set is the
MobileNetV2-style network (every block k3 e6 without SE, full depth) and ``--archs``
architectures drawn uniformly (op per block, depth per stage; a seeded draw per
architecture), each elasticity-scaled onto the target (a draw whose widths cannot reach it
within 1% is skipped and counted). The list is written once to OUT/archs.json and read back
on every later run, so the set stays fixed.

Every architecture is retrained with the demo's recipe (``make demo``: the 60,000 training
images, 2 epochs, lr 0.1, no drop-connect; the rest ``tfnas train``'s defaults) with each
of ``--seeds``, and scored on the 10,000 test images: one result file per network and seed
(OUT/NAME-seedS.json), written when its training ends; a training killed midway resumes
from its last epoch (runs/ground_truth/). Architecture-major order: the first networks are
complete (every seed) before the next starts, so a partial set is already usable.

Reported (OUT/summary.json, also printed): per architecture its mean and seed spread; the
pooled seed-to-seed s.d.; the between-architecture s.d. (its variance less the seeds' share
of the means' variance); the reliability of a mean of the seeds (the share of its variance
that is architecture) and from it the highest Kendall tau any ranking can expect against
this set, (2/pi) asin(sqrt(reliability)) for normal errors; and what the set says about the
space at this latency: Spearman's rho of the mean accuracy with the number of SE blocks,
expansion-6 and kernel-5 blocks, depth per stage, total depth, total mid width, MACs and
params, and a least-squares fit on the standardised features.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from tfnas.arch import (
    Architecture,
    architecture_from_dict,
    random_architecture,
    uniform_architecture,
)
from tfnas.block import OpSpec
from tfnas.complexity import network_cost
from tfnas.io import atomic_write_json
from tfnas.latency.table import load_table, target_at_fraction
from tfnas.nn.network import Network
from tfnas.search.elastic import scale_onto_target
from tfnas.space import SearchSpace, load_space
from tfnas.train import train
from tfnas.train_config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LUT = ROOT / "bench" / "data" / "tfnas-small-cpu-lut.json"
DEFAULT_OUT = ROOT / "bench" / "results" / "ground_truth"
RUNS = ROOT / "runs" / "ground_truth"
FRACTION = 0.5
# the demo's retraining (Makefile: --train-epochs 2 --train-lr 0.1 --train-drop-connect 0)
RECIPE: dict[str, Any] = {"epochs": 2, "lr": 0.1, "drop_connect": 0.0}
DRAW_SEED = 20_000  # architecture k is drawn with the seeds from DRAW_SEED + k on


def draw_set(space: SearchSpace, table, target: float, count: int) -> dict[str, Any]:
    """The MobileNetV2-style network and ``count`` uniform draws, all scaled onto ``target``."""
    archs: list[dict[str, Any]] = []
    mbv2 = scale_onto_target(space, uniform_architecture(space, OpSpec(3, 6, False)), table, target)
    if mbv2 is not None:
        archs.append({"name": "mobilenetv2-style", "arch": mbv2.to_dict()})
    skipped, draw = 0, 0
    while len(archs) < count + (mbv2 is not None):
        arch = scale_onto_target(space, random_architecture(space, DRAW_SEED + draw), table, target)
        draw += 1
        if arch is None:
            skipped += 1
            continue
        archs.append(
            {"name": f"random{len(archs) - (mbv2 is not None):02d}", "arch": arch.to_dict()}
        )
    for entry in archs:
        entry["predicted_ms"] = table.predict(space, architecture_from_dict(entry["arch"]))
    return {"target_ms": target, "draws": draw, "skipped_draws": skipped, "archs": archs}


def features(space: SearchSpace, arch: Architecture) -> dict[str, float]:
    """What the set's accuracies are fitted against: op mix, depth, width and cost."""
    choices = [c for stage in arch.stages for c in stage]
    net = Network(space, arch, 10, space.input_channels)
    cost = network_cost(net)
    row: dict[str, float] = {
        "se_blocks": sum(c.op.se for c in choices),
        "e6_blocks": sum(c.op.expansion == 6 for c in choices),
        "k5_blocks": sum(c.op.kernel == 5 for c in choices),
        "depth": len(choices),
        "mid_width": sum(c.width for c in choices),
        "macs": cost.macs,
        "params": cost.params,
    }
    for s, stage in enumerate(arch.stages):
        row[f"depth_stage{s + 1}"] = len(stage)
    return row


def retrain(name: str, arch_path: Path, seed: int, out: Path) -> dict[str, Any]:
    """One training of the set (resumed if it was killed), its result file written at its end."""
    result_path = out / f"{name}-seed{seed}.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    print(f"== {name} seed {seed}", file=sys.stderr, flush=True)
    config = TrainConfig(arch=str(arch_path), space="tfnas-small", seed=seed, **RECIPE)
    started = time.perf_counter()
    result = train(config, RUNS / f"{name}-seed{seed}", resume=True, progress=False)
    last = result.last
    row = {
        "name": name,
        "seed": seed,
        "top1": last["test_top1"],  # after the last epoch: no choice made on the test images
        "best_top1": result.best_top1,
        "train_acc": last["train_acc"],
        "epochs": result.epochs,
        "recipe": RECIPE,
        "threads": torch.get_num_threads(),
        "seconds": time.perf_counter() - started,
    }
    atomic_write_json(result_path, row)
    return row


def summarise(space: SearchSpace, listing: dict[str, Any], out: Path) -> dict[str, Any]:
    """Everything the issue asks of the set, from the result files present so far."""
    per_arch = []
    for entry in listing["archs"]:
        runs = [json.loads(p.read_text()) for p in sorted(out.glob(f"{entry['name']}-seed*.json"))]
        if not runs:
            continue
        top1 = [r["top1"] for r in runs]
        arch = architecture_from_dict(entry["arch"])
        per_arch.append(
            {
                "name": entry["name"],
                "architecture": arch.describe(),
                "seeds": [r["seed"] for r in runs],
                "top1": top1,
                "mean": statistics.fmean(top1),
                "seed_sd": statistics.stdev(top1) if len(top1) > 1 else None,
                "features": features(space, arch),
            }
        )
    result: dict[str, Any] = {
        "command": "python bench/ground_truth.py",
        "lut": listing["lut"],
        "target_ms": listing["target_ms"],
        "recipe": RECIPE,
        "architectures_trained": len(per_arch),
        "trainings": sum(len(a["top1"]) for a in per_arch),
        "per_arch": sorted(per_arch, key=lambda a: -a["mean"]),
    }
    repeated = [a for a in per_arch if len(a["top1"]) > 1]
    if len(repeated) >= 2:
        result["noise"] = reliability(repeated)
    if len(per_arch) >= 5:
        result["space_fit"] = space_fit(per_arch)
    return result


def reliability(per_arch: list[dict[str, Any]]) -> dict[str, float]:
    """Seed and architecture variance components (one-way random effects on the
    architectures trained with several seeds) and what they allow a ranking to reach."""
    within = statistics.fmean(statistics.variance(a["top1"]) for a in per_arch)
    seeds = statistics.fmean(len(a["top1"]) for a in per_arch)
    means_var = statistics.variance([a["mean"] for a in per_arch])
    between = max(0.0, means_var - within / seeds)
    share = between / (between + within / seeds) if between + within > 0 else 0.0
    low, high = _reliability_interval(per_arch, within, seeds, means_var)
    return {
        "architectures": len(per_arch),
        "seeds_per_architecture": seeds,
        "seed_sd": math.sqrt(within),
        "between_architecture_sd": math.sqrt(between),
        "sd_of_means": math.sqrt(means_var),
        # the share of a seed-mean's variance that is the architecture's own
        "reliability": share,
        # Kendall's tau of the true order against the measured means (bivariate normal):
        # no supernet's ranking can be expected to beat it against this set
        "attainable_kendall_tau": 2 / math.pi * math.asin(math.sqrt(share)),
        # 95% interval of the reliability (F distribution of the one-way layout), and the
        # attainable tau at its upper end: how far a small set can be trusted
        "reliability_95": [low, high],
        "attainable_kendall_tau_upper_95": 2 / math.pi * math.asin(math.sqrt(high)),
        # the gap between two architectures' seed means that a two-sided test at 5% finds
        # with 80% power: what a retraining comparison on this recipe can resolve
        "detectable_difference": (stats.norm.ppf(0.975) + stats.norm.ppf(0.8))
        * math.sqrt(within * 2 / seeds),
    }


def _reliability_interval(
    per_arch: list[dict[str, Any]], within: float, seeds: float, means_var: float
) -> tuple[float, float]:
    """Confidence limits of the seed-mean reliability 1 - 1/F, F = the ratio of the between-
    to the within-architecture mean squares (McGraw and Wong's ICC(1,k) interval)."""
    df_between = len(per_arch) - 1
    df_within = sum(len(a["top1"]) - 1 for a in per_arch)
    if within <= 0 or df_between < 1 or df_within < 1:
        return 0.0, 1.0
    ratio = seeds * means_var / within
    low = 1 - stats.f.ppf(0.975, df_between, df_within) / ratio
    high = 1 - stats.f.ppf(0.025, df_between, df_within) / ratio
    return max(0.0, low), min(1.0, max(0.0, high))


def space_fit(per_arch: list[dict[str, Any]]) -> dict[str, Any]:
    """Rank correlations of each feature with the mean accuracy, and a least-squares fit on
    the standardised op-mix and depth features (MACs and params follow from them)."""
    means = np.array([a["mean"] for a in per_arch])
    names = list(per_arch[0]["features"])
    rho = {}
    for name in names:
        values = [a["features"][name] for a in per_arch]
        if len(set(values)) > 1:
            r, p = stats.spearmanr(values, means)
            rho[name] = {"rho": float(r), "p": float(p)}
    fitted = ["se_blocks", "e6_blocks", "k5_blocks", "depth", "mid_width"]
    x = np.array([[a["features"][n] for n in fitted] for a in per_arch], dtype=float)
    spread = x.std(0)
    keep = spread > 0
    z = (x[:, keep] - x[:, keep].mean(0)) / spread[keep]
    design = np.column_stack([np.ones(len(z)), z])
    coef, *_ = np.linalg.lstsq(design, means, rcond=None)
    residual = means - design @ coef
    r2 = 1 - float(residual @ residual) / float(((means - means.mean()) ** 2).sum())
    return {
        "spearman": rho,
        "linear_fit": {
            # top-1 points per standard deviation of each feature, all fitted together
            "points_per_sd": {
                n: float(c) * 100
                for n, c in zip(
                    [n for n, k in zip(fitted, keep, strict=True) if k], coef[1:], strict=True
                )
            },
            "feature_sd": {n: float(s) for n, s in zip(fitted, spread, strict=True)},
            "r2": r2,
            "n": len(per_arch),
        },
    }


def open_listing(args: argparse.Namespace, space: SearchSpace) -> dict[str, Any]:
    """The fixed set: read back from OUT/archs.json, or drawn and written there once."""
    table = load_table(args.lut, space)
    digest = hashlib.sha256(Path(args.lut).read_bytes()).hexdigest()
    path = Path(args.out) / "archs.json"
    if path.exists():
        listing = json.loads(path.read_text())
        if listing["lut_sha256"] != digest:
            sys.exit(f"{path}: was drawn on another latency table than {args.lut}.")
        if len(listing["archs"]) < args.archs + 1:
            sys.exit(
                f"{path}: holds fewer architectures than --archs {args.archs}; "
                "choose another --out."
            )
        return listing
    target = target_at_fraction(space, table, FRACTION)
    listing = {
        "lut": str(Path(args.lut).resolve().relative_to(ROOT)),
        "lut_sha256": digest,
        "fraction": FRACTION,
        "space_hash": space.hash,
    } | draw_set(space, table, target, args.archs)
    atomic_write_json(path, listing)
    return listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", default=str(DEFAULT_LUT))
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report-only", action="store_true", help="summarise, train nothing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = load_space("tfnas-small")
    listing = open_listing(args, space)
    arch_dir = RUNS / "archs"
    seeds = [int(s) for s in args.seeds.split(",")]
    if not args.report_only:
        for entry in listing["archs"]:
            path = arch_dir / f"{entry['name']}.json"
            if not path.exists():
                architecture_from_dict(entry["arch"]).save(path)
            for seed in seeds:
                row = retrain(entry["name"], path, seed, out)
                print(f"{entry['name']} seed {seed}: top-1 {row['top1']:.4f}", file=sys.stderr)
                atomic_write_json(out / "summary.json", summarise(space, listing, out))
    summary = summarise(space, listing, out)
    atomic_write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
