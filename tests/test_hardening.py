"""Bad and unusual inputs, as a user types them: one sentence and exit status 2 (or the
documented behaviour), the message naming the flag, file or value, no traceback, and no file
left behind that was not there before. docs/errors.md lists what was tried."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tfnas.cli import build_parser
from tfnas.nn.batchnorm import recalibrate_batchnorm
from tfnas.space import load_space

from .conftest import REPO, assert_user_error
from .test_data import write_image_folder
from .test_latency import TINY_SPACE
from .tiny_world import make_tiny_world, run_quietly


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny space, its table, data, an architecture, and a finished search and training."""
    root = tmp_path_factory.mktemp("world")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TFNAS_CACHE", str(root / "cache"))
        w = make_tiny_world(root)
        w["search_args"] = [
            "search", "--space", w["space"], "--lut", w["lut"], "--data", w["data"],
            "--target-ms", str(w["target"]), "--epochs", "2", "--batch-size", "8",
            "--out", str(root / "search"),
        ]  # fmt: skip
        run_quietly(w["search_args"])
        yield w


@pytest.fixture(autouse=True)
def private_cache(world, monkeypatch):
    monkeypatch.setenv("TFNAS_CACHE", str(world["root"] / "cache"))


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


def search_argv(w, out, **override):
    flags = {
        "--space": w["space"],
        "--lut": w["lut"],
        "--data": w["data"],
        "--target-ms": w["target"],
        "--epochs": 2,
        "--batch-size": 8,
        "--out": out,
    }
    flags.update(override)
    argv = ["search"]
    for flag, value in flags.items():
        if value is not None:
            argv += [flag, str(value)]
    return argv


# -- resume never mixes settings ------------------------------------------------------------


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--target-ms", "3"),
        ("--epochs", "5"),
        ("--lut", "other-lut.json"),
        ("--limit", "40"),
        ("--seed", "7"),
        ("--space", "tfnas-small"),
        ("--target-fraction", "0.5"),
        ("--batch-size", "4"),
    ],
)
def test_search_resume_refuses_other_settings(world, cli, flag, value):
    run = world["root"] / "search"
    before = (run / "config.json").read_text()
    result = cli("search", "--resume", run, flag, value)
    assert_user_error(result, flag)
    assert (run / "config.json").read_text() == before


def test_search_resume_accepts_its_own_settings_and_threads(world, cli):
    run = world["root"] / "search"
    result = cli("search", "--resume", run, "--epochs", "2", "--threads", "1")
    assert result.code == 0, result.err


@pytest.mark.parametrize(
    "flag, value", [("--lr", "0.3"), ("--limit", "20"), ("--epochs", "3"), ("--seed", "4")]
)
def test_train_resume_refuses_other_settings(world, cli, flag, value):
    run = world["root"] / "train"
    before = (run / "config.json").read_text()
    result = cli(*world["train_args"], "--resume", flag, value)
    assert_user_error(result, flag)
    assert (run / "config.json").read_text() == before


def test_train_resume_of_a_finished_run_reports_its_best_accuracy(world, cli):
    run = world["root"] / "train"
    best = torch.load(run / "best.pt", weights_only=True)["top1"]
    result = cli(*world["train_args"], "--resume")
    assert result.code == 0, result.err
    assert f"best test top-1 {best:.4f}" in result.out and "-1.0000" not in result.out


def test_a_run_killed_before_its_first_checkpoint_starts_over(world, cli, tmp_path):
    out = tmp_path / "search"
    out.mkdir()
    # what a kill during the first epoch leaves: the settings, no checkpoint
    argv = search_argv(world, out)
    assert cli(*argv).code == 0
    (out / "checkpoint.pt").unlink()
    for extra in ([], ["--resume", str(out)]):
        result = cli(*(argv if not extra else ["search", *extra]))
        assert result.code == 0, result.err
        assert (out / "arch.json").is_file()
        (out / "checkpoint.pt").unlink()


# -- data -------------------------------------------------------------------------------------


def test_plain_image_folder_holds_out_a_test_split(tmp_path, cli):
    write_image_folder(tmp_path / "imgs", per_class=10)
    result = cli("data", "show", tmp_path / "imgs", "--json")
    assert result.code == 0, result.err
    shown = result.json()
    assert shown["train_images"] + shown["test_images"] == 30
    assert 0 < shown["test_images"] < shown["train_images"]
    assert "held out" in result.err


