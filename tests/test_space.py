from __future__ import annotations

import textwrap

import pytest

from tfnas.block import OpSpec
from tfnas.errors import SpaceError
from tfnas.space import builtin_space_names, load_space, parse_space

from .conftest import assert_user_error

USER_SPACE = textwrap.dedent(
    """
    name: my-space
    description: a user's own space
    input: {size: 28, channels: 1}
    classes: 10
    stem:
      - {type: conv, out: 8, kernel: 3, stride: 2, act: relu}
    ops:
      - {kernel: 3, expansion: 4}
      - {kernel: 7, expansion: 2, se: true}
    se_ratio: 1/4
    mid_width: {min: 0.5, max: 1.5}
    stages:
      - {out: 16, blocks: 2, stride: 2, act: hswish}
      - {out: 24, blocks: 3, stride: 1, act: relu6, min_depth: 2, elastic: false}
    head: {out: 0, dropout: 0.1}
    """
)


def test_builtin_spaces_load():
    assert set(builtin_space_names()) == {"tfnas-imagenet", "tfnas-small"}
    for name in builtin_space_names():
        space = load_space(name)
        assert space.name == name
        assert len(space.hash) == 16


def test_imagenet_space_is_the_papers(imagenet):
    """docs/method.md section 2, row by row."""
    assert (imagenet.input_size, imagenet.input_channels, imagenet.classes) == (224, 3, 1000)
    stages = [(s.out_channels, s.blocks, s.stride, s.act) for s in imagenet.stages]
    assert stages == [
        (24, 2, 2, "relu"),
        (40, 3, 2, "swish"),
        (80, 4, 2, "swish"),
        (112, 4, 1, "swish"),
        (192, 4, 2, "swish"),
        (320, 1, 1, "swish"),
    ]
    first = [p[0] for p in imagenet.positions]
    assert [(p.resolution, p.in_channels) for p in first] == [
        (112, 16),
        (56, 24),
        (28, 40),
        (14, 80),
        (14, 112),
        (7, 192),
    ]
    assert imagenet.final_resolution == 7
    ops = set(imagenet.stages[0].ops)
    assert ops == {OpSpec(k, e, se) for k in (3, 5) for e in (3, 6) for se in (False, True)}
    for pos in imagenet.iter_positions():
        for block in imagenet.candidates(pos.stage, pos.index):
            cin = pos.in_channels
            assert block.nominal_width == block.expansion * cin
            if block.expansion == 3:
                assert (block.min_width, block.max_width) == (2 * cin, 4 * cin)
                assert block.se_channels in (0, cin)
            else:
                assert (block.min_width, block.max_width) == (4 * cin, 8 * cin)
                assert block.se_channels in (0, 2 * cin)
    conv, mb = imagenet.stem
    assert (conv.kind, conv.out_channels, conv.stride, conv.act) == ("conv", 32, 2, "relu")
    assert (mb.kind, mb.out_channels, mb.expansion, mb.se_channels) == ("mbconv", 16, 1, 8)
    assert (imagenet.head.out_channels, imagenet.head.act) == (1280, "swish")


def test_small_space_fits_small_images(small):
    assert small.input_size in range(28, 33)
    assert small.final_resolution >= 2
    assert small.classes == 10


def test_user_yaml_space_loads(tmp_path, cli):
    path = tmp_path / "my.yaml"
    path.write_text(USER_SPACE)
    space = load_space(path)
    assert space.name == "my-space"
    assert [op.label for op in space.stages[0].ops] == ["k3_e4", "k7_e2_se"]
    assert space.stages[1].depths == range(2, 4)
    # elastic stage: bounds 0.5..1.5 of nominal; fixed stage: pinned to nominal
    b = space.block_spec(0, 0, OpSpec(3, 4, False))
    assert (b.min_width, b.nominal_width, b.max_width) == (16, 32, 48)
    b = space.block_spec(1, 0, OpSpec(7, 2, True))
    assert b.min_width == b.max_width == b.nominal_width == 32
    assert b.se_channels == 8
    result = cli("space", "show", path)
    assert result.code == 0 and "my-space" in result.out
    result = cli("space", "show", path, "--json")
    assert result.json()["stages"][1]["min_depth"] == 2


