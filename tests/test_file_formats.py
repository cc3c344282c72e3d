"""Every file tfnas reads is checked against its declared format before it is used: a wrong
type, a value out of range, an unknown or a duplicated key is one sentence naming the file
and the field, exit status 2, through the command a user would run."""

from __future__ import annotations

import json

import pytest

from tfnas.latency.build import build_table
from tfnas.space import load_space

from .conftest import assert_user_error
from .test_latency import TINY_SPACE, CountingMeter


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    (root / "tiny.yaml").write_text(TINY_SPACE)
    space = load_space(root / "tiny.yaml")
    build_table(space, CountingMeter(), root / "lut.json", width_step=4, progress=False)
    return root


def _first_entry(data):
    key = sorted(data["entries"])[0]
    return key, sorted(data["entries"][key], key=int)[0]


def _set(data, path, value):
    *parents, last = path
    for part in parents:
        data = data[part]
    data[last] = value


# (what is changed, the value, a fragment the sentence must hold)
TABLE_CASES = [
    (("calibration",), {"scale": -1.0, "offset_ms": 0.0}, "'calibration.scale'"),
    (("calibration",), {"scale": 0.0, "offset_ms": 0.1}, "'calibration.scale'"),
    (("calibration",), {"scale": "1", "offset_ms": 0.0}, "'calibration.scale'"),
    (("calibration",), {"scale": 1.0, "offset_ms": 0.0, "fudge": 2}, "unknown key 'fudge'"),
    (("base",), -4.6, "'base'"),
    (("base",), float("nan"), "'base'"),
    (("base",), True, "'base'"),
    (("device",), "cpu", "'device'"),
    (("meta",), [], "'meta'"),
    (("meta", "policy"), {"rounds": 0}, "'meta.policy.rounds'"),
    (("meta", "call_overhead"), {"ms": 0.03, "model": "bogus"}, "'meta.call_overhead.model'"),
    (("meta", "reference"), {"ms": -1.0, "arch": {}}, "'meta.reference.ms'"),
    (("surprise",), 1, "'surprise'"),
    (("entries",), {}, "'entries'"),
]


@pytest.mark.parametrize("where, value, fragment", TABLE_CASES)
def test_a_malformed_table_is_one_sentence_naming_the_field(
    table_file, cli, tmp_path, where, value, fragment
):
    data = json.loads((table_file / "lut.json").read_text())
    data.setdefault("meta", {})
    _set(data, where, value)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = cli("lut", "range", "--lut", bad, "--space", table_file / "tiny.yaml")
    assert_user_error(result, str(bad), fragment)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e300])
def test_an_entry_no_measurement_gives_is_refused(table_file, cli, tmp_path, value):
    data = json.loads((table_file / "lut.json").read_text())
    key, width = _first_entry(data)
    data["entries"][key][width] = value
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = cli("lut", "range", "--lut", bad, "--space", table_file / "tiny.yaml")
    assert_user_error(result, str(bad), f"'entries.{key}.{width}'")


def test_a_width_written_two_ways_is_refused(table_file, cli, tmp_path):
    data = json.loads((table_file / "lut.json").read_text())
    key, width = _first_entry(data)
    data["entries"][key]["0" + width] = 99.0  # "032" beside "32": the same width twice
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = cli("lut", "range", "--lut", bad, "--space", table_file / "tiny.yaml")
    assert_user_error(result, str(bad), f"'0{width}'", "plain positive integers")


def test_a_key_given_twice_in_a_json_file_is_refused(table_file, cli, tmp_path):
    text = (table_file / "lut.json").read_text()
    bad = tmp_path / "bad.json"
    bad.write_text(text.replace('"base":', '"base": 1000.0, "base":', 1))
    result = cli("lut", "range", "--lut", bad, "--space", table_file / "tiny.yaml")
    assert_user_error(result, str(bad), "'base' twice")


def test_a_key_given_twice_in_a_space_file_is_refused(cli, tmp_path):
    space = tmp_path / "dup.yaml"
    space.write_text(TINY_SPACE.replace("classes: 3\n", "classes: 3\nclasses: 1000\n"))
    result = cli("space", "show", space)
    assert_user_error(result, str(space), "'classes' twice", "line 5")


def test_a_key_given_twice_in_an_architecture_file_is_refused(table_file, cli, tmp_path):
    arch = tmp_path / "arch.json"
    cli("arch", "random", "--space", table_file / "tiny.yaml", "--out", arch)
    text = arch.read_text().replace('"width":', '"width": 1, "width":', 1)
    arch.write_text(text)
    result = cli("info", arch, "--space", table_file / "tiny.yaml")
    assert_user_error(result, str(arch), "'width' twice")


@pytest.mark.parametrize(
    "old, new, field",
    [
        ("size: 8", "size: 100000", "'input.size'"),
        ("classes: 3", "classes: 10000000", "'classes'"),
        ("out: 8, blocks: 2, stride: 2", "out: 10000000, blocks: 2, stride: 2", "'stages[0].out'"),
        ("blocks: 2, stride: 1", "blocks: 5000, stride: 1", "'stages[1].blocks'"),
        ("head: {out: 16", "head: {out: 1000000", "'head.out'"),
    ],
)
def test_a_space_of_absurd_sizes_is_refused_on_load(cli, tmp_path, old, new, field):
    assert old in TINY_SPACE
    space = tmp_path / "absurd.yaml"
    space.write_text(TINY_SPACE.replace(old, new, 1))
    assert_user_error(cli("space", "show", space), str(space), field, "must be at most")