def test_val_folder_with_other_classes_is_refused(tmp_path, cli):
    write_image_folder(tmp_path / "d" / "train", classes=("cat", "dog"))
    write_image_folder(tmp_path / "d" / "val", classes=("cat", "emu"))
    result = cli("data", "show", tmp_path / "d")
    assert_user_error(result, "val", "dog", "emu")


def test_one_class_is_refused(tmp_path, cli):
    write_image_folder(tmp_path / "one" / "train", classes=("cat",))
    write_image_folder(tmp_path / "one" / "val", classes=("cat",))
    assert_user_error(cli("data", "show", tmp_path / "one"), "one class")


def test_weights_of_other_class_count_are_refused(world, cli, tmp_path):
    write_image_folder(tmp_path / "two" / "train", classes=("cat", "dog"), size=(28, 28))
    write_image_folder(tmp_path / "two" / "val", classes=("cat", "dog"), size=(28, 28))
    weights = world["root"] / "train" / "best.pt"
    result = cli("eval", world["arch"], "--space", world["space"], "--weights", weights,
                 "--data", tmp_path / "two")  # fmt: skip
    assert_user_error(result, "2 classes", "10")


def corrupt_folder(root: Path) -> None:
    """An image folder with one file in train/ and one in val/ that do not decode."""
    for split in ("train", "val"):
        write_image_folder(root / split, classes=("cat", "dog"), per_class=4, size=(10, 10))
        (root / split / "dog" / "broken.png").write_bytes(b"not a png at all")


def test_data_show_check_finds_unreadable_images(tmp_path, cli):
    corrupt_folder(tmp_path / "c")
    assert cli("data", "show", tmp_path / "c").code == 0
    result = cli("data", "show", tmp_path / "c", "--check")
    assert_user_error(result, "2 of the 18 image files", "train/dog/broken.png", "val/dog/")


@pytest.mark.parametrize("command", ["train", "search", "info"])
def test_a_corrupt_image_is_one_sentence_and_leaves_nothing(world, cli, tmp_path, command):
    corrupt_folder(tmp_path / "c")
    out = tmp_path / "run"
    data = str(tmp_path / "c")
    if command == "train":
        argv = ["train", world["arch"], "--space", world["space"], "--data", data,
                "--epochs", "1", "--batch-size", "2", "--out", out]  # fmt: skip
    elif command == "search":
        argv = search_argv(world, out, **{"--data": data, "--batch-size": 2})
        argv += ["--in-channels", "1"]
    else:
        argv = ["info", world["arch"], "--space", world["space"], "--data", data,
                "--batch-size", "16"]  # fmt: skip
    result = cli(*argv)
    assert_user_error(result, "broken.png", "cannot be read as an image")
    assert not out.exists()


# -- latency tables ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-0.5, 0.0])
def test_non_positive_latency_inside_the_bounds_is_refused(world, cli, tmp_path, value):
    data = json.loads(Path(world["lut"]).read_text())
    key = sorted(data["entries"])[0]
    width = sorted(data["entries"][key], key=int)[0]
    data["entries"][key][width] = value
    bad = tmp_path / "bad-lut.json"
    bad.write_text(json.dumps(data))
    result = cli("lut", "range", "--lut", bad, "--space", world["space"])
    assert_user_error(result, str(bad), key, f"width {width}")


def test_a_table_of_another_device_is_named(world, cli, tmp_path):
    data = json.loads(Path(world["lut"]).read_text())
    data["device"] = {**data["device"], "cpu": "Imaginary Xeon 9999", "kind": "cpu"}
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps(data))
    result = cli("profile", world["arch"], "--space", world["space"], "--lut", foreign,
                 "--rounds", "1", "--gap", "0", "--json")  # fmt: skip
    assert result.code == 0, result.err
    assert "Imaginary Xeon 9999" in result.err and "another device" in result.err
    assert result.json()["table_device_differs"] is True
    # two devices' speeds are no drift of one: nothing is "corrected" by their ratio
    assert result.json()["drift"] is None and "measured_drift_corrected_ms" not in result.json()
    result = cli("lut", "check", "--lut", foreign, "--space", world["space"], "--archs", "3",
                 "--json")  # fmt: skip
    assert result.code == 0, result.err
    assert result.json()["drift"] is None and "before_drift_corrected" not in result.json()


