from __future__ import annotations

import subprocess
import sys

import pytest

from .test_data import write_idx_dataset


def test_spaces_lists_builtins(cli):
    result = cli("spaces")
    assert result.code == 0
    assert "tfnas-imagenet" in result.out and "tfnas-small" in result.out
    assert {s["name"] for s in cli("spaces", "--json").json()} == {"tfnas-imagenet", "tfnas-small"}


@pytest.mark.parametrize("space", ["tfnas-small", "tfnas-imagenet"])
def test_info_on_a_random_architecture(tmp_path, cli, space):
    out = tmp_path / "arch.json"
    result = cli("arch", "random", "--space", space, "--seed", "5", "--out", out)
    assert result.code == 0 and out.is_file()
    text = cli("info", out)
    assert text.code == 0
    assert "params" in text.out and "MACs" in text.out and "s1.b1" in text.out
    info = cli("info", out, "--json").json()
    assert info["space"] == space
    assert info["params"] == sum(p["params"] for p in info["parts"])
    assert info["macs"] * 2 == info["flops"] > 0


def test_info_runs_a_real_batch(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("TFNAS_CACHE", str(tmp_path / "cache"))
    write_idx_dataset(tmp_path / "fm")
    out = tmp_path / "arch.json"
    cli("arch", "random", "--space", "tfnas-small", "--out", out)
    result = cli(
        "info", out, "--data", f"fashion-mnist:{tmp_path / 'fm'}", "--batch-size", 8, "--json"
    )
    assert result.code == 0, result.err
    batch = result.json()["batch"]
    assert batch["input_shape"] == [8, 1, 32, 32] and batch["logits_shape"] == [8, 10]


def test_bad_flag_exits_2(cli):
    assert cli("arch", "random", "--space").code == 2
    assert cli("no-such-command").code == 2


def test_python_dash_m():
    result = subprocess.run(
        [sys.executable, "-m", "tfnas", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout.startswith("tfnas ")
    result = subprocess.run(
        [sys.executable, "-m", "tfnas", "space", "show", "missing.yaml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
