"""Block identities of tfnas-imagenet map onto the paper's published latency tables."""

from __future__ import annotations

from tfnas.block import BlockSpec


def test_every_imagenet_block_has_a_key_in_the_papers_gpu_table(imagenet, official_gpu_table):
    specs = imagenet.all_block_specs()
    keys = {spec.lut_key for spec in specs}
    assert keys <= set(official_gpu_table)
    # 11 distinct positions x 6 keys (k3/k5 x se 0/in/2*in), as the tables' README says
    assert len(keys) == 66 == len(set(official_gpu_table) - {"base"})
    for spec in specs:
        widths = official_gpu_table[spec.lut_key]
        # the table covers every width the search may choose
        assert str(spec.min_width) in widths and str(spec.max_width) in widths


def test_key_format_and_shared_measurements(imagenet):
    e3, e6 = (s for s in imagenet.candidates(0, 0) if s.kernel == 3 and not s.se_channels)
    assert e3.lut_key == e6.lut_key == "MBInvertedResBlock_112_16_0_24_k3_s2_relu"
    e3se, e6se = (s for s in imagenet.candidates(0, 0) if s.kernel == 3 and s.se_channels)
    assert e3se.lut_key == "MBInvertedResBlock_112_16_16_24_k3_s2_relu"
    assert e6se.lut_key == "MBInvertedResBlock_112_16_32_24_k3_s2_relu"


def test_block_spec_is_frozen_and_hashable(small):
    spec = small.candidates(1, 1)[0]
    assert isinstance(spec, BlockSpec)
    assert {spec: 1}[small.candidates(1, 1)[0]] == 1
    assert spec.has_residual and spec.out_resolution == spec.resolution
    first = small.candidates(1, 0)[0]
    assert not first.has_residual and first.out_resolution == first.resolution // 2
