"""Block identity: the single description from which every other view of a block is derived.

A searchable block at one position of the network, running one candidate op, is fully
described by a frozen :class:`BlockSpec`. The latency-table key, the layer that the
standalone network and the supernet build, the width bounds used by elasticity-scaling and
the label in reports all come from it, so none of them can drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIVATIONS = ("relu", "relu6", "swish", "hswish")


@dataclass(frozen=True, order=True)
class OpSpec:
    """A candidate operation: an MBConv with this kernel, nominal expansion and SE switch."""

    kernel: int
    expansion: int
    se: bool

    @property
    def label(self) -> str:
        return f"k{self.kernel}_e{self.expansion}" + ("_se" if self.se else "")

    def to_dict(self) -> dict[str, int | bool]:
        return {"kernel": self.kernel, "expansion": self.expansion, "se": self.se}


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block at one position with one op: everything but its current mid width.

    ``min_width``/``max_width`` are the elastic bounds of the mid (expanded) channels and
    ``nominal_width`` is ``expansion * in_channels``, where search starts. An op without
    expansion (``expansion == 1``) has no 1x1 expand conv, so its width is pinned to
    ``in_channels``.
    """

    resolution: int
    in_channels: int
    out_channels: int
    stride: int
    act: str
    kernel: int
    expansion: int
    se_channels: int
    min_width: int
    max_width: int
    nominal_width: int

    @property
    def op(self) -> OpSpec:
        return OpSpec(self.kernel, self.expansion, self.se_channels > 0)

    @property
    def has_expand(self) -> bool:
        return self.expansion != 1

    @property
    def has_residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels

    @property
    def out_resolution(self) -> int:
        return conv_out_resolution(self.resolution, self.kernel, self.stride)

    @property
    def lut_key(self) -> str:
        """Latency-table key, in the format of the paper's published tables.

        The nominal expansion is absent on purpose: latency depends on the mid width, not on
        the expansion that the width started from, so ops that differ only in expansion
        share measurements (their SE size still tells them apart when SE is on).
        """
        return (
            f"MBInvertedResBlock_{self.resolution}_{self.in_channels}_{self.se_channels}_"
            f"{self.out_channels}_k{self.kernel}_s{self.stride}_{self.act}"
        )

    @property
    def label(self) -> str:
        return (
            f"{self.op.label} {self.in_channels}->{self.out_channels} "
            f"s{self.stride} @{self.resolution}px"
        )

    def check_width(self, width: int) -> bool:
        return self.min_width <= width <= self.max_width


def conv_out_resolution(resolution: int, kernel: int, stride: int) -> int:
    """Output size of a convolution padded by ``kernel // 2`` (odd kernels: ceil(r / s))."""
    pad = kernel // 2
    return (resolution + 2 * pad - kernel) // stride + 1
