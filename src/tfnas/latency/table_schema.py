"""The latency table's file format, declared once (pydantic): what a table file may hold,
with the types, ranges and keys it must have. :func:`validate_table_file` is the only check
of a file's shape; the loader builds the table from what passed it, and nothing after it
re-checks what the schema guarantees. What depends on a space (an entry per block, knots
that reach the widths' bounds, a positive latency within them) is checked against the
space, in :meth:`~tfnas.latency.table.LatencyTable.check_entries`.

Entries may hold a non-positive latency outside a block's width bounds (the paper's
published tables do, where a fit ran below zero); nowhere may they hold a number that is
not finite or that no measurement gives (a million ms and more).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from ..schema import OpenRecord, Record, SpaceRecord, validate

LUT_FORMAT = "tfnas-latency-table"
LUT_VERSION = 1
TOO_LONG_MS = 1e6  # no block or network of a table takes a million ms (17 minutes) a call

Ms = Annotated[float, Field(allow_inf_nan=False, gt=-TOO_LONG_MS, lt=TOO_LONG_MS)]
PositiveMs = Annotated[float, Field(allow_inf_nan=False, gt=0, lt=TOO_LONG_MS)]
Knots = Annotated[dict[str, Ms], Field(min_length=1)]  # width (a string, in JSON) -> ms
_WIDTH = re.compile(r"[1-9][0-9]*")


class CalibrationRecord(Record):
    scale: Annotated[float, Field(allow_inf_nan=False, gt=0)]
    offset_ms: Ms
    archs: Annotated[int, Field(ge=0)] = 0
    per_block_ms: Ms = 0.0


class PolicyRecord(OpenRecord):
    rounds: Annotated[int, Field(ge=1)] = 1
    statistic: str | None = None


class ReferenceRecord(OpenRecord):
    ms: PositiveMs
    arch: dict[str, Any]
    measured_at: str | None = None


class CallOverheadRecord(OpenRecord):
    ms: Annotated[float, Field(allow_inf_nan=False, ge=0, lt=TOO_LONG_MS)]
    model: Literal["none", "call", "intercepts"] = "none"


class MetaRecord(OpenRecord):
    policy: PolicyRecord | None = None
    reference: ReferenceRecord | None = None
    call_overhead: CallOverheadRecord | None = None
    width_step: Annotated[int, Field(ge=1)] | None = None
    classes: Annotated[int, Field(ge=1)] | None = None
    in_channels: Annotated[int, Field(ge=1)] | None = None


class TableFile(Record):
    format: Literal["tfnas-latency-table"]
    version: Literal[1]
    space: SpaceRecord
    device: dict[str, Any] = Field(default_factory=dict)
    statistic: str = "?"
    unit: Literal["ms"] = "ms"
    calibration: CalibrationRecord | None = None
    meta: MetaRecord | None = None
    base: PositiveMs
    entries: Annotated[dict[str, Knots], Field(min_length=1)]

    @field_validator("entries")
    @classmethod
    def _widths_are_plain_integers(cls, entries: dict[str, dict[str, float]]):
        for key, knots in entries.items():
            for width in knots:
                if not _WIDTH.fullmatch(width):
                    raise ValueError(
                        f"entry {key} has the width {width!r}; widths are written as plain "
                        "positive integers ('32', not '032' or '32.0'), each once"
                    )
        return entries


def validate_table_file(data: Any, source: str, error: type[Exception]) -> TableFile:
    """``data`` (a table file's JSON) checked against :class:`TableFile`; the first problem
    becomes one sentence of ``error`` naming ``source`` and the field."""
    if not isinstance(data, dict):
        raise error(f"{source}: must hold a JSON object.")
    if data.get("format") != LUT_FORMAT:
        raise error(
            f"{source}: field 'format' must be '{LUT_FORMAT}', got {data.get('format')!r} "
            "(import the paper's tables with 'tfnas lut import-tfnas')."
        )
    return validate(TableFile, data, source, error)


__all__ = ["LUT_FORMAT", "LUT_VERSION", "TableFile", "validate_table_file"]
