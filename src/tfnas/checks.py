"""Checks of user-given numbers, each failing with one sentence that names the setting.

The configs (search, training, pipeline) use these, so that a bad value gets the same
wording wherever it is given, and NaN or infinity is called what it is instead of being
reported as out of range. The error is a :class:`~tfnas.errors.SettingError`: it names the
config field, and the command line names its flag.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import SettingError


def finite(value: Any, name: str) -> float:
    """``value`` as a float, refusing NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingError(name, f"must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise SettingError(name, f"must be a finite number, got {value}.")
    return float(value)


def positive(value: Any, name: str) -> float:
    if finite(value, name) <= 0:
        raise SettingError(name, f"must be positive, got {value}.")
    return float(value)


def non_negative(value: Any, name: str) -> float:
    if finite(value, name) < 0:
        raise SettingError(name, f"must not be negative, got {value}.")
    return float(value)


def within(
    value: Any,
    name: str,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` in the interval from ``low`` to ``high`` (each end closed unless open)."""
    v = finite(value, name)
    if (v < low or (low_open and v == low)) or (v > high or (high_open and v == high)):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise SettingError(name, f"must lie in {interval}, got {value}.")
    return v


def at_least(value: Any, name: str, low: int) -> int:
    """An integer of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingError(name, f"must be a whole number, got {value!r}.")
    if value < low:
        raise SettingError(name, f"must be at least {low}, got {value}.")
    return value


def optional(check, value: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """``check`` unless ``value`` is None (a setting left at its automatic default)."""
    return None if value is None else check(value, name, *args, **kwargs)
