"""A run directory belongs to one run: its kind, the inputs it started from, and the one
process that writes it. Each case as a user meets it, through the command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tfnas.rundir import LOCK_FILE, RunDir
from tfnas.space import load_space

from .conftest import assert_user_error
from .test_hardening import private_cache, search_argv, world  # noqa: F401 (fixtures)


def finished_search(cli, w, out: Path, lut: Path | None = None, *extra: str) -> None:
    argv = search_argv(w, out, **({"--lut": lut} if lut else {}))
    result = cli(*argv, *extra)
    assert result.code == 0, result.err


def test_a_resume_refuses_a_latency_table_edited_since(world, cli, tmp_path):  # noqa: F811
    lut = tmp_path / "lut.json"
    shutil.copy(world["lut"], lut)
    finished_search(cli, world, tmp_path / "s", lut)
    data = json.loads(lut.read_text())
    data["base"] *= 1.5
    lut.write_text(json.dumps(data))
    config_before = (tmp_path / "s" / "config.json").read_text()
    result = cli("search", "--resume", tmp_path / "s")
    assert_user_error(result, str(lut), "differs from the latency table")
    assert (tmp_path / "s" / "config.json").read_text() == config_before


def test_a_training_resume_refuses_an_architecture_edited_since(world, cli, tmp_path):  # noqa: F811
    arch = tmp_path / "arch.json"
    shutil.copy(world["arch"], arch)
    train = [*world["train_args"][:-1], str(tmp_path / "t")]
    train[1] = str(arch)
    result = cli(*train)
    assert result.code == 0, result.err
    data = json.loads(arch.read_text())
    block = data["stages"][0]["blocks"][0]
    block["width"] += 1 if block["width"] < 12 else -1
    arch.write_text(json.dumps(data))
    result = cli(*train, "--resume")
    assert_user_error(result, str(arch), "differs from the architecture")


def test_a_training_refuses_the_directory_of_a_search(world, cli, tmp_path):  # noqa: F811
    finished_search(cli, world, tmp_path / "s")
    before = {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir() if p.is_file()}
    train = [*world["train_args"][:-1], str(tmp_path / "s")]
    assert_user_error(cli(*train), "holds a search, not a training run", "--out")
    after = {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir() if p.is_file()}
    assert after == before
    # and the other way round
    assert_user_error(
        cli(*search_argv(world, world["root"] / "train")), "holds a training run, not a search"
    )


def test_a_second_writer_is_refused_until_the_first_ends(world, cli, tmp_path):  # noqa: F811
    out = tmp_path / "s"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tfnas.rundir import RunDir; "
         "RunDir(sys.argv[1], 'search', 'checkpoint.pt').acquire(); time.sleep(60)", str(out)],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not ((out / LOCK_FILE).exists() and (out / LOCK_FILE).read_text()):
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.05)
        result = cli(*search_argv(world, out))
        assert_user_error(result, str(out), f"process {holder.pid}")
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]
    finally:
        holder.kill()  # as by kill -9: the kernel lets go of its lock
        holder.wait()
    finished_search(cli, world, out)
    assert not (out / LOCK_FILE).exists()


def test_one_process_holds_a_run_directory_once(tmp_path):
    first = RunDir(tmp_path / "r", "search", "checkpoint.pt")
    first.acquire()
    try:
        second = RunDir(tmp_path / "r", "search", "checkpoint.pt")
        try:
            second.acquire()
        except Exception as exc:  # noqa: BLE001 (the message is what is tested)
            assert "is being written by process" in str(exc)
        else:
            raise AssertionError("a second holder got the lock")
    finally:
        first.release()
    RunDir(tmp_path / "r", "search", "checkpoint.pt").acquire()


def test_a_resume_with_other_threads_says_its_result_will_differ(world, cli, tmp_path):  # noqa: F811
    finished_search(cli, world, tmp_path / "s", None, "--threads", "1")
    result = cli("search", "--resume", tmp_path / "s", "--threads", "2")
    assert result.code == 0, result.err
    assert "started with 1 thread(s) and resumes with 2" in result.err
    result = cli("search", "--resume", tmp_path / "s", "--threads", "1")
    assert result.code == 0 and "thread(s)" not in result.err


@pytest.mark.parametrize("command", ["eval", "export"])
def test_weights_of_another_version_of_the_space_are_refused(world, cli, tmp_path, command):  # noqa: F811
    # the same space with another activation: the same shapes, another network
    space = tmp_path / "tiny.yaml"
    space.write_text(Path(world["space"]).read_text().replace("act: swish", "act: relu"))
    arch = tmp_path / "arch.json"
    data = json.loads(Path(world["arch"]).read_text())
    data["space"]["hash"] = load_space(space).hash
    arch.write_text(json.dumps(data))
    tail = {
        "eval": ["--data", world["data"]],
        "export": ["--format", "onnx", "--out", tmp_path / "net.onnx"],
    }
    result = cli(command, arch, "--space", space, "--weights", world["weights"], *tail[command])
    assert_user_error(result, world["weights"], "another version of space 'tiny'")
    assert not (tmp_path / "net.onnx").exists()


def test_weights_of_another_architecture_are_named_as_such(world, cli, tmp_path):  # noqa: F811
    other = tmp_path / "other.json"
    cli("arch", "random", "--space", world["space"], "--seed", "11", "--out", other)
    result = cli("eval", other, "--space", world["space"], "--weights", world["weights"],
                 "--data", world["data"])  # fmt: skip
    assert_user_error(result, world["weights"], f"another architecture than {other}")


@pytest.mark.parametrize("damaged", ["checkpoint.pt", "config.json"])
def test_a_damaged_run_file_on_resume_is_one_sentence(world, cli, tmp_path, damaged):  # noqa: F811
    finished_search(cli, world, tmp_path / "s")
    (tmp_path / "s" / damaged).write_bytes(b"\x00garbage{")
    result = cli("search", "--resume", tmp_path / "s")
    assert_user_error(result, str(tmp_path / "s" / damaged))


def test_a_damaged_training_checkpoint_on_resume_is_one_sentence(world, cli, tmp_path):  # noqa: F811
    train = [*world["train_args"][:-1], str(tmp_path / "t")]
    assert cli(*train).code == 0
    (tmp_path / "t" / "last.pt").write_bytes(b"PK\x03\x04 cut short")
    result = cli(*train, "--resume")
    assert_user_error(result, str(tmp_path / "t" / "last.pt"), "cannot be read")
