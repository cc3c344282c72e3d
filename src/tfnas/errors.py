"""The one exception type that means "the user gave us something wrong", and its kinds.

The CLI turns a :class:`TfnasError` into a single sentence on stderr and exit status 2;
anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_SETTING = re.compile(r"\[\[([a-z_][a-z0-9_.]*)\]\]")


def named(setting: str) -> str:
    """A setting's name inside an error message (``f"use a smaller {named('batch_size')}"``):
    shown as the Python setting (``batch_size``) by ``str()``, as its flag by the command
    line (``--batch-size``, or ``--search-batch-size`` in ``tfnas pipeline``)."""
    return f"[[{setting}]]"


def _within(text: str, prefix: str) -> str:
    """``text`` with every named setting made a part of ``prefix``."""
    return _SETTING.sub(lambda m: named(f"{prefix}.{m.group(1)}"), text)


class TfnasError(Exception):
    """A user error: bad file, bad setting, missing data. Its message is one full sentence;
    the settings it names are marked with :func:`named`."""

    exit_status = 2  # what the command line exits with

    def __str__(self) -> str:
        return self.render(lambda setting: setting)

    def render(self, name_of: Callable[[str], str]) -> str:
        """The message with every named setting called ``name_of(setting)``."""
        return _SETTING.sub(lambda m: name_of(m.group(1)), super().__str__())

    def within(self, prefix: str) -> TfnasError:
        """The same error for settings that are a part of ``prefix`` (``search.epochs``)."""
        text = _within(super().__str__(), prefix)
        try:
            return type(self)(text)  # of its own kind where it is made of its message alone
        except TypeError:
            return TfnasError(text)


class SpaceError(TfnasError):
    """A search-space file that cannot be used."""


class ArchitectureError(TfnasError):
    """An architecture file that does not fit its search space."""


class DataError(TfnasError):
    """A dataset that cannot be found or read."""


class TargetMissed(TfnasError):
    """A search that ran to its end but whose network misses the latency target by more than
    its tolerance: its architecture is written, and the command line exits with status 3."""

    exit_status = 3


def user_error_of(exc: BaseException) -> TfnasError | None:
    """The user error that an exception raised below tfnas stands for, or None (a bug):
    an allocation the sizes asked for cannot get (torch's, or Python's ``MemoryError``)."""
    text = str(exc)
    if isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text:
        asked = re.search(r"allocate (\d+) bytes", text)
        amount = f"{int(asked.group(1)) / 2**30:,.1f} GiB in one piece" if asked else "memory"
        return TfnasError(
            "the sizes asked for (classes, batch size, widths or input size) need more memory "
            f"than this machine can give ({amount}); ask for smaller ones."
        )
    return None


class SettingError(TfnasError):
    """A setting (a config field or a function's argument) with a value no run can use.

    The message names the setting as Python spells it (``epochs must be at least 1, got
    0.``); the command line names it by its flag instead (:meth:`TfnasError.render`)."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{named(setting)} {problem}")

    def __reduce__(self):  # pickled as it was made (a DataLoader worker's error travels so)
        return type(self), (self.setting, self.problem)

    def within(self, prefix: str) -> SettingError:
        return SettingError(f"{prefix}.{self.setting}", _within(self.problem, prefix))
