"""Every setting is declared once, on its config field: the command line's options are made
from the fields (default, type, choices), every field is reachable from the command line,
and an error names the setting in Python and its flag on the command line."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import pickle
import re
import typing

import pytest

from tfnas.cli import build_parser, main
from tfnas.cli.arguments import PIPELINE_WIDE, flag_of
from tfnas.errors import DataError, SettingError, TfnasError, named
from tfnas.latency.policy import TimingPolicy
from tfnas.latency.settings import (
    CheckSettings,
    MeterSettings,
    PlanSettings,
    ProfileSettings,
    RunnerSettings,
)
from tfnas.options import option_name
from tfnas.pipeline_config import PipelineConfig
from tfnas.rundir import RunDir
from tfnas.search.config import SearchConfig
from tfnas.train_config import TrainConfig

from .conftest import REPO

CONFIGS = {"search": SearchConfig, "train": TrainConfig}


# the latency commands and the settings classes their options are made from
LATENCY_SETTINGS = {
    "lut build": (MeterSettings, RunnerSettings, TimingPolicy, PlanSettings),
    "lut plan": (PlanSettings,),
    "lut check": (CheckSettings, RunnerSettings),
    "profile": (MeterSettings, RunnerSettings, TimingPolicy, ProfileSettings),
}


def _actions(command: str) -> dict[str, object]:
    parser = build_parser()
    for word in command.split():
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return {a.dest: a for a in parser._actions}


def _assert_options_of(config: type, command: str) -> None:
    actions = _actions(command)
    hints = typing.get_type_hints(config)
    for field in dataclasses.fields(config):
        action = actions.get(field.name)
        if not field.metadata.get("cli", True):
            continue  # given otherwise: a positional argument or the command's own options
        assert action is not None, f"{command}: no option for {field.name}"
        assert action.option_strings[0] == f"--{option_name(field)}", field.name
        assert action.default == field.default, field.name
        assert action.choices == field.metadata.get("choices"), field.name
        members = [t for t in typing.get_args(hints[field.name]) if t is not type(None)]
        if hints[field.name] is not bool:
            # a bounded setting's type checks its bound as it parses, and says what it makes
            parsed = getattr(action.type, "kind", action.type)
            assert parsed in (hints[field.name], *members), field.name


@pytest.mark.parametrize("command", sorted(CONFIGS))
def test_each_setting_is_an_option_with_the_fields_default_type_and_choices(command):
    _assert_options_of(CONFIGS[command], command)


@pytest.mark.parametrize("command", sorted(LATENCY_SETTINGS))
def test_each_latency_setting_is_an_option_with_the_fields_default_type_and_choices(command):
    for config in LATENCY_SETTINGS[command]:
        _assert_options_of(config, command)


def test_a_settings_bound_is_checked_as_the_command_line_parses(capsys):
    for argv, said in (
        (["lut", "build", "--space", "s", "--width-step", "0", "--out", "x"], "--width-step: "
         "must be at least 1, got 0"),
        (["lut", "check", "--lut", "l.json", "--runner-timeout", "0"], "--runner-timeout: "
         "must be above 0, got 0"),
    ):  # fmt: skip
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 2 and said in capsys.readouterr().err


def test_the_pipelines_own_settings_are_options_with_the_fields_defaults():
    actions = _actions("pipeline")
    for field in dataclasses.fields(PipelineConfig):
        if field.metadata.get("cli", True):
            assert actions[field.name].default == field.default, field.name
            assert actions[field.name].choices == field.metadata.get("choices"), field.name
    assert {"space", "lut", "target_ms", "target_fraction", "arch"} <= set(actions)


def test_the_settings_given_otherwise_have_options_of_their_own():
    assert {"space", "lut", "target_ms"} <= set(_actions("search"))
    assert "arch" in _actions("train")


def test_the_pipeline_offers_every_step_setting_it_does_not_set_itself():
    actions = _actions("pipeline")
    for step, config in CONFIGS.items():
        for field in dataclasses.fields(config):
            if not field.metadata.get("cli", True) or field.name in PIPELINE_WIDE:
                continue
            action = actions[f"{step}.{field.name}"]
            assert action.option_strings[0] == f"--{step}-{option_name(field)}"
            assert action.default is None  # only what is typed is passed on
    for name in PIPELINE_WIDE:
        assert name in actions


def test_a_setting_error_survives_pickling():
    error = pickle.loads(pickle.dumps(SettingError("epochs", "must be at least 1, got 0.")))
    assert (error.setting, str(error)) == ("epochs", "epochs must be at least 1, got 0.")


def test_a_bad_setting_is_named_as_python_spells_it_and_as_the_command_line_does(capsys, tmp_path):
    with pytest.raises(SettingError, match=r"^epochs must be at least 1, got 0\.$"):
        SearchConfig("s", "l", 1.0, epochs=0).validate()
    with pytest.raises(SettingError, match=r"^search\.epochs must be at least 1"):
        PipelineConfig("tfnas-small", "l.json", target_ms=1.0, search={"epochs": 0}).validate()
    with pytest.raises(SettingError, match=r"^ema_decay must lie in"):
        TrainConfig("a.json", ema_decay=1.5).validate()
    argv = ["pipeline", "--space", "tfnas-small", "--lut", "l.json", "--target-ms", "1"]
    assert main([*argv, "--search-epochs", "0", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == "tfnas: error: --search-epochs must be at least 1, got 0.\n"
    assert main([*argv, "--train-ema", "2", "--out", str(tmp_path / "r")]) == 2
    assert "--train-ema must lie in (0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_an_error_names_other_settings_as_python_does_and_as_each_command_does():
    error = TfnasError(f"use a smaller {named('batch_size')} or pass {named('resume')}.")
    assert str(error) == "use a smaller batch_size or pass resume."
    inside = error.within("search")
    assert str(inside) == "use a smaller search.batch_size or pass search.resume."
    flags = {"search.batch_size": "--search-batch-size", "resume": "--resume"}
    shown = inside.render(lambda setting: flag_of(flags, setting))
    assert shown == "use a smaller --search-batch-size or pass --resume."
    data = DataError(f"drop {named('data_root')}.").within("train")
    assert isinstance(data, DataError) and str(data) == "drop train.data_root."


def test_a_resumed_run_with_other_settings_names_their_flags_on_the_command_line(tmp_path, capsys):
    run = RunDir(tmp_path / "run", "training run", "last.pt")
    run.write_config({"arch": "a.json", "ema_decay": None})
    run.save({"epoch": 1}, [])
    with pytest.raises(TfnasError) as caught:
        run.guard({"arch": "b.json", "ema_decay": 0.9}, resume=True)
    flags = {"arch": "ARCH.json", "ema_decay": "--ema", "out": "--out"}
    shown = caught.value.render(lambda setting: flag_of(flags, setting))
    assert "ARCH.json b.json (it was started with a.json); --ema 0.9" in shown
    assert "start a new run with --out" in shown
    assert "arch b.json" in str(caught.value) and "ema_decay 0.9" in str(caught.value)


def _messages(tree: ast.AST) -> list[ast.Constant]:
    """The string constants of a module that are not docstrings."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


def test_no_module_outside_the_command_line_spells_a_flag():
    # the library names settings (tfnas.errors.named); only cli/ turns them into flags, and
    # a runner, a program of its own, declares its own options
    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
    found = []
    for path in sorted((REPO / "src" / "tfnas").rglob("*.py")):
        relative = path.relative_to(REPO / "src" / "tfnas").as_posix()
        if relative.startswith(("cli/", "runners/")):
            continue
        for node in _messages(ast.parse(path.read_text())):
            found += [f"{relative}:{node.lineno} {m}" for m in flag.findall(node.value)]
    assert found == []