def test_sweep_checks_every_target_before_the_first_runs(world, cli, tmp_path):
    out = tmp_path / "sweep"
    result = cli("sweep", "--space", world["space"], "--lut", world["lut"], "--data",
                 world["data"], "--targets", f"{world['target']},100", "--out", out)  # fmt: skip
    assert_user_error(result, "100")
    assert not out.exists()


def test_target_ms_and_fraction_together_are_refused(world, cli, tmp_path):
    argv = search_argv(world, tmp_path / "s") + ["--target-fraction", "0.5"]
    assert_user_error(cli(*argv), "--target-fraction", "--target-ms")


def test_pipeline_does_not_build_a_misspelt_table(world, cli, tmp_path):
    typo = tmp_path / "lutt.json"
    result = cli("pipeline", "--space", world["space"], "--lut", typo, "--data", world["data"],
                 "--target-ms", world["target"], "--out", tmp_path / "p")  # fmt: skip
    assert_user_error(result, str(typo), "--build-lut")
    assert not typo.exists() and not (tmp_path / "p").exists()


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_targets_are_named_as_such(world, cli, tmp_path, value):
    result = cli(*search_argv(world, tmp_path / "s", **{"--target-ms": value}))
    assert_user_error(result, "--target-ms", "finite")


# -- tracebacks that became sentences ---------------------------------------------------------


def test_export_to_an_existing_directory(world, cli, tmp_path):
    weights = world["root"] / "train" / "best.pt"
    result = cli("export", world["arch"], "--space", world["space"], "--weights", weights,
                 "--format", "onnx", "--out", tmp_path)  # fmt: skip
    assert_user_error(result, "--out", str(tmp_path))


def test_search_out_is_an_existing_file(world, cli, tmp_path):
    out = tmp_path / "a-file"
    out.write_text("x")
    assert_user_error(cli(*search_argv(world, out)), "--out", str(out))
    assert out.read_text() == "x"


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--lr", "-1"),
        ("--lr", "nan"),
        ("--weight-decay", "-1"),
        ("--label-smoothing", "1.5"),
        ("--dropout", "1"),
        ("--drop-connect", "-0.1"),
        ("--warmup-epochs", "-1"),
        ("--limit", "0"),
        ("--workers", "-1"),
        ("--epochs", "0"),
        ("--batch-size", "0"),
    ],
)
def test_train_refuses_bad_numbers(world, cli, tmp_path, flag, value):
    out = tmp_path / "t"
    result = cli("train", world["arch"], "--space", world["space"], "--data", world["data"],
                 "--out", out, flag, value)  # fmt: skip
    assert_user_error(result, flag)
    assert not out.exists()


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--batch-size", "0"),
        ("--arch-every", "0"),
        ("--epochs", "0"),
        ("--limit", "1"),
        ("--weight-lr", "-1"),
        ("--lambda-lat", "nan"),
        ("--workers", "-2"),
        ("--target-fraction", "1.5"),
    ],
)
def test_search_refuses_bad_numbers(world, cli, tmp_path, flag, value):
    out = tmp_path / "s"
    override = {flag: value}
    if flag == "--target-fraction":
        override["--target-ms"] = None
    result = cli(*search_argv(world, out, **override))
    assert_user_error(result, flag)
    assert not out.exists()


