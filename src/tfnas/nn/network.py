"""The standalone network: exactly the blocks an architecture names, at exactly their widths.

Its blocks are the same :class:`~tfnas.block.BlockSpec` identities that the latency table is
keyed by, so what is measured, predicted and trained is one and the same network.
"""

from __future__ import annotations

import torch
from torch import nn

from ..arch import Architecture, validate
from ..space import SearchSpace
from .blocks import ConvBNAct, MBConv


def build_stem(space: SearchSpace, in_channels: int | None = None) -> nn.Sequential:
    """The fixed layers before the first stage (shared by the standalone net and supernet)."""
    layers: list[nn.Module] = []
    for i, layer in enumerate(space.stem):
        if layer.kind == "conv":
            cin = space.stem_geometry[i][1] if i or in_channels is None else in_channels
            layers.append(
                ConvBNAct(cin, layer.out_channels, layer.kernel, layer.stride, act=layer.act)
            )
        else:
            spec = space.stem_block_spec(i)
            if i == 0 and in_channels is not None and in_channels != spec.in_channels:
                raise ValueError("an MBConv first stem layer cannot change the input channels")
            layers.append(MBConv(spec, spec.nominal_width))
    return nn.Sequential(*layers)


class Head(nn.Module):
    """Optional 1x1 conv, global average pooling, dropout and the linear classifier."""

    def __init__(self, space: SearchSpace, num_classes: int) -> None:
        super().__init__()
        spec = space.head
        channels = space.final_channels
        self.conv = (
            ConvBNAct(channels, spec.out_channels, 1, act=spec.act) if spec.out_channels else None
        )
        features = spec.out_channels or channels
        self.dropout = nn.Dropout(spec.dropout)
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        # global average pooling as a mean: its backward is deterministic on CUDA, the
        # adaptive pooling module's is not (exact resume)
        x = x.mean((2, 3))
        return self.classifier(self.dropout(x))


class Network(nn.Module):
    """The standalone network of ``arch`` in ``space``."""

    def __init__(
        self,
        space: SearchSpace,
        arch: Architecture,
        num_classes: int | None = None,
        in_channels: int | None = None,
    ) -> None:
        super().__init__()
        validate(arch, space)
        self.space = space
        self.arch = arch
        self.num_classes = num_classes or space.classes
        self.in_channels = in_channels or space.input_channels
        if not space.stem and self.in_channels != space.input_channels:
            raise ValueError("a space without stem layers fixes the input channels")
        self.stem = build_stem(space, self.in_channels)
        stages = [nn.Sequential() for _ in space.stages]
        for s, _, spec, width in arch.blocks(space):
            stages[s].append(MBConv(spec, width))
        self.stages = nn.ModuleList(stages)
        self.head = Head(space, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    def set_regularisation(self, dropout: float | None = None, drop_connect: float = 0.0) -> None:
        """Dropout before the classifier, and drop-connect on residual branches scaled by
        block index / block count (docs/method.md section 7)."""
        if dropout is not None:
            self.head.dropout.p = dropout
        blocks = [block for stage in self.stages for block in stage]
        for i, block in enumerate(blocks):
            block.drop_path = drop_connect * i / len(blocks)

    def input_shape(self, batch_size: int = 1) -> tuple[int, int, int, int]:
        return (batch_size, self.in_channels, self.space.input_size, self.space.input_size)


def build_network(
    space: SearchSpace,
    arch: Architecture,
    num_classes: int | None = None,
    in_channels: int | None = None,
) -> Network:
    return Network(space, arch, num_classes, in_channels)
