"""How fast does the supernet learn? Training accuracy against images seen, per way of training.

Usage: python bench/supernet_learning.py [--steps 200] [--batch-size 64] [--lr 0.1]
       [--variants standalone,fixed-path,...] [--seeds 0] [--limit 12000] [--threads N]

Every variant starts from the same initial weights (one seeded supernet; the standalone
network is extracted from it) and sees the same batches of Fashion-MNIST's training images,
with the same SGD (momentum 0.9, weight decay 1e-5, gradient clipping 5, cosine schedule over
the run). Reported per variant and seed: the training accuracy of the first sampled path in
each fifth of the run, and at the end the mean accuracy of 8 uniformly random paths (random op
per block, random depth per stage) and of the fixed k3_e3 full-depth path, scored on 2,000
held-out training images with batch statistics, as the search scores paths. Prints JSON.

Variants (name: supernet op weights, depth, paths per step):
  standalone            the k3_e3 full-depth network alone
  fixed-path            the supernet trained on that one path (must learn like standalone)
  gumbel                separate ops, sink depth, one Gumbel path (uniform alphas)
  bi-sampling           separate ops, sink depth, Gumbel path + random other path (the paper)
  bi-sampling-full      separate ops, full depth, bi-sampling
  shared-gumbel         shared kernel bank, sink depth, one path
  shared-bi-sampling    shared kernel bank, sink depth, bi-sampling
  shared-bi-sampling-full  shared kernel bank, full depth, bi-sampling
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass

import torch

from tfnas.data import open_dataset
from tfnas.loader import Batches
from tfnas.nn.supernet import Supernet
from tfnas.schedules import cosine_lr
from tfnas.search.sampling import sample_paths
from tfnas.search.steps import StepStats, batch_stat_accuracy, weight_step
from tfnas.space import load_space


@dataclass(frozen=True)
class Variant:
    op_weights: str = "separate"
    depth: str = "sink"
    sampling: str | None = "gumbel-random"  # None: the fixed k3_e3 path
    standalone: bool = False


VARIANTS = {
    "standalone": Variant(sampling=None, standalone=True),
    "fixed-path": Variant(sampling=None),
    "gumbel": Variant(sampling="gumbel"),
    "bi-sampling": Variant(),
    "bi-sampling-full": Variant(depth="fixed"),
    "shared-gumbel": Variant(op_weights="shared", sampling="gumbel"),
    "shared-bi-sampling": Variant(op_weights="shared"),
    "shared-bi-sampling-full": Variant(op_weights="shared", depth="fixed"),
}


def fixed_path(net: Supernet) -> tuple[list[list[int]], list[torch.Tensor]]:
    """Every block's first op (k3_e3 in the built-in spaces), every stage at full depth."""
    path = [[0] * len(stage) for stage in net.stages]
    depth = []
    for spec in net.space.stages:
        w = torch.zeros(len(spec.depths))
        w[-1] = 1
        depth.append(w)
    return path, depth


def random_path(net: Supernet, generator: torch.Generator):
    path = [
        [int(torch.randint(len(block.ops), (1,), generator=generator)) for block in stage]
        for stage in net.stages
    ]
    depth = []
    for spec in net.space.stages:
        w = torch.zeros(len(spec.depths))
        w[int(torch.randint(len(spec.depths), (1,), generator=generator))] = 1
        depth.append(w)
    return path, depth


def path_accuracy(net: Supernet, path, depth, batches) -> float:
    return batch_stat_accuracy(net, lambda x: net(x, path=path, depth_weights=depth), batches)


