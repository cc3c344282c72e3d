"""Checks of user-given numbers, each failing with one sentence that names the flag.

The configs (search, training, pipeline) and the CLI's own options use these, so that a bad
value gets the same wording wherever it is given, and NaN or infinity is called what it is
instead of being reported as out of range.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import TfnasError


def finite(value: Any, flag: str) -> float:
    """``value`` as a float, refusing NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TfnasError(f"{flag} must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise TfnasError(f"{flag} must be a finite number, got {value}.")
    return float(value)


def positive(value: Any, flag: str) -> float:
    if finite(value, flag) <= 0:
        raise TfnasError(f"{flag} must be positive, got {value}.")
    return float(value)


def non_negative(value: Any, flag: str) -> float:
    if finite(value, flag) < 0:
        raise TfnasError(f"{flag} must not be negative, got {value}.")
    return float(value)


def within(
    value: Any,
    flag: str,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` in the interval from ``low`` to ``high`` (each end closed unless open)."""
    v = finite(value, flag)
    if (v < low or (low_open and v == low)) or (v > high or (high_open and v == high)):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise TfnasError(f"{flag} must lie in {interval}, got {value}.")
    return v


def at_least(value: Any, flag: str, low: int) -> int:
    """An integer of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TfnasError(f"{flag} must be a whole number, got {value!r}.")
    if value < low:
        raise TfnasError(f"{flag} must be at least {low}, got {value}.")
    return value


def optional(check, value: Any, flag: str, *args: Any, **kwargs: Any) -> Any:
    """``check`` unless ``value`` is None (a setting left at its automatic default)."""
    return None if value is None else check(value, flag, *args, **kwargs)
