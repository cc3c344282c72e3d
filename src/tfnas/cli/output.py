"""How commands print: JSON (aligned tables and counts are :mod:`tfnas.text`'s)."""

from __future__ import annotations

import json
import sys
from typing import Any

from ..text import millions, text_table

__all__ = ["millions", "print_json", "text_table"]


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


def show(as_json: bool, data: Any, text: str) -> int:
    """A command's result: as JSON on stdout (``--json``), or as text for a person."""
    print_json(data) if as_json else print(text)
    return 0


def progress_bar(total: int, desc: str, unit: str):
    """A tqdm bar on stderr, shown only where a person watches it."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not sys.stderr.isatty())