def run_variant(name: str, args, train_batches: Batches, held_out: list, seed: int) -> dict:
    v = VARIANTS[name]
    space = load_space("tfnas-small")
    torch.manual_seed(seed)
    supernet = Supernet(space, 10, depth_mode=v.depth, op_weights=v.op_weights)
    supernet.to(memory_format=torch.channels_last)
    path, depth = fixed_path(supernet)
    if v.standalone:
        model = extract_fixed(supernet)
        params = list(model.parameters())
    else:
        model = supernet
        params = supernet.weight_parameters()
    opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-5)
    generator = torch.Generator().manual_seed(seed + 1)
    alphas = [
        [supernet.alpha(s, b) for b in range(len(st))] for s, st in enumerate(supernet.stages)
    ]
    curve: list[float] = []
    window = StepStats()
    per_window = max(1, args.steps // 5)
    started = time.perf_counter()
    step = 0
    epoch = 0
    while step < args.steps:
        for images, labels in train_batches.epoch(seed * 1000 + epoch):
            if step >= args.steps:
                break
            for group in opt.param_groups:
                group["lr"] = cosine_lr(args.lr, step, args.steps)
            if v.standalone:
                stats = train_standalone(model, opt, images, labels)
            else:
                if v.sampling is None:
                    paths = [path]
                    depth_weights = depth
                else:
                    paths = sample_paths(alphas, v.sampling, generator)
                    depth_weights = None
                stats = weight_step(model, opt, images, labels, paths, depth_weights=depth_weights)
            window.add(stats)
            step += 1
            if step % per_window == 0:
                f = window.as_floats()
                curve.append(round(f["correct"] / f["seen"], 4))
                window = StepStats()
        epoch += 1
    seconds = time.perf_counter() - started
    out = {"variant": name, "seed": seed, "train_acc_by_fifth": curve, "seconds": seconds}
    if v.standalone:
        out["fixed_path_held_out_acc"] = batch_stat_accuracy(model, model, held_out)
        out["weights"] = model
    else:
        g = torch.Generator().manual_seed(12345)
        accs = [path_accuracy(supernet, *random_path(supernet, g), held_out) for _ in range(8)]
        out["random_path_held_out_acc"] = statistics.mean(accs)
        out["fixed_path_held_out_acc"] = path_accuracy(supernet, path, depth, held_out)
        out["weights"] = supernet
    return out


def extract_fixed(net: Supernet):
    """The standalone network of the fixed path, with the supernet's initial weights."""
    with torch.no_grad():
        for alpha in net.alphas:
            alpha.fill_(-10)[0] = 0
        for beta in net.betas:
            beta.fill_(0)[-1] = 10
    arch, sources = net.derive()
    model = net.extract(arch, sources).to(memory_format=torch.channels_last)
    with torch.no_grad():
        for alpha in net.alphas:
            alpha.fill_(-torch.log(torch.tensor(float(len(alpha)))).item())
        for beta in net.betas:
            beta.zero_()
    return model


def train_standalone(model, opt, images, labels) -> StepStats:
    model.train()
    opt.zero_grad(set_to_none=True)
    logits = model(images)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    n = len(labels)
    return StepStats(loss.detach() * n, (logits.detach().argmax(1) == labels).sum(), n, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--threads", type=int)
    parser.add_argument(
        "--compare-weights",
        action="store_true",
        help="also report the largest weight difference standalone vs fixed-path",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    space = load_space("tfnas-small")
    train = open_dataset("fashion-mnist", "train", image_size=space.input_size, channels=1)
    # held-out: the last 2,000 training images, not augmented; training: the first 12,000
    from torch.utils.data import Subset

    held = train.with_augmentation(False)
    n = len(train)
    held.dataset = Subset(held.dataset, range(n - 2000, n))
    train.dataset = Subset(train.dataset, range(args.steps * args.batch_size))
    train_batches = Batches(train, args.batch_size)
    held_out = list(Batches(held, 250, shuffle=False).epoch(0))
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name in names:
            r = run_variant(name, args, train_batches, held_out, seed)
            r.pop("weights")
            results.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    summary = {}
    for name in names:
        rows = [r for r in results if r["variant"] == name]
        summary[name] = {
            "final_train_acc": statistics.mean(r["train_acc_by_fifth"][-1] for r in rows),
            "random_path_held_out_acc": statistics.mean(r["random_path_held_out_acc"] for r in rows)
            if "random_path_held_out_acc" in rows[0]
            else None,
            "fixed_path_held_out_acc": statistics.mean(r["fixed_path_held_out_acc"] for r in rows),
            "seconds": statistics.mean(r["seconds"] for r in rows),
        }
    print(
        json.dumps(
            {
                "steps": args.steps,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "threads": torch.get_num_threads(),
                "summary": summary,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