def test_broken_pipe_is_quiet():
    shell = f"{sys.executable} -m tfnas space show tfnas-imagenet | head -1"
    for _ in range(3):
        result = subprocess.run(
            ["bash", "-c", shell], capture_output=True, text=True, check=False, cwd=REPO
        )
        assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_a_search_too_big_for_memory_is_refused_with_a_batch_that_fits(
    world, cli, tmp_path, monkeypatch
):
    import tfnas.memory as memory

    estimate = memory.estimate_search_memory(load_space(world["space"]), 8, 1)
    assert estimate.total_bytes > estimate.weights_bytes > 0
    monkeypatch.setattr(memory, "available_bytes", lambda device: estimate.total_bytes // 2)
    result = cli(*search_argv(world, tmp_path / "s"))
    assert_user_error(result, "--batch-size", "memory")
    assert not (tmp_path / "s").exists()


# -- smaller ones -----------------------------------------------------------------------------


def test_space_show_json_loads_back(cli, tmp_path):
    shown = cli("space", "show", "tfnas-small", "--json")
    copy = tmp_path / "copy.json"
    copy.write_text(shown.out)
    again = cli("space", "show", copy, "--json")
    assert again.code == 0, again.err
    assert again.json()["hash"] == shown.json()["hash"]


def test_unknown_keys_in_an_architecture_file_are_refused(world, cli, tmp_path):
    data = json.loads(Path(world["arch"]).read_text())
    data["stages"][0]["blocks"][0]["kernal"] = 5
    bad = tmp_path / "arch.json"
    bad.write_text(json.dumps(data))
    assert_user_error(cli("info", bad, "--space", world["space"]), str(bad), "kernal")


def test_a_space_of_two_channels_is_refused(tmp_path, cli):
    bad = tmp_path / "two.yaml"
    bad.write_text(TINY_SPACE.replace("channels: 1", "channels: 2"))
    assert_user_error(cli("space", "show", bad), str(bad), "channels")


def test_a_table_missing_an_entry_names_its_file(world, cli, tmp_path):
    data = json.loads(Path(world["lut"]).read_text())
    del data["entries"][sorted(data["entries"])[0]]
    bad = tmp_path / "holey.json"
    bad.write_text(json.dumps(data))
    assert_user_error(cli("lut", "range", "--lut", bad, "--space", world["space"]), str(bad))


def test_profile_with_a_table_of_another_space_blames_the_table(world, cli, tmp_path):
    other = tmp_path / "small-arch.json"
    cli("arch", "random", "--space", "tfnas-small", "--out", other)
    result = cli("profile", other, "--lut", world["lut"], "--space", world["space"])
    assert_user_error(result, world["lut"])


def test_every_option_has_help():
    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{path} {name}")
            elif action.option_strings and not action.help:
                yield f"{path} {action.option_strings[-1]}"

    missing = list(walk(build_parser(), "tfnas"))
    assert not missing, missing


def test_docs_links_resolve():
    broken = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        import re

        for target in re.findall(r"\]\(([^)#\s]+)", doc.read_text()):
            if "://" in target:
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.name} -> {target}")
    assert not broken, broken


@pytest.mark.parametrize("key, value", [("width", 10_000), ("kernel", "x"), ("kernal", 3)])
def test_messages_number_blocks_from_one(world, cli, tmp_path, key, value):
    data = json.loads(Path(world["arch"]).read_text())
    data["stages"][0]["blocks"][0][key] = value
    bad = tmp_path / "wide.json"
    bad.write_text(json.dumps(data))
    result = cli("info", bad, "--space", world["space"])
    assert_user_error(result, "stage 1 block 1")


def test_short_trainings_re_estimate_batch_norm_before_evaluating(world):
    rows = [
        json.loads(x) for x in (world["root"] / "train" / "metrics.jsonl").read_text().splitlines()
    ]
    assert rows[-1]["bn_recalibrated_batches"] > 0  # 1 epoch of 8 steps: the automatic case


def test_recalibrated_batch_norm_holds_the_average_of_the_batches():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    batches = [(torch.randn(8, 1, 6, 6) * (i + 1) + i, None) for i in range(3)]
    net.eval()
    used = recalibrate_batchnorm(net, iter(batches * 5), 3)
    assert used == 3 and not net.training and net[1].momentum == 0.1
    with torch.no_grad():
        means = [net[0](x).mean((0, 2, 3)) for x, _ in batches]
    assert torch.allclose(net[1].running_mean, torch.stack(means).mean(0), atol=1e-5)


@pytest.mark.slow
def test_the_input_sweep_finds_nothing_in_the_quick_commands():
    """bench/input_sweep.py on the commands that run in seconds (the whole sweep, every
    command, is run by hand: docs/errors.md)."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "input_sweep.py"),
         "--only",
         "space show,arch random,info,lut range,lut check,eval,export,report,lut assemble"],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["cases"] > 60 and summary["refused"] > 40
    assert summary["findings"] == [], summary["findings"]


def test_sizes_beyond_memory_are_one_sentence(world, cli):
    result = cli("info", world["arch"], "--space", world["space"], "--classes", "10000000000")
    assert_user_error(result, "need more memory than this machine can give", "GiB")


def test_a_cache_that_is_a_file_is_named(world, cli, tmp_path, monkeypatch):
    blocker = tmp_path / "cache-file"
    blocker.write_text("")
    monkeypatch.setenv("TFNAS_CACHE", str(blocker / "sub"))
    result = cli("data", "show", world["data"])
    assert_user_error(result, "TFNAS_CACHE", str(blocker), "is a file")