def test_hash_tracks_structure_not_name(tmp_path):
    base = parse_space(USER_SPACE)
    renamed = parse_space(
        USER_SPACE.replace("name: my-space", "name: other").replace("a user's own space", "changed")
    )
    assert renamed.hash == base.hash
    wider = parse_space(USER_SPACE.replace("out: 24", "out: 32"))
    assert wider.hash != base.hash
    # canonical form round-trips to the same space
    import yaml

    again = parse_space(yaml.safe_dump(base.to_dict()))
    assert again == base and again.hash == base.hash


BAD_SPACES = [
    ("missing field", ("head: {out: 0, dropout: 0.1}", ""), ("'head'", "missing")),
    ("misspelt field", ("ops:", "opz:"), ("'opz'", "unknown")),
    ("missing stage field", ("{out: 16, blocks: 2,", "{blocks: 2,"), ("stages[0].out", "missing")),
    ("wrong type", ("blocks: 3", "blocks: three"), ("stages[1].blocks", "integer")),
    ("wrong type for a list", ("stages:", "stages: 5\nunused:"), ("unknown",)),
    (
        "unknown op field",
        ("{kernel: 3, expansion: 4}", "{kernel: 3, expansion: 4, dilation: 2}"),
        ("ops[0].dilation", "unknown"),
    ),
    (
        "even kernel",
        ("{kernel: 3, expansion: 4}", "{kernel: 4, expansion: 4}"),
        ("ops[0].kernel", "odd"),
    ),
    ("unknown stem layer", ("type: conv", "type: transformer"), ("stem[0].type",)),
    ("unknown activation", ("act: hswish", "act: gelu"), ("stages[0].act", "gelu")),
    ("depth out of range", ("min_depth: 2", "min_depth: 4"), ("min_depth", "at most")),
    ("width bounds exclude nominal", ("min: 0.5", "min: 1.2"), ("mid_width", "min <= 1 <= max")),
    ("bad fraction", ("se_ratio: 1/4", "se_ratio: quarter"), ("se_ratio", "fraction")),
    (
        "duplicate op",
        ("{kernel: 7, expansion: 2, se: true}", "{kernel: 3, expansion: 4}"),
        ("twice",),
    ),
    ("invalid yaml", ("stages:", "stages: [\n"), ("not valid YAML",)),
]


@pytest.mark.parametrize("case, edit, fragments", BAD_SPACES, ids=[c[0] for c in BAD_SPACES])
def test_bad_space_file_is_one_sentence_exit_2(tmp_path, cli, case, edit, fragments):
    old, new = edit
    assert old in USER_SPACE, case
    path = tmp_path / "bad.yaml"
    path.write_text(USER_SPACE.replace(old, new, 1))
    result = cli("space", "show", path)
    assert_user_error(result, str(path), *fragments)
    with pytest.raises(SpaceError):
        load_space(path)


def test_unknown_space_name(cli):
    assert_user_error(cli("space", "show", "no-such-space"), "no-such-space", "built-in")


def test_grid_ops_are_the_product(small):
    labels = [op.label for op in small.stages[0].ops]
    assert labels == [
        "k3_e3",
        "k3_e6",
        "k5_e3",
        "k5_e6",
        "k3_e3_se",
        "k3_e6_se",
        "k5_e3_se",
        "k5_e6_se",
    ]


def test_stage_ops_override(tmp_path):
    text = USER_SPACE.replace(
        "{out: 16, blocks: 2, stride: 2, act: hswish}",
        "{out: 16, blocks: 2, stride: 2, act: hswish, ops: [{kernel: 5, expansion: 6}]}",
    )
    space = parse_space(text)
    assert [op.label for op in space.stages[0].ops] == ["k5_e6"]
    assert [op.label for op in space.stages[1].ops] == ["k3_e4", "k7_e2_se"]
