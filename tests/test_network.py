from __future__ import annotations

import pytest
import torch

from tfnas.arch import Architecture, BlockChoice, random_architecture, validate
from tfnas.block import OpSpec
from tfnas.complexity import count_params, network_cost
from tfnas.nn.blocks import MBConv
from tfnas.nn.network import Network


def conv_bn(cin: int, cout: int, k: int, groups: int = 1) -> int:
    return cin // groups * cout * k * k + 2 * cout


def mbconv(cin: int, mid: int, cout: int, k: int, se: int, expand: bool = True) -> int:
    total = conv_bn(cin, mid, 1) if expand else 0
    total += conv_bn(mid, mid, k, groups=mid)
    if se:
        total += mid * se + se + se * mid + mid  # two 1x1 convs with bias
    return total + conv_bn(mid, cout, 1)


def test_imagenet_param_count_by_hand(imagenet):
    """A hand-written architecture; its parameters counted from the layer formulas."""

    def b(k, e, se, w):
        return BlockChoice(OpSpec(k, e, se), w)

    arch = validate(
        Architecture(
            imagenet.name,
            imagenet.hash,
            (
                (b(3, 3, False, 48),),
                (b(5, 6, True, 150), b(3, 3, False, 100)),
                (b(3, 6, False, 200),),
                (b(5, 3, True, 250), b(3, 6, False, 700)),
                (b(3, 6, False, 500),),
                (b(5, 6, True, 1000),),
            ),
        ),
        imagenet,
    )
    expected = (
        conv_bn(3, 32, 3)  # stem conv
        + mbconv(32, 32, 16, 3, 8, expand=False)  # stem MBConv, SE 8
        + mbconv(16, 48, 24, 3, 0)
        + mbconv(24, 150, 40, 5, 48)  # e6 SE: 2 * in
        + mbconv(40, 100, 40, 3, 0)
        + mbconv(40, 200, 80, 3, 0)
        + mbconv(80, 250, 112, 5, 80)  # e3 SE: in
        + mbconv(112, 700, 112, 3, 0)
        + mbconv(112, 500, 192, 3, 0)
        + mbconv(192, 1000, 320, 5, 384)
        + conv_bn(320, 1280, 1)  # head conv
        + 1280 * 1000
        + 1000  # classifier
    )
    net = Network(imagenet, arch)
    assert count_params(net) == expected
    cost = network_cost(net)
    assert cost.params == expected == sum(p.params for p in cost.parts)
    assert cost.flops == sum(p.flops for p in cost.parts) > 0
    # the first block's MACs by hand: expand at 112px, depthwise stride 2 to 56px, project
    first = cost.parts[1]
    assert first.macs == 16 * 48 * 112**2 + 48 * 9 * 56**2 + 48 * 24 * 56**2


@pytest.mark.parametrize("space_name", ["tfnas-small", "tfnas-imagenet"])
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_shapes(space_name, channels, small, imagenet):
    space = small if space_name == "tfnas-small" else imagenet
    size = space.input_size if space is small else 64  # the net is size-agnostic; keep it quick
    for seed in range(2):
        net = Network(
            space, random_architecture(space, seed), num_classes=7, in_channels=channels
        ).eval()
        with torch.no_grad():
            out = net(torch.randn(2, channels, size, size))
        assert out.shape == (2, 7)
        assert torch.isfinite(out).all()


def test_small_space_also_takes_28px(small):
    net = Network(small, random_architecture(small, 3)).eval()
    with torch.no_grad():
        assert net(torch.randn(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("with_se", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_masked_block_equals_narrowed_block(small, with_se, training):
    torch.manual_seed(0)
    spec = small.block_spec(1, 1, OpSpec(5, 6, with_se))  # residual block
    block = MBConv(spec, spec.max_width)
    for bn in (m for m in block.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    active = torch.randperm(spec.max_width)[: spec.min_width + 7]
    block.set_active_channels(active)
    assert block.active_width == len(active)
    block.train(training)
    narrow = block.narrowed(active).train(training)
    assert narrow.mid_channels == len(active)
    x = torch.randn(4, spec.in_channels, spec.resolution, spec.resolution)
    with torch.no_grad():
        torch.testing.assert_close(block(x), narrow(x), rtol=1e-4, atol=1e-5)
    block.set_active_channels(None)
    assert block.active_width == spec.max_width


def test_network_blocks_are_the_architectures(small):
    arch = random_architecture(small, 11)
    net = Network(small, arch)
    built = [(blk.spec, blk.mid_channels) for stage in net.stages for blk in stage]
    assert built == [(spec, width) for _, _, spec, width in arch.blocks(small)]
