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
from ..latency.settings import MeterSettings, RunnerSettings
from ..options import option_name


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
    actions, given = parser._option_string_actions, set()
    for name in (t.split("=", 1)[0] for t in argv if t.startswith("--") and t != "--"):
        exact = {actions[name].dest} if name in actions else None
        matches = exact or {a.dest for s, a in actions.items() if s.startswith(name)}
        given |= matches if len(matches) == 1 else set()
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
    "seed": "random seed",
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
        if "bound" in field.metadata:
            kwargs["type"] = _bounded(kwargs["type"], *field.metadata["bound"])
        kwargs["default"] = None if given_only else field.default
        text = field.metadata.get("help", "").replace("%", "%%")
        if field.default is not None and kind is not bool and "(default" not in text:
            default = " ".join(map(str, field.default)) if kwargs.get("nargs") else field.default
            text += f" (default {default})"
        kwargs["help"] = text
        p.add_argument(f"--{prefix}{option_name(field)}", **kwargs)


_METAVARS = {int: "N", float: "X", str: "TEXT"}


def _bounded(kind: type, bound: float, open_low: bool):
    if kind is int and not open_low:
        return whole_number(int(bound))
    return number_at_least(bound, open_low)


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

    parse.kind = int  # type: ignore[attr-defined]  # what it parses (bench/input_sweep.py)
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

    parse.kind = float  # type: ignore[attr-defined]
    return parse


def add_timing_options(p: argparse.ArgumentParser) -> None:
    """What times the networks, and how."""
    for settings in (MeterSettings, RunnerSettings, TimingPolicy):
        add_settings(p, settings)


def add_target_options(p: argparse.ArgumentParser, *others: tuple[str, str, str]):
    """The latency target, in ms or as a fraction of the table's feasible range, and
    ``others`` (flag, metavar, help) that take its place; one of them at most."""
    target = p.add_mutually_exclusive_group()
    target.add_argument("--target-ms", type=float, metavar="T", help="latency target in ms")
    target.add_argument(
        "--target-fraction",
        type=float,
        metavar="F",
        help="or: the target at this fraction of the feasible range (0: fastest)",
    )
    for flag, metavar, text in others:
        target.add_argument(flag, metavar=metavar, help=text)


def add_threads_option(p: argparse.ArgumentParser, work: str) -> None:
    p.add_argument("--threads", type=whole_number(1), help=f"CPU threads for {work}")


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
