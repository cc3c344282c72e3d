"""Parameter and FLOP counts of a network, per block and in total.

FLOPs come from PyTorch's own ``torch.utils.flop_counter`` (one multiply-add = 2 FLOPs);
MACs, the unit the paper's tables call "FLOPs", are half of that.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .nn.network import Network
from .text import millions, text_table


@dataclass(frozen=True)
class PartCost:
    """One row of a network summary: the stem, one block, or the head."""

    name: str
    label: str
    params: int
    flops: int
    width: int | None = None
    min_width: int | None = None
    max_width: int | None = None
    resolution: int | None = None

    @property
    def macs(self) -> int:
        return self.flops // 2


@dataclass(frozen=True)
class NetworkCost:
    parts: tuple[PartCost, ...]
    params: int
    flops: int
    input_shape: tuple[int, ...]

    @property
    def macs(self) -> int:
        return self.flops // 2

    def report(self) -> str:
        """Per part its mid width (and bounds), params and MACs, then the totals."""
        rows = [
            (
                p.name,
                p.label,
                f"{p.width} ({p.min_width}..{p.max_width})" if p.width is not None else "",
                f"{p.params:,}",
                f"{p.macs / 1e6:.2f}M",
            )
            for p in self.parts
        ]
        return (
            text_table(rows, ("part", "block", "mid width (bounds)", "params", "MACs"))
            + f"\ntotal: {millions(self.params)} params, {self.macs / 1e6:.2f}M MACs "
            f"({self.flops / 1e6:.2f}M FLOPs) at {self.input_shape[2]}x{self.input_shape[3]}"
        )

    def to_dict(self) -> dict:
        return {
            "params": self.params,
            "flops": self.flops,
            "macs": self.macs,
            "input_shape": list(self.input_shape),
            "parts": [{**asdict(p), "macs": p.macs} for p in self.parts],
        }


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def network_cost(net: Network) -> NetworkCost:
    """Params and FLOPs (batch 1, the space's input size) of the stem, every block and head."""
    shape = net.input_shape(1)
    counter = FlopCounterMode(display=False)
    was_training = net.training
    net.eval()
    with torch.no_grad(), counter:
        net(torch.zeros(shape, device=next(net.parameters()).device))
    net.train(was_training)
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    prefix = type(net).__name__

    def flops_of(path: str) -> int:
        return int(counts.get(f"{prefix}.{path}", 0))

    parts = [PartCost("stem", "fixed stem", count_params(net.stem), flops_of("stem"))]
    for s, stage in enumerate(net.stages):
        for j, block in enumerate(stage):
            spec = block.spec
            parts.append(
                PartCost(
                    name=f"s{s + 1}.b{j + 1}",
                    label=spec.label,
                    params=count_params(block),
                    flops=flops_of(f"stages.{s}.{j}"),
                    width=block.active_width,
                    min_width=spec.min_width,
                    max_width=spec.max_width,
                    resolution=spec.resolution,
                )
            )
    parts.append(PartCost("head", "head + classifier", count_params(net.head), flops_of("head")))
    total_flops = int(counts.get("Global", 0))
    return NetworkCost(tuple(parts), count_params(net), total_flops, shape)
