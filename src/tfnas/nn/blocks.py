"""ConvBNAct, SqueezeExcite and an MBConv whose active mid width can be a subset of its own.

Every block is built from a :class:`~tfnas.block.BlockSpec`, the single description of a
block's identity. The supernet allocates an MBConv at its maximum mid width and narrows it
with a channel mask; :meth:`MBConv.narrowed` hands out the equivalent standalone block with
only the active channels, so both compute the same function for the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
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
    to a subset of it without touching the weights, so an optimizer's state stays valid; the
    block then computes with the active channels only, exactly as :meth:`narrowed` would.
    """

    def __init__(self, spec: BlockSpec, mid_channels: int, elastic: bool = False) -> None:
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
        # An elastic block (the supernet's) always carries its mask, saved with its weights,
        # so that a resumed search continues with exactly the channels it had.
        mask = torch.ones(1, mid_channels, 1, 1) if elastic else None
        self.register_buffer("channel_mask", mask, persistent=elastic)
        self.elastic = elastic
        self.drop_path = 0.0  # drop-connect rate of the residual branch while training

    @property
    def active_width(self) -> int:
        index = self._partial_index()  # cached: no read from the device per call
        return self.mid_channels if index is None else len(index)

    def set_active_channels(self, active: Sequence[int] | torch.Tensor | None) -> None:
        """Zero every mid channel not listed (``None``: all channels active)."""
        weight = self.depthwise.bn.weight
        self._index_key = None  # the cached active index no longer holds
        if active is None:
            self.channel_mask = torch.ones_like(self.channel_mask) if self.elastic else None
            return
        index = torch.as_tensor(active, dtype=torch.long, device=weight.device)
        mask = torch.zeros(self.mid_channels, device=weight.device, dtype=weight.dtype)
        mask[index] = 1
        self.channel_mask = mask.view(1, -1, 1, 1)

    def active_channels(self) -> torch.Tensor:
        """Indices of the active mid channels, ascending."""
        if self.channel_mask is None:
            return torch.arange(self.mid_channels)
        return self.channel_mask.view(-1).nonzero().view(-1).cpu()

    def channel_importance(self) -> torch.Tensor:
        """L1 norm of each mid channel's depthwise kernel: which channels to keep active."""
        return self.conv_weights().depthwise.detach().abs().sum(dim=(1, 2, 3))

    # Separate ops compute with their own modules when every channel is active (the fast
    # path, and what a standalone network exports); ops that read their weights from a
    # shared kernel bank always compute functionally.
    computes_functionally = False

    def conv_weights(self) -> BlockWeights:
        """The tensors this block computes with, at its allocated width."""
        se = self.se
        return BlockWeights(
            expand=self.expand.conv.weight if self.expand is not None else None,
            depthwise=self.depthwise.conv.weight,
            se=(se.reduce.weight, se.reduce.bias, se.expand.weight, se.expand.bias)
            if se is not None
            else None,
            project=self.project.conv.weight,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        active = self._partial_index()
        if active is not None or self.computes_functionally:
            h = self._forward_active(x, active)
        else:
            h = self.expand(x) if self.expand is not None else x
            h = self.depthwise(h)
            if self.se is not None:
                h = self.se(h)
            h = self.project(h)
        if not self.spec.has_residual:
            return h
        if self.training and self.drop_path > 0:
            # Drop-connect: drop the whole branch for some samples, rescale the rest.
            keep = 1 - self.drop_path
            mask = torch.rand(h.shape[0], 1, 1, 1, device=h.device, dtype=h.dtype) < keep
            h = h * mask / keep
        return h + x

    def _partial_index(self) -> torch.Tensor | None:
        """Active channel indices when only some are active, else ``None``.

        Cached against the mask's identity and version (a new mask, or one overwritten in
        place by ``load_state_dict``), so forward passes do not call ``nonzero`` (a host
        synchronisation on CUDA) every time.
        """
        mask = self.channel_mask
        if mask is None:
            return None
        key = (id(mask), mask._version, mask.device)
        if getattr(self, "_index_key", None) != key:
            index = mask.view(-1).nonzero().view(-1)
            self._index = None if len(index) == self.mid_channels else index
            self._index_key = key
        return self._index

    def _forward_active(self, x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        """Compute with the active mid channels only (``None``: all of them): the weights are
        sliced per call, so the cost follows the active width while gradients and optimizer
        state stay with the full tensors. Batch-norm statistics are updated for the active
        channels alone."""
        w = self.conv_weights()
        training = self.training
        h = x
        if w.expand is not None:
            h = _conv_bn_act(h, w.expand, self.expand, training, out_index=index)
        width = self.mid_channels if index is None else len(index)
        h = _conv_bn_act(h, w.depthwise, self.depthwise, training, out_index=index, groups=width)
        if w.se is not None:
            reduce_w, reduce_b, expand_w, expand_b = w.se
            if index is not None:
                reduce_w = reduce_w.index_select(1, index)
                expand_w, expand_b = (
                    expand_w.index_select(0, index),
                    expand_b.index_select(0, index),
                )
            gate = h.mean((2, 3), keepdim=True)
            gate = F.conv2d(self.se.act(F.conv2d(gate, reduce_w, reduce_b)), expand_w, expand_b)
            h = h * torch.sigmoid(gate)
        return _conv_bn_act(h, w.project, self.project, training, in_index=index)

    @torch.no_grad()
    def narrowed(self, active: Sequence[int] | torch.Tensor) -> MBConv:
        """A standalone copy holding only the ``active`` mid channels, weights included."""
        index = torch.as_tensor(sorted(int(i) for i in active), dtype=torch.long)
        w = self.conv_weights()
        index = index.to(w.depthwise.device)  # selects on the supernet's device
        block = MBConv(self.spec, len(index))  # built on the CPU, as a Network is
        if w.expand is not None:
            _copy_conv_bn(block.expand, w.expand, self.expand, out_index=index)
        _copy_conv_bn(block.depthwise, w.depthwise, self.depthwise, out_index=index)
        if w.se is not None:
            reduce_w, reduce_b, expand_w, expand_b = w.se
            block.se.reduce.weight.copy_(reduce_w[:, index])
            block.se.reduce.bias.copy_(reduce_b)
            block.se.expand.weight.copy_(expand_w[index])
            block.se.expand.bias.copy_(expand_b[index])
        _copy_conv_bn(block.project, w.project, self.project, in_index=index)
        return block.train(self.training)


@dataclass(frozen=True)
class BlockWeights:
    """The convolution weights of an MBConv: its own, or slices of a shared kernel bank.
    ``se`` is (reduce weight, reduce bias, expand weight, expand bias)."""

    expand: torch.Tensor | None
    depthwise: torch.Tensor
    se: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None
    project: torch.Tensor


class KernelBank(nn.Module):
    """One set of convolution weights shared by all candidate ops of one block position.

    Allocated for the largest op (largest kernel, widest mid width, widest SE). An op reads
    its kernel from the centre of the largest one and its mid channels (and SE channels) from
    the first ones, as Single-Path NAS, FBNetV2 and once-for-all share weights: every step
    that trains any op trains the weights all ops are made of.
    """

    def __init__(self, specs: Sequence[BlockSpec]) -> None:
        super().__init__()
        first = specs[0]
        if any(
            (s.in_channels, s.out_channels, s.stride)
            != (first.in_channels, first.out_channels, first.stride)
            for s in specs
        ):
            raise ValueError("ops that share weights must agree on channels and stride")
        self.kernel = max(s.kernel for s in specs)  # kernels are odd: centres line up
        widest = max(s.max_width for s in specs)
        se_channels = max(s.se_channels for s in specs)
        # The largest op's own layers give the bank PyTorch's default initialisation (with
        # an expand conv when any op has one; an op without expansion reads none).
        expanding = max(specs, key=lambda s: s.has_expand)
        largest = MBConv(replace(expanding, kernel=self.kernel, se_channels=se_channels), widest)
        w = largest.conv_weights()
        self.expand = nn.Parameter(w.expand.detach().clone()) if w.expand is not None else None
        self.depthwise = nn.Parameter(w.depthwise.detach().clone())
        self.se = (
            nn.ParameterList(nn.Parameter(t.detach().clone()) for t in w.se)
            if w.se is not None
            else None
        )
        self.project = nn.Parameter(w.project.detach().clone())

    def weights_for(self, spec: BlockSpec) -> BlockWeights:
        m, k, se = spec.max_width, spec.kernel, spec.se_channels
        at = (self.kernel - k) // 2
        return BlockWeights(
            expand=self.expand[:m] if spec.has_expand else None,
            depthwise=self.depthwise[:m, :, at : at + k, at : at + k],
            se=(
                self.se[0][:se, :m],
                self.se[1][:se],
                self.se[2][:m, :se],
                self.se[3][:m],
            )
            if se
            else None,
            project=self.project[:, :m],
        )


class SharedMBConv(MBConv):
    """An elastic MBConv whose convolution weights are slices of a :class:`KernelBank`.

    It keeps its own batch norms (private statistics and affine parameters per op: a 3x3 and
    a 5x5 slice of one kernel produce differently distributed outputs) and its own channel
    mask; :meth:`narrowed` hands out an ordinary standalone MBConv.
    """

    computes_functionally = True

    def __init__(self, spec: BlockSpec, bank: KernelBank) -> None:
        super().__init__(spec, spec.max_width, elastic=True)
        # The bank is owned (and moved between devices) by the block position that holds
        # it; a plain list keeps it out of this module's parameters and state dict.
        self._bank = [bank]
        for layer in (self.expand, self.depthwise, self.project):
            if layer is not None:
                del layer.conv.weight
        if self.se is not None:
            for conv in (self.se.reduce, self.se.expand):
                del conv.weight, conv.bias

    def conv_weights(self) -> BlockWeights:
        return self._bank[0].weights_for(self.spec)


def _conv_bn_act(
    x: torch.Tensor,
    weight: torch.Tensor,
    layer: ConvBNAct,
    training: bool,
    out_index: torch.Tensor | None = None,
    in_index: torch.Tensor | None = None,
    groups: int = 1,
) -> torch.Tensor:
    """``layer``'s batch norm and activation after a convolution with ``weight``, restricted
    to some output or input channels (see MBConv._forward_active)."""
    conv, bn = layer.conv, layer.bn
    if out_index is not None:
        weight = weight.index_select(0, out_index)
    if in_index is not None:
        weight = weight.index_select(1, in_index)
    h = F.conv2d(x, weight, None, conv.stride, conv.padding, 1, groups)
    if out_index is None:
        h = bn(h)
    else:
        mean = bn.running_mean.index_select(0, out_index)
        var = bn.running_var.index_select(0, out_index)
        momentum = bn.momentum
        if momentum is None and training:  # a cumulative average, as nn.BatchNorm2d keeps it
            momentum = 1.0 / (float(bn.num_batches_tracked) + 1)
        h = F.batch_norm(
            h,
            mean,
            var,
            bn.weight.index_select(0, out_index),
            bn.bias.index_select(0, out_index),
            training,
            momentum or 0.0,
            bn.eps,
        )
        if training:
            with torch.no_grad():
                bn.running_mean.index_copy_(0, out_index, mean)
                bn.running_var.index_copy_(0, out_index, var)
                bn.num_batches_tracked.add_(1)
    return layer[2](h) if len(layer) > 2 else h


def _copy_conv_bn(
    dst: ConvBNAct,
    weight: torch.Tensor,
    src: ConvBNAct,
    out_index: torch.Tensor | None = None,
    in_index: torch.Tensor | None = None,
) -> None:
    if out_index is not None:
        weight = weight[out_index]
    if in_index is not None and src.conv.groups == 1:
        weight = weight[:, in_index]
    dst.conv.weight.copy_(weight)
    for name in ("weight", "bias", "running_mean", "running_var"):
        value = getattr(src.bn, name)
        getattr(dst.bn, name).copy_(value[out_index] if out_index is not None else value)
    dst.bn.num_batches_tracked.copy_(src.bn.num_batches_tracked)