@pytest.fixture(scope="module")
def plan_dir(table_file):
    from tfnas.latency.plan import write_plan

    space = load_space(table_file / "tiny.yaml")
    write_plan(
        space, table_file / "plan", width_step=16, space_source=str(table_file / "tiny.yaml")
    )
    return table_file / "plan"


PLAN_CASES = [
    (("entries", 0, "file"), "../../etc/passwd", "inside the plan's directory"),
    (("entries", 0, "file"), "/etc/passwd", "inside the plan's directory"),
    (("entries", 1, "sha256"), "abc", "'entries[1].sha256' (entry 2)"),
    (("entries", 0, "timing"), "fast", "'entries[0].timing' (entry 1)"),
    (("entries", 0, "input_shape"), [1, 0, 8, 8], "'entries[0].input_shape[1]'"),
    (("batch_size",), 0, "'batch_size'"),
    (("model_format",), "tflite", "'model_format'"),
    (("entries", 0, "surprise"), 1, "unknown key 'surprise'"),
]


@pytest.mark.parametrize("where, value, fragment", PLAN_CASES)
def test_a_malformed_manifest_is_one_sentence_naming_the_field(
    plan_dir, cli, tmp_path, where, value, fragment
):
    import shutil

    plan = tmp_path / "plan"
    shutil.copytree(plan_dir, plan)
    data = json.loads((plan / "manifest.json").read_text())
    _set(data, where, value)
    (plan / "manifest.json").write_text(json.dumps(data))
    measured = tmp_path / "m.csv"
    measured.write_text("job,ms\n" + "".join(f"{e['job']},1.0\n" for e in data["entries"]))
    result = cli("lut", "assemble", "--plan", plan, "--measurements", measured, "--out",
                 tmp_path / "t.json")  # fmt: skip
    assert_user_error(result, str(plan / "manifest.json"), fragment)
    assert not (tmp_path / "t.json").exists()


def test_a_manifest_listing_a_job_twice_is_refused(plan_dir, cli, tmp_path):
    import shutil

    plan = tmp_path / "plan"
    shutil.copytree(plan_dir, plan)
    data = json.loads((plan / "manifest.json").read_text())
    data["entries"].append(dict(data["entries"][0]))
    (plan / "manifest.json").write_text(json.dumps(data))
    result = cli("lut", "assemble", "--plan", plan, "--measurements", tmp_path / "m.csv",
                 "--out", tmp_path / "t.json")  # fmt: skip
    assert_user_error(result, "twice")


def test_a_calibration_into_a_table_that_cannot_be_written_is_refused_first(
    table_file, cli, tmp_path, monkeypatch
):
    import os
    import shutil

    shutil.copy(table_file / "lut.json", tmp_path / "lut.json")
    real_access = os.access
    monkeypatch.setattr(  # as a read-only place looks (root may write anywhere else)
        os, "access", lambda p, mode: str(p) != str(tmp_path) and real_access(p, mode)
    )
    result = cli("lut", "check", "--lut", tmp_path / "lut.json", "--space",
                 table_file / "tiny.yaml", "--archs", "3", "--calibrate")  # fmt: skip
    assert_user_error(result, "--lut", "cannot be written")


def test_a_write_that_fails_late_is_one_sentence(tmp_path, monkeypatch):
    import tempfile

    from tfnas.errors import TfnasError
    from tfnas.io import atomic_write_json

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)
    with pytest.raises(TfnasError, match="cannot be written .No space left on device"):
        atomic_write_json(tmp_path / "x.json", {})


def _measurements(plan_dir, path, first_ms, as_json=False):
    jobs = [e["job"] for e in json.loads((plan_dir / "manifest.json").read_text())["entries"]]
    values = [first_ms] + ["1.0"] * (len(jobs) - 1)
    if as_json:
        lines = [f'{{"job": "{j}", "ms": {ms}}}' for j, ms in zip(jobs, values, strict=True)]
    else:
        lines = ["job,ms"] + [f"{j},{ms}" for j, ms in zip(jobs, values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "ms, as_json, line",
    [("1_000", False, 2), ("١٫٥", False, 2), (" nan", False, 2), ("true", True, 1),
     ('"2.0"', True, 1)],
)  # fmt: skip
def test_a_latency_that_is_not_a_plain_number_is_refused(
    plan_dir, cli, tmp_path, ms, as_json, line
):
    measured = _measurements(plan_dir, tmp_path / "m.txt", ms, as_json)
    result = cli("lut", "assemble", "--plan", plan_dir, "--measurements", measured,
                 "--out", tmp_path / "t.json")  # fmt: skip
    if ms == '"2.0"':  # a decimal string in JSON is the number it spells
        assert result.code == 0, result.err
        return
    assert_user_error(result, f"line {line}", "positive, finite number")


def test_files_nested_beyond_reason_are_one_sentence(table_file, cli, tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: x\nstem: " + "[" * 5000 + "]" * 5000 + "\n")
    assert_user_error(cli("space", "show", deep), str(deep), "nests deeper")
    arch = tmp_path / "deep.json"
    arch.write_text(
        '{"format": "tfnas-architecture", "info": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    result = cli("info", arch, "--space", table_file / "tiny.yaml")
    assert_user_error(result, str(arch), "nests deeper")
