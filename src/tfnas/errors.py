"""The one exception type that means "the user gave us something wrong", and its kinds.

The CLI turns a :class:`TfnasError` into a single sentence on stderr and exit status 2;
anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations


class TfnasError(Exception):
    """A user error: bad file, bad flag, missing data. Its message is one full sentence."""


class SpaceError(TfnasError):
    """A search-space file that cannot be used."""


class ArchitectureError(TfnasError):
    """An architecture file that does not fit its search space."""


class DataError(TfnasError):
    """A dataset that cannot be found or read."""


class SettingError(TfnasError):
    """A setting (a config field or a function's argument) with a value no run can use.

    The message names the setting as Python spells it (``epochs must be at least 1, got
    0.``); the command line names it by its flag instead (:meth:`naming`)."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting} {problem}")

    def __reduce__(self):  # pickled as it was made (a DataLoader worker's error travels so)
        return type(self), (self.setting, self.problem)

    def naming(self, name: str) -> str:
        """The message with the setting called ``name`` (a flag)."""
        return f"{name} {self.problem}"

    def within(self, prefix: str) -> SettingError:
        """The same error for the setting as a part of ``prefix`` (``search.epochs``)."""
        return SettingError(f"{prefix}.{self.setting}", self.problem)
