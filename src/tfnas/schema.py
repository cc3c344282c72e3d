"""What tfnas's declared file formats share (pydantic): records that refuse unknown keys and
coerce nothing, and the one sentence a validation error becomes.

A format is a :class:`Record` model beside the code that reads the file (the latency
table's in :mod:`tfnas.latency.table_schema`, the architecture file's in
:mod:`tfnas.arch_schema`); :func:`validate` is the only check of a file's shape, and what
passed it is not checked again.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

M = TypeVar("M", bound=BaseModel)


class Record(BaseModel):
    """A record whose fields are all declared: an unknown key is refused, no type coerced
    (a number written as a string is an error; an int where a float goes is fine)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class OpenRecord(BaseModel):
    """A record of which some fields are declared and checked; others are kept as written
    (what a newer tfnas or a user's runner added)."""

    model_config = ConfigDict(extra="allow", strict=True)


Count = Annotated[int, Field(ge=1)]  # a number of things, at least one


class SpaceRecord(Record):
    """The space a file belongs to, as every file names it: its name and content hash."""

    name: str
    hash: str


def validate(
    model: type[M],
    data: Any,
    source: str,
    error: Callable[[str], Exception],
    place: Callable[[str], str] = lambda where: "",
) -> M:
    """``data`` checked against ``model``; the first problem becomes one sentence of
    ``error``, naming ``source`` and the field (``place(field)`` may add where that is, in
    words)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(f"{source}: {describe_problem(exc, model, place)}.") from None


def describe_problem(
    exc: ValidationError, model: type[BaseModel], place: Callable[[str], str] = lambda w: ""
) -> str:
    """A validation error's first problem as a clause: the field, what is wrong, the value."""
    problem = exc.errors(include_url=False)[0]
    loc = problem["loc"]
    if problem["type"] == "extra_forbidden":
        parent = _path(loc[:-1])
        known = ", ".join(_fields_at(model, loc[:-1]))
        return (
            f"field '{parent or '(top level)'}'{place(parent)} has the unknown key "
            f"{loc[-1]!r} (known: {known})"
        )
    where = _path(loc)
    message = problem["msg"]
    if problem["type"] == "value_error":
        return f"field '{where}'{place(where)}: {message.removeprefix('Value error, ')}"
    value = repr(problem["input"])
    shown = "" if problem["type"] == "missing" else f", got {value[:60]}{'...' * (len(value) > 60)}"
    return f"field '{where}'{place(where)}: {message[:1].lower()}{message[1:]}{shown}"


def _path(loc: tuple[Any, ...]) -> str:
    """A location as the files spell it: ``stages[0].blocks[1].width``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The declared fields of the record at ``loc`` inside ``model``."""
    kind: Any = model
    for part in loc:
        kind = _inner(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            kind = kind.model_fields[part].annotation
        else:  # a list or a dict: its items' type
            args = typing.get_args(kind)
            kind = args[-1] if args else Any
    kind = _inner(kind)
    return list(kind.model_fields) if isinstance(kind, type) else []


def _inner(kind: Any) -> Any:
    """``kind`` without Annotated[...] and Optional[...]."""
    while True:
        origin = typing.get_origin(kind)
        if origin is typing.Annotated:
            kind = typing.get_args(kind)[0]
        elif origin in (typing.Union, types.UnionType):
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        else:
            return kind


BLOCK_AT = re.compile(r"stages\[(\d+)\](?:\.blocks\[(\d+)\])?")


def block_place(where: str) -> str:
    """Where a field of a ``stages[i].blocks[j]`` list is, in the words every message uses
    (positions from 1): `` (stage 1 block 2)``."""
    found = BLOCK_AT.match(where)
    if not found:
        return ""
    stage, block = found.groups()
    return f" (stage {int(stage) + 1}" + (f" block {int(block) + 1})" if block else ")")


def entry_place(where: str) -> str:
    """Where a field of an ``entries[i]`` list is, counted from 1: `` (entry 2)``."""
    found = re.match(r"entries\[(\d+)\]", where)
    return f" (entry {int(found.group(1)) + 1})" if found else ""


__all__ = [
    "entry_place",
    "Count",
    "OpenRecord",
    "Record",
    "SpaceRecord",
    "block_place",
    "describe_problem",
    "validate",
]
