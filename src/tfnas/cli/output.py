"""How commands print: JSON (aligned tables and counts are :mod:`tfnas.text`'s)."""

from __future__ import annotations

import json
from typing import Any

from ..text import millions, text_table

__all__ = ["millions", "print_json", "text_table"]


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))
