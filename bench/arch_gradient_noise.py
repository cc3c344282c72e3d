"""How much signal is in one architecture step? Signal-to-noise of the alphas' gradients.

Usage: python bench/arch_gradient_noise.py SEARCH_RUN_DIR [--batches 12] [--taus 5,1]

Loads a search's last checkpoint (supernet weights and architecture parameters) and computes
the gradient of the architecture loss with respect to every alpha on ``--batches`` batches of
the architecture split, as an architecture step does (weights frozen), with and without the
Gumbel noise and with and without the latency term. Per alpha element: |mean| / standard
deviation over the batches (the signal-to-noise ratio of one step), averaged; and the mean
|gradient|, against the L2 term ``weight_decay * alpha`` that Adam's weight decay adds.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from tfnas.data import split_for_search
from tfnas.latency.table import load_table
from tfnas.loader import Batches
from tfnas.nn.supernet import Supernet
from tfnas.search.config import SearchConfig
from tfnas.search.sampling import gumbel_softmax
from tfnas.space import load_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--taus", default="5,1")
    args = parser.parse_args()
    run = Path(args.run_dir)
    saved = json.loads((run / "config.json").read_text())
    saved["arch_betas"] = tuple(saved["arch_betas"])
    config = SearchConfig(**saved)
    space = load_space(config.space)
    table = load_table(config.lut, space)
    net = Supernet(space, 10, config.in_channels, config.depth, config.op_weights)
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(state["net"])
    net.to(memory_format=torch.channels_last).train()
    for p in net.weight_parameters():
        p.requires_grad_(False)
    _, arch_data = split_for_search(
        config.data,
        image_size=space.input_size,
        channels=config.in_channels or space.input_channels,
        arch_fraction=config.arch_fraction,
        seed=config.seed,
        limit=config.limit,
        root=config.data_root,
    )
    batches = list(Batches(arch_data, config.batch_size).epoch(3))[: args.batches]
    generator = torch.Generator().manual_seed(0)

    def gradients(tau: float, noise: bool, latency: bool) -> dict[str, float]:
        grads = []
        for images, labels in batches:
            op_weights = [
                [
                    gumbel_softmax(net.alpha(s, b), tau, generator)
                    if noise
                    else torch.softmax(net.alpha(s, b) / tau, 0)
                    for b in range(len(stage))
                ]
                for s, stage in enumerate(net.stages)
            ]
            depth = net.depth_weights()
            for alpha in net.alphas:
                alpha.grad = None
            images = images.contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(net(images, op_weights=op_weights, depth_weights=depth), labels)
            if latency:
                expected = net.expected_latency(table, op_weights, depth)
                loss = loss + config.lambda_lat * (expected / config.target_ms - 1).abs()
            loss.backward()
            grads.append(torch.cat([a.grad.detach().clone() for a in net.alphas]))
        g = torch.stack(grads)
        mean, std = g.mean(0), g.std(0)
        return {
            "snr_per_element": float((mean.abs() / std.clamp_min(1e-20)).mean()),
            "mean_abs_gradient": float(g.abs().mean()),
        }

    alphas = torch.cat([a.detach() for a in net.alphas])
    rows = []
    for tau in (float(t) for t in args.taus.split(",")):
        for noise in (True, False):
            for latency in (False, True):
                row = {"tau": tau, "gumbel_noise": noise, "latency_term": latency}
                rows.append(row | gradients(tau, noise, latency))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result = {
        "command": "python " + " ".join(sys.argv),
        "run_dir": str(run),
        "mean_abs_alpha": float(alphas.abs().mean()),
        "l2_term_at_paper_weight_decay_5e-4": 5e-4 * float(alphas.abs().mean()),
        "rows": rows,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
