from __future__ import annotations

import json
import re

import onnxruntime as ort
import pytest
import torch

from tfnas.arch import random_architecture
from tfnas.distributed import state_digest
from tfnas.evaluation import trained_network
from tfnas.space import load_space
from tfnas.train import Trainer, train
from tfnas.train_config import TrainConfig

from .conftest import assert_user_error
from .test_data import write_idx_dataset
from .test_latency import TINY_SPACE


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("TFNAS_CACHE", str(tmp_path / "cache"))
    write_idx_dataset(tmp_path / "fm", n_train=48, n_test=16)
    space_file = tmp_path / "tiny.yaml"
    space_file.write_text(TINY_SPACE)
    space = load_space(space_file)
    arch = tmp_path / "arch.json"
    random_architecture(space, 3).save(arch)
    config = dict(
        arch=str(arch),
        space=str(space_file),
        data=f"fashion-mnist:{tmp_path / 'fm'}",
        epochs=2,
        batch_size=8,
        ema_decay=0.9,
        deterministic=True,  # exact resume on a GPU too (a no-op on the CPU)
    )
    return tmp_path, space_file, arch, config


def test_train_writes_checkpoints_metrics_and_curves(setup):
    tmp_path, space_file, arch, config = setup
    result = train(TrainConfig(**config), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    for key in ("train_loss", "train_acc", "test_top1", "test_top5", "test_loss", "ema_top1", "lr"):
        assert key in rows[-1]
    assert 0 <= result.best_top1 <= 1
    for name in ("best.pt", "last.pt"):
        state = torch.load(run / name, weights_only=True)
        assert "model" in state and json.loads(state["arch"])["space"]["name"] == "tiny"
    assert any((run / "tensorboard").iterdir())
    net, _ = trained_network(arch, run / "best.pt", space_file)
    assert net.num_classes == 10 and net.in_channels == 1


def test_learning_rate_warms_up_then_decays(setup):
    tmp_path, _, _, config = setup
    trainer = Trainer(
        TrainConfig(**{**config, "epochs": 10, "warmup_epochs": 2}), tmp_path / "r", progress=False
    )
    steps = trainer.steps_per_epoch
    factors = [trainer._lr_factor(i) for i in range(10 * steps)]
    peak = factors.index(max(factors))
    assert peak == 2 * steps - 1 and factors[0] < factors[peak]
    assert all(a >= b for a, b in zip(factors[peak:], factors[peak + 1 :], strict=False))
    assert TrainConfig(arch="a", batch_size=128).resolved_lr() == pytest.approx(0.05)


def kill_training_in_second_epoch(monkeypatch):
    """Make the next training runs die (as if killed) when their second epoch starts;
    returns the call that makes them live again."""
    original = Trainer._train_epoch

    def dies_in_second_epoch(self, loader):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return original(self, loader)

    monkeypatch.setattr(Trainer, "_train_epoch", dies_in_second_epoch)
    return lambda: monkeypatch.setattr(Trainer, "_train_epoch", original)


def test_resume_after_a_kill_ends_with_the_same_weights(setup, monkeypatch):
    tmp_path, _, _, config = setup
    train(TrainConfig(**config), tmp_path / "full", progress=False)
    revive = kill_training_in_second_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**config), tmp_path / "killed", progress=False)
    revive()
    train(TrainConfig(**config), tmp_path / "killed", resume=True, progress=False)
    full = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    resumed = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)["model"]
    for key in full:
        torch.testing.assert_close(resumed[key], full[key])


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_eval_and_export_cli(setup, cli):
    tmp_path, space_file, arch, config = setup
    train(
        TrainConfig(**{**config, "epochs": 1, "ema_decay": None}), tmp_path / "run", progress=False
    )
    weights = tmp_path / "run" / "best.pt"
    result = cli(
        "eval",
        arch,
        "--weights",
        weights,
        "--space",
        space_file,
        "--data",
        config["data"],
        "--json",
    )
    assert result.code == 0, result.err
    out = result.json()
    assert out["images"] == 16 and 0 <= out["top1"] <= out["top5"] <= 1
    stored = torch.load(weights, weights_only=True)
    assert out["top1"] == pytest.approx(
        json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["test_top1"]
    )
    assert stored["top1"] == pytest.approx(out["top1"])
    onnx_file = tmp_path / "net.onnx"
    result = cli(
        "export",
        arch,
        "--weights",
        weights,
        "--space",
        space_file,
        "--format",
        "onnx",
        "--out",
        onnx_file,
    )
    assert result.code == 0, result.err
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    net, _ = trained_network(arch, weights, space_file)
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(
        torch.from_numpy(session.run(None, {"images": x.numpy()})[0]),
        net(x).detach(),
        rtol=1e-4,
        atol=1e-4,
    )
    ts_file = tmp_path / "net.pt"
    assert (
        cli(
            "export",
            arch,
            "--weights",
            weights,
            "--space",
            space_file,
            "--format",
            "torchscript",
            "--out",
            ts_file,
        ).code
        == 0
    )
    torch.testing.assert_close(torch.jit.load(str(ts_file))(x), net(x).detach())


def test_bad_weights_and_reuse(setup, cli):
    tmp_path, space_file, arch, config = setup
    assert_user_error(
        cli("eval", arch, "--weights", tmp_path / "none.pt", "--space", space_file),
        "no such weights file",
    )
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    assert_user_error(
        cli("eval", arch, "--weights", junk, "--space", space_file), "not a tfnas weights file"
    )
    train(TrainConfig(**{**config, "epochs": 1}), tmp_path / "run", progress=False)
    other = tmp_path / "other.json"
    random_architecture(load_space(space_file), 11).save(other)
    assert_user_error(
        cli("eval", other, "--weights", tmp_path / "run" / "best.pt", "--space", space_file),
        "was trained for another architecture than",
    )
    assert_user_error(
        cli(
            "train",
            arch,
            "--space",
            space_file,
            "--data",
            config["data"],
            "--out",
            tmp_path / "run",
        ),
        "--resume",
    )


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(setup):
    """DistributedDataParallel over gloo: two CPU processes train one network together."""
    import os
    import subprocess
    import sys

    tmp_path, space_file, arch, config = setup
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29517",
        "-m",
        "tfnas",
        "train",
        str(arch),
        "--space",
        str(space_file),
        "--data",
        config["data"],
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "ddp"),
    ]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert all(r["processes"] == 2 for r in rows)
    state = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert state["epoch"] == 2
    # each process saw half of the 48 training images per epoch: 3 steps of 8, not 6
    assert state["scheduler"]["last_epoch"] == 2 * 3
    # both processes ended with identical weights, and they are the ones saved
    digests = dict(re.findall(r"process (\d) of 2: weights sha256 ([0-9a-f]{64})", result.stderr))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"], result.stderr[-2000:]
    net, _ = trained_network(arch, tmp_path / "ddp" / "last.pt", space_file)
    assert state_digest(net) == digests["0"]
