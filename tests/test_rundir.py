"""The run directory that search and training share."""

from __future__ import annotations

import pytest
import torch

from tfnas.engine import GeneratorState
from tfnas.errors import TfnasError
from tfnas.rundir import RunDir


def test_guard_save_and_load(tmp_path):
    run = RunDir(tmp_path / "run", "search", "checkpoint.pt")
    config = {"epochs": 3, "betas": (0.5, 0.999)}
    run.guard(config, resume=False)  # nothing there yet
    run.write_config(config)
    # settings but no checkpoint: killed before its first epoch ended, nothing to lose
    run.guard({**config, "epochs": 4}, resume=False)
    assert run.load("cpu") is None
    history = [{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": 0.5}]
    run.save({"epoch": 1, "w": torch.ones(2)}, history)
    with pytest.raises(TfnasError, match="holds a search already"):
        run.guard(config, resume=False)
    run.guard(config, resume=True)  # the same settings (tuples saved as lists) resume
    with pytest.raises(TfnasError, match=r"epochs 4 \(it was started with 3\); seed 1"):
        run.guard({**config, "epochs": 4, "seed": 1}, resume=True)
    state, rows = run.load("cpu")
    assert torch.equal(state["w"], torch.ones(2))
    assert rows == history[:1]  # rows of epochs the checkpoint holds only
    assert not list((tmp_path / "run").glob(".*.tmp"))  # nothing half-written left behind


def test_guard_resumes_a_run_saved_before_a_setting_existed(tmp_path):
    run = RunDir(tmp_path / "run", "search", "checkpoint.pt")
    run.write_config({"epochs": 4, "amp": True})  # an older tfnas: no precision, an amp flag
    run.save({"epoch": 1}, [])
    defaults = {"precision": "auto", "epochs": 10}
    run.guard({"epochs": 4, "precision": "auto"}, resume=True, defaults=defaults)
    with pytest.raises(TfnasError, match=r"precision bf16 \(it was started with auto\)"):
        run.guard({"epochs": 4, "precision": "bf16"}, resume=True, defaults=defaults)


def test_a_generators_state_comes_back_from_both_checkpoint_forms():
    generator = torch.Generator().manual_seed(3)
    saved = GeneratorState(generator).state_dict()
    expected = torch.rand(4, generator=generator)
    for form in (saved, saved["state"]):  # today's, and an older tfnas's bare tensor
        again = torch.Generator().manual_seed(99)
        GeneratorState(again).load_state_dict(form)
        assert torch.equal(torch.rand(4, generator=again), expected)
