"""Every setting is declared once, on its config field: the command line's options are made
from the fields (default, type, choices), every field is reachable from the command line,
and an error names the setting in Python and its flag on the command line."""

from __future__ import annotations

import dataclasses
import pickle
import typing

import pytest

from tfnas.cli import build_parser, main
from tfnas.cli.arguments import PIPELINE_WIDE
from tfnas.errors import SettingError
from tfnas.options import option_name
from tfnas.pipeline_config import PipelineConfig
from tfnas.search.config import SearchConfig
from tfnas.train_config import TrainConfig

CONFIGS = {"search": SearchConfig, "train": TrainConfig}


def _actions(command: str) -> dict[str, object]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {a.dest: a for a in sub.choices[command]._actions}


@pytest.mark.parametrize("command", sorted(CONFIGS))
def test_each_setting_is_an_option_with_the_fields_default_type_and_choices(command):
    config, actions = CONFIGS[command], _actions(command)
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
            assert action.type in (hints[field.name], *members), field.name


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
