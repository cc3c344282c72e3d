from __future__ import annotations

import json

import pytest

from tfnas.arch import (
    Architecture,
    BlockChoice,
    load_architecture,
    random_architecture,
    uniform_architecture,
    validate,
)
from tfnas.block import OpSpec
from tfnas.errors import ArchitectureError

from .conftest import assert_user_error


def test_round_trip(tmp_path, small, imagenet):
    for space in (small, imagenet):
        for seed in range(5):
            arch = random_architecture(space, seed)
            path = arch.save(tmp_path / f"{space.name}-{seed}.json")
            loaded, loaded_space = load_architecture(path)
            assert loaded == arch
            assert loaded.info == arch.info
            assert loaded_space == space
            assert json.loads(path.read_text())["space"] == {"name": space.name, "hash": space.hash}


def test_random_architectures_are_valid_and_seeded(small):
    archs = [random_architecture(small, seed) for seed in range(50)]
    for arch in archs:
        validate(arch, small)
    assert random_architecture(small, 7) == random_architecture(small, 7)
    assert len({a.describe() for a in archs}) == 50


def _edit(tmp_path, arch, change):
    data = arch.to_dict()
    change(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


def test_bad_architecture_files(tmp_path, small, imagenet, cli):
    arch = uniform_architecture(small, OpSpec(3, 6, False))

    def too_deep(d):
        d["stages"][0]["blocks"].append(dict(d["stages"][0]["blocks"][0]))
        d["stages"][0]["depth"] += 1

    def too_wide(d):
        d["stages"][1]["blocks"][0]["width"] = 10_000

    def unknown_op(d):
        d["stages"][2]["blocks"][1]["kernel"] = 7

    def other_space(d):
        d["space"] = {"name": imagenet.name, "hash": imagenet.hash}

    def stale_hash(d):
        d["space"]["hash"] = "0123456789abcdef"

    def depth_mismatch(d):
        d["stages"][0]["depth"] = 1

    def wrong_type(d):
        d["stages"][0]["blocks"][0]["width"] = "96"

    def wrong_version(d):
        d["version"] = 99

    cases = [
        (too_deep, ("stage 1", "depth 3", "1..2")),
        (too_wide, ("stage 2 block 1", "width 10000", "outside its bounds")),
        (unknown_op, ("k7_e6", "not a candidate")),
        (other_space, ("tfnas-imagenet",)),
        (stale_hash, ("different version", "0123456789abcdef", small.hash)),
        (depth_mismatch, ("depth",)),
        (wrong_type, ("width", "integer")),
        (wrong_version, ("version",)),
    ]
    for change, fragments in cases:
        path = _edit(tmp_path, arch, change)
        assert_user_error(cli("info", path), str(path), *fragments)
        with pytest.raises(ArchitectureError):
            load_architecture(path)


def test_architecture_of_another_space_is_refused_against_a_given_space(tmp_path, small, imagenet):
    path = random_architecture(imagenet, 0).save(tmp_path / "a.json")
    with pytest.raises(ArchitectureError, match="belongs to space 'tfnas-imagenet'"):
        load_architecture(path, small)


def test_malformed_and_missing_json(tmp_path, cli):
    path = tmp_path / "broken.json"
    path.write_text('{"format": "tfnas-architecture", "version": 1, "stages": [')
    assert_user_error(cli("info", path), "not valid JSON", "line 1")
    assert_user_error(cli("info", tmp_path / "nope.json"), "no such architecture file")
    path.write_text("[1, 2]")
    assert_user_error(cli("info", path), "JSON object")


def test_user_space_architecture_needs_its_space(tmp_path, cli):
    from .test_space import USER_SPACE

    space_file = tmp_path / "my.yaml"
    space_file.write_text(USER_SPACE)
    out = tmp_path / "arch.json"
    assert cli("arch", "random", "--space", space_file, "--seed", "1", "--out", out).code == 0
    assert_user_error(cli("info", out), "my-space", "--space")
    result = cli("info", out, "--space", space_file, "--json")
    assert result.code == 0
    assert result.json()["space"] == "my-space"


def test_architecture_depths_and_blocks(small):
    op = OpSpec(5, 3, True)
    arch = uniform_architecture(small, op, depths=(1, 2, 3, 1, 1), width="min")
    assert arch.depths == (1, 2, 3, 1, 1)
    blocks = list(arch.blocks(small))
    assert len(blocks) == 8
    for _, _, spec, width in blocks:
        assert width == spec.min_width and spec.op == op
    assert Architecture(small.name, small.hash, ((BlockChoice(op, blocks[0][3]),),)) != arch
