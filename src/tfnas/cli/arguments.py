"""The parser's parts shared by every command: its error style, the options made from
config fields, argument types, and how a setting's error is named by its flag."""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Sequence
from typing import Any

from ..latency.policy import TimingPolicy
from ..options import (
    MODEL_FORMATS,
    option_name,
)


class HelpFormatter(argparse.HelpFormatter):
    """Every option's default in its help line, unless it has none or the text says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and default not in (None, False, argparse.SUPPRESS)
            and "default" not in text
        ):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse, with a bad command line reported the way every other user error is: one
    sentence on stderr and exit status 2, pointing to the command's --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("tfnas").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"tfnas: error: {where}{message} (see {self.prog} --help).\n")


def given_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations of the options typed on the command line (unique prefixes
    included), as opposed to those left at their defaults."""
    given = set()
    for token in argv:
        if not token.startswith("--") or token == "--":
            continue
        name = token.split("=", 1)[0]
        actions = parser._option_string_actions
        if name in actions:
            given.add(actions[name].dest)
            continue
        matches = {a.dest for s, a in actions.items() if s.startswith(name)}
        if len(matches) == 1:
            given |= matches
    return given


def leaf_parser(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The sub-command's own parser (tfnas lut build -> the parser of 'build')."""
    while parser._subparsers is not None:
        action = next(
            a
            for a in parser._subparsers._group_actions
            if isinstance(a, argparse._SubParsersAction)
        )
        parser = action.choices[getattr(args, action.dest)]
    return parser


# help of options that mean the same in every command (an option's own help wins)
_COMMON_HELP = {
    "space": "search space: a built-in name (tfnas spaces) or a YAML file",
    "data": "data source: fashion-mnist | mnist | cifar10 | NAME:DIR | image folder | list file",
    "data_root": "image root for a list-file data source (default: the list file's folder)",
    "seed": "random seed",
    "in_channels": "input channels of the network (default: the space's)",
    "device": "where to run: auto (a CUDA GPU when there is one), cpu or cuda",
    "workers": "data-loading worker processes (for image folders and list files)",
    "threads": "CPU threads (default: torch's)",
    "classes": "number of classes (default: the table's, else the space's)",
    "weights": "trained weights (best.pt of a training run)",
    "json": "machine-readable output (JSON on stdout)",
}


def fill_common_help(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                fill_common_help(sub)
        elif action.option_strings and action.help is None:
            action.help = _COMMON_HELP.get(action.dest)


PIPELINE_WIDE = (
    "space",
    "lut",
    "data",
    "data_root",
    "seed",
    "device",
    "precision",
    "deterministic",
)


def add_settings(
    p: argparse.ArgumentParser,
    config: type,
    *,
    prefix: str = "",
    skip: Sequence[str] = (),
    only: Sequence[str] | None = None,
    given_only: bool = False,
) -> None:
    """An option for every setting of the ``config`` dataclass, made from its field: name,
    type, default, choices and help are declared there once (:func:`tfnas.options.setting`).
    ``prefix`` (``search-``): the pipeline's options for a step, stored as ``search.NAME``;
    ``given_only``: no default, so that only what is typed is passed on (a step's saved run
    keeps its own settings)."""
    hints = typing.get_type_hints(config)
    for field in dataclasses.fields(config):
        if not field.metadata.get("cli", True) or field.name in skip:
            continue
        if only is not None and field.name not in only:
            continue
        kwargs: dict[str, Any] = {"dest": _dest(prefix, field.name)}
        kind = hints[field.name]
        members = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) is tuple:
            kwargs.update(nargs=len(members), type=members[0])
        elif kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = members[0] if members else kind
        if field.metadata.get("choices") is not None:
            kwargs["choices"] = field.metadata["choices"]
        elif kind is not bool:
            kwargs["metavar"] = field.metadata.get("metavar") or _METAVARS.get(kwargs["type"], "X")
        kwargs["default"] = None if given_only else field.default
        text = field.metadata.get("help", "").replace("%", "%%")
        if field.default is not None and kind is not bool and "(default" not in text:
            default = " ".join(map(str, field.default)) if kwargs.get("nargs") else field.default
            text += f" (default {default})"
        kwargs["help"] = text
        p.add_argument(f"--{prefix}{option_name(field)}", **kwargs)


_METAVARS = {int: "N", float: "X", str: "TEXT"}


def _dest(prefix: str, name: str) -> str:
    return f"{prefix.removesuffix('-')}.{name}" if prefix else name


def settings_given(
    args: argparse.Namespace, config: type, prefix: str = "", only: Sequence[str] | None = None
) -> dict[str, Any]:
    """The ``config`` settings the command line holds (made by :func:`add_settings`; with
    a ``prefix``, only those typed)."""
    out = {}
    for field in dataclasses.fields(config):
        dest = _dest(prefix, field.name)
        if not field.metadata.get("cli", True) or not hasattr(args, dest):
            continue
        if only is not None and field.name not in only:
            continue
        value = getattr(args, dest)
        if value is None and (prefix or only is not None):
            continue
        out[field.name] = tuple(value) if isinstance(value, list) else value
    return out


def whole_number(low: int):
    """An argparse type: a whole number of at least ``low`` (argparse names the flag)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.numeric = True  # type: ignore[attr-defined]  # for bench/input_sweep.py
    return parse


def number_at_least(low: float, open_low: bool = False):
    """An argparse type: a finite number of at least (or, ``open_low``, above) ``low``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < low or (open_low and value == low):
            relation = "above" if open_low else "at least"
            raise argparse.ArgumentTypeError(f"must be {relation} {low:g}, got {text}")
        return value

    parse.numeric = True  # type: ignore[attr-defined]
    return parse


def add_runner_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runner",
        metavar="'CMD ... {model}'",
        help="time models with this command (--device external; docs/latency-table.md): "
        "{model} is replaced by a model file, or {models} by several; it prints "
        '{"ms": ...} per model',
    )
    p.add_argument(
        "--runner-timeout",
        type=number_at_least(0, open_low=True),
        default=120.0,
        metavar="S",
        help="seconds a runner may take per model",
    )


def add_model_format_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        default="onnx",
        choices=tuple(MODEL_FORMATS),
        help="model files for --device external and lut plan",
    )


def add_timing_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda", "ort-cpu", "external"),
        help="what times the networks: torch on the CPU or a CUDA GPU, ONNX Runtime, or an "
        "external runner (--runner)",
    )
    add_runner_options(p)
    p.add_argument("--threads", type=whole_number(1), default=1, help="CPU threads (default 1)")
    p.add_argument("--batch-size", type=whole_number(1), default=1, help="images per timed call")
    add_settings(p, TimingPolicy)


def flag_of(flags: dict[str, str], setting: str) -> str:
    """The flag that gives ``setting`` (``search.epochs``: the pipeline's
    ``--search-epochs``; a step's setting that the pipeline sets for both steps: its own
    flag), or the flag its name would have where no option of this command gives it."""
    name = setting.rpartition(".")[2]
    for dest in (setting, name):
        if dest in flags:
            return flags[dest]
    return "--" + name.replace("_", "-")


def one_sentence(text: str) -> str:
    """An error's sentence; one raised in a DataLoader worker process arrives wrapped in
    the worker's traceback, whose last line holds it."""
    text = text.strip()
    if "Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text
