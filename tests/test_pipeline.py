from __future__ import annotations

import csv
import functools
import json
import os
from pathlib import Path

import pytest

import tfnas.latency.build as build_module
import tfnas.pipeline as pipeline_module
from tfnas.arch import load_architecture
from tfnas.latency.table import load_table
from tfnas.pipeline import run_pipeline
from tfnas.pipeline_config import PipelineConfig
from tfnas.pipeline_summary import PipelineSummary
from tfnas.space import load_space

from .conftest import assert_user_error
from .test_data import write_idx_dataset
from .test_latency import FAST, TINY_SPACE
from .test_train import kill_training_in_second_epoch

# A tiny space timed on shared cores: one channel more moves a network's latency by a few
# percent, more than the default tolerance of a search's miss (tests/test_target_reach.py
# tests the tolerance itself; these test the chain).
LOOSE = ("--search-target-tolerance", "0.05")


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A tiny space and data set; a new table is timed with the fast test policy."""
    monkeypatch.setenv("TFNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(
        pipeline_module,
        "LatencyMeter",
        functools.partial(pipeline_module.LatencyMeter, policy=FAST),
    )
    # the machine's load does not decide these tests (one below makes it busy on purpose)
    monkeypatch.setattr(build_module, "load_average", lambda: 0.0)
    write_idx_dataset(tmp_path / "fm", n_train=60, n_test=20)
    space_file = tmp_path / "tiny.yaml"
    space_file.write_text(TINY_SPACE)
    config = dict(
        space=str(space_file),
        lut=str(tmp_path / "lut.json"),
        target_fraction=0.5,
        data=f"fashion-mnist:{tmp_path / 'fm'}",
        calibrate_archs=3,
        search={"epochs": 2, "warmup_epochs": 1, "batch_size": 8, "target_tolerance": 0.05},
        train={"epochs": 2, "batch_size": 8},
    )
    return tmp_path, config


def test_pipeline_builds_searches_retrains_evaluates_and_profiles(setup, cli):
    tmp_path, config = setup
    run = tmp_path / "run"
    result = run_pipeline(PipelineConfig(**config), run, log=lambda _: None, build_lut=True)
    assert PipelineSummary.load(run) == result  # the typed summary owns its JSON form
    summary = result.to_dict()
    assert json.loads((run / "summary.json").read_text()) == summary
    assert summary["lut"]["built"] and summary["lut"]["calibrated"]
    assert (tmp_path / "lut.json").is_file() and not list(tmp_path.glob("lut.json.*"))
    # the prediction is the table's for the architecture file the search wrote (precision
    # is tested in test_search: a tiny space timed in a few calls is too rough for it here)
    space = load_space(config["space"])
    arch, _ = load_architecture(run / "search" / "arch.json", space)
    table = load_table(config["lut"], space)
    assert summary["predicted_ms"] == pytest.approx(table.predict(space, arch))
    assert summary["measured_ms"] > 0 and summary["params"] > 0 and summary["flops"] > 0
    assert summary["test_images"] == 20 and 0 <= summary["top1"] <= summary["top5"] <= 1
    assert list(summary["step_seconds"]) == [
        "latency table",
        "search",
        "retrain",
        "evaluate",
        "profile",
    ]
    assert summary["total_seconds"] == pytest.approx(sum(summary["step_seconds"].values()))
    assert summary["retrain_epochs"] == 2
    for path in ("search/arch.json", "train/best.pt", "train/metrics.jsonl", "pipeline.json"):
        assert (run / path).is_file()

    # run again with the same settings: every step is reused and the summary printed again
    flags = [
        "--space", config["space"], "--lut", config["lut"], "--target-fraction", "0.5",
        "--data", config["data"], "--calibrate-archs", "3", "--out", run,
        "--search-epochs", "2", "--search-warmup-epochs", "1", "--search-batch-size", "8", *LOOSE,
        "--train-batch-size", "8",
    ]  # fmt: skip
    r = cli("pipeline", *flags, "--train-epochs", "2")
    assert r.code == 0, r.err
    assert r.err.count("done in an earlier run") == 5
    assert "test top-1" in r.out and "time: total" in r.out
    # other settings in the same run directory are refused, not mixed in
    r = cli("pipeline", *flags, "--train-epochs", "3")
    assert_user_error(r, "other settings")


def test_a_table_built_on_a_busy_machine_stops_the_pipeline_before_it_searches(
    setup, cli, monkeypatch
):
    tmp_path, config = setup
    monkeypatch.setattr(build_module, "load_average", lambda: 3.0 + os.cpu_count())
    flags = ["--space", config["space"], "--lut", config["lut"], "--data", config["data"],
             "--target-fraction", "0.5", "--calibrate-archs", "3", "--search-epochs", "2",
             "--search-warmup-epochs", "1", "--search-batch-size", "8", *LOOSE,
             "--train-epochs", "1", "--train-batch-size", "8", "--build-lut", "--out",
             tmp_path / "run"]  # fmt: skip
    r = cli("pipeline", *flags)
    said = r.err.strip().splitlines()[-1]  # after the build's progress lines
    assert r.code == 2 and "Traceback" not in r.err and said.startswith("tfnas: error: ")
    assert "the machine was busy while it was measured" in said and "load average" in said
    assert "--accept-busy-table" in said
    # nothing is kept that a rerun would reuse: the table is measured again
    assert not list(tmp_path.glob("lut.json*"))
    assert not (tmp_path / "run" / "search").exists()
    r = cli("pipeline", *flags, "--accept-busy-table", "--json")
    assert r.code == 0, r.err
    assert json.loads((tmp_path / "lut.json").read_text())["meta"]["stability"]["busy"]


def test_killed_pipeline_resumes_at_the_interrupted_step(setup, monkeypatch):
    tmp_path, config = setup
    revive = kill_training_in_second_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(PipelineConfig(**config), tmp_path / "run", log=lambda _: None, build_lut=True)
    record = json.loads((tmp_path / "run" / "pipeline.json").read_text())
    assert list(record["steps"]) == ["latency table", "search"]

    revive()
    import tfnas.search.searcher as searcher

    def no_second_search(*args, **kwargs):
        raise AssertionError("the finished search ran again")

    monkeypatch.setattr(searcher, "search", no_second_search)
    lines: list[str] = []
    summary = run_pipeline(PipelineConfig(**config), tmp_path / "run", log=lines.append).to_dict()
    assert "[search] done in an earlier run" in " ".join(lines)
    rows = (tmp_path / "run" / "train" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [0, 1]
    assert summary["retrain_epochs"] == 2


def test_pipeline_cli_reports_and_refuses_bad_input(setup, cli):
    tmp_path, config = setup
    common = ["--space", config["space"], "--data", config["data"], "--out", tmp_path / "r"]
    r = cli("pipeline", *common, "--lut", config["lut"], "--target-fraction", "1.5")
    assert_user_error(r, "--target-fraction")
    r = cli(
        "pipeline", *common, "--lut", config["lut"], "--target-ms", "1", "--calibrate-archs", "2"
    )
    assert_user_error(r, "--calibrate-archs")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    r = cli("pipeline", *common, "--lut", bad, "--target-ms", "1")
    assert_user_error(r, "bad.json")
    assert not (tmp_path / "r" / "summary.json").exists()
    quick = ["--search-epochs", "2", "--search-batch-size", "8", *LOOSE, "--train-epochs", "1"]
    quick += ["--calibrate-archs", "3"]
    r = cli("pipeline", *common, "--lut", config["lut"], "--target-fraction", "0.5", *quick)
    assert_user_error(r, "lut.json: no such latency table", "--build-lut")  # not built unasked
    assert not (tmp_path / "r").exists()
    r = cli("pipeline", *common, "--lut", config["lut"], "--target-fraction", "0.5", *quick,
            "--build-lut")  # fmt: skip
    r2 = cli("pipeline", *common[:-2], "--out", tmp_path / "r2", "--lut", config["lut"],
             "--target-ms", "1000")  # fmt: skip
    assert r.code == 0, r.err  # the table now exists: targets are checked before any step
    assert_user_error(r2, "outside the feasible latency range")
    assert not (tmp_path / "r2").exists()


def test_sweep_writes_the_accuracy_latency_curve(setup, cli):
    tmp_path, config = setup
    flags = [
        "--space", config["space"], "--lut", config["lut"], "--data", config["data"],
        "--calibrate-archs", "3", "--search-epochs", "2", "--search-warmup-epochs", "1",
        "--search-batch-size", "8", *LOOSE, "--train-epochs", "1", "--train-batch-size", "8",
        "--build-lut",
    ]  # fmt: skip
    r = cli("sweep", *flags, "--target-fractions", "0.2,0.8", "--out", tmp_path / "sweep")
    assert r.code == 0, r.err
    rows = list(csv.DictReader((tmp_path / "sweep" / "sweep.csv").open()))
    assert [row["target"] for row in rows] == ["0.2 of range", "0.8 of range"]
    assert float(rows[0]["target_ms"]) < float(rows[1]["target_ms"])
    for row in rows:
        assert float(row["measured_ms"]) > 0 and 0 <= float(row["top1"]) <= 1
        assert (tmp_path / "sweep" / Path(row["run_dir"]).name / "summary.json").is_file()
    assert (tmp_path / "sweep" / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "measured ms" in r.out
    assert_user_error(
        cli("sweep", *flags, "--targets", "1,x", "--out", tmp_path / "s2"), "--targets"
    )
    assert_user_error(
        cli("sweep", *flags, "--target-fractions", "0.5,2", "--out", tmp_path / "s3"),
        "--target-fraction",
    )
    assert not (tmp_path / "s3").exists()


def test_pipeline_with_a_given_architecture_skips_the_search(setup, cli):
    tmp_path, config = setup
    space = load_space(config["space"])
    from tfnas.arch import random_architecture

    random_architecture(space, 5).save(tmp_path / "given.json")
    flags = [
        "--space", config["space"], "--lut", config["lut"], "--data", config["data"],
        "--calibrate-archs", "3", "--train-epochs", "1", "--train-batch-size", "8",
        "--build-lut",
    ]  # fmt: skip
    r = cli(
        "pipeline", *flags, "--arch", tmp_path / "given.json", "--out", tmp_path / "r", "--json"
    )
    assert r.code == 0, r.err
    summary = r.json()
    assert summary["architecture"] == random_architecture(space, 5).describe()
    assert summary["target_ms"] == summary["predicted_ms"]
    assert not (tmp_path / "r" / "search" / "metrics.jsonl").exists()
    r = cli("pipeline", *flags, "--arch", tmp_path / "nope.json", "--out", tmp_path / "r2")
    assert_user_error(r, "nope.json")
    r = cli("pipeline", *flags, "--out", tmp_path / "r3")
    assert_user_error(r, "--target-ms or --target-fraction")
