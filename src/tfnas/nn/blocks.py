"""ConvBNAct, SqueezeExcite and an MBConv whose active mid width can be a subset of its own.

Every block is built from a :class:`~tfnas.block.BlockSpec`, the single description of a
block's identity. The supernet allocates an MBConv at its maximum mid width and narrows it
with a channel mask; :meth:`MBConv.narrowed` hands out the equivalent standalone block with
only the active channels, so both compute the same function for the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..block import BlockSpec

_ACT_LAYERS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "swish": nn.SiLU,
    "hswish": nn.Hardswish,
}


def make_act(name: str) -> nn.Module:
    return _ACT_LAYERS[name](inplace=True)


class ConvBNAct(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> optional activation; padding keeps odd kernels centred."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str | None = None,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False
            ),
            nn.BatchNorm2d(out_channels),
        ]
        if act is not None:
            layers.append(make_act(act))
        super().__init__(*layers)

    @property
    def conv(self) -> nn.Conv2d:
        return self[0]

    @property
    def bn(self) -> nn.BatchNorm2d:
        return self[1]


class SqueezeExcite(nn.Module):
    """Channel gating: global pool -> 1x1 reduce -> act -> 1x1 expand -> sigmoid."""

    def __init__(self, channels: int, se_channels: int, act: str) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, se_channels, 1)
        self.act = make_act(act)
        self.expand = nn.Conv2d(se_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean((2, 3), keepdim=True)
        gate = self.expand(self.act(self.reduce(gate)))
        return x * torch.sigmoid(gate)


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 project (+ residual).

    ``mid_channels`` is the allocated width. :meth:`set_active_channels` restricts the block
    to a subset of it without touching the weights, so an optimizer's state stays valid.
    """

    def __init__(self, spec: BlockSpec, mid_channels: int) -> None:
        super().__init__()
        if not spec.has_expand and mid_channels != spec.in_channels:
            raise ValueError(f"an MBConv without expansion has mid width {spec.in_channels}")
        self.spec = spec
        self.mid_channels = mid_channels
        self.expand = (
            ConvBNAct(spec.in_channels, mid_channels, 1, act=spec.act) if spec.has_expand else None
        )
        self.depthwise = ConvBNAct(
            mid_channels, mid_channels, spec.kernel, spec.stride, groups=mid_channels, act=spec.act
        )
        self.se = (
            SqueezeExcite(mid_channels, spec.se_channels, spec.act) if spec.se_channels else None
        )
        self.project = ConvBNAct(mid_channels, spec.out_channels, 1)
        self.register_buffer("channel_mask", None, persistent=False)

    @property
    def active_width(self) -> int:
        if self.channel_mask is None:
            return self.mid_channels
        return int(self.channel_mask.count_nonzero())

    def set_active_channels(self, active: Sequence[int] | torch.Tensor | None) -> None:
        """Zero every mid channel not listed (``None``: all channels active)."""
        if active is None:
            self.channel_mask = None
            return
        index = torch.as_tensor(active, dtype=torch.long, device=self.depthwise.conv.weight.device)
        mask = torch.zeros(
            self.mid_channels, device=index.device, dtype=self.depthwise.conv.weight.dtype
        )
        mask[index] = 1
        self.channel_mask = mask.view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x) if self.expand is not None else x
        h = self.depthwise(h)
        if self.channel_mask is not None:
            # Masking after the depthwise activation is enough: every later layer either
            # acts per channel (SE gate) or sums over channels (SE reduce, project), where a
            # zero channel contributes nothing, exactly as if it were absent.
            h = h * self.channel_mask
        if self.se is not None:
            h = self.se(h)
        h = self.project(h)
        return h + x if self.spec.has_residual else h

    @torch.no_grad()
    def narrowed(self, active: Sequence[int] | torch.Tensor) -> MBConv:
        """A standalone copy holding only the ``active`` mid channels, weights included."""
        index = torch.as_tensor(sorted(int(i) for i in active), dtype=torch.long)
        block = MBConv(self.spec, len(index))
        if self.expand is not None:
            _copy_conv_bn(block.expand, self.expand, out_index=index)
        _copy_conv_bn(block.depthwise, self.depthwise, out_index=index)
        if self.se is not None:
            block.se.reduce.weight.copy_(self.se.reduce.weight[:, index])
            block.se.reduce.bias.copy_(self.se.reduce.bias)
            block.se.expand.weight.copy_(self.se.expand.weight[index])
            block.se.expand.bias.copy_(self.se.expand.bias[index])
        _copy_conv_bn(block.project, self.project, in_index=index)
        return block.train(self.training)


def _copy_conv_bn(
    dst: ConvBNAct,
    src: ConvBNAct,
    out_index: torch.Tensor | None = None,
    in_index: torch.Tensor | None = None,
) -> None:
    weight = src.conv.weight
    if out_index is not None:
        weight = weight[out_index]
    if in_index is not None and src.conv.groups == 1:
        weight = weight[:, in_index]
    dst.conv.weight.copy_(weight)
    for name in ("weight", "bias", "running_mean", "running_var"):
        value = getattr(src.bn, name)
        getattr(dst.bn, name).copy_(value[out_index] if out_index is not None else value)
    dst.bn.num_batches_tracked.copy_(src.bn.num_batches_tracked)
