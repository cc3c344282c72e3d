"""The table's reference network: how fast this machine runs one fixed network now, against
when the table was built.

A shared machine's speed drifts (on this project's 2-core machine the same table agreed with
whole networks to 1-2% when built and to 5% two hours later). Every table built by tfnas
stores the latency of a reference network measured with its blocks (one window in every
pass over them, the best kept, as for a block); ``tfnas lut check`` times it again among its
networks (rounds interleaved), ``tfnas profile`` and the pipeline in alternation with the
network they profile; each says in one line how much faster or slower the machine has
become and reports measured latencies both as measured and corrected by that ratio.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..arch import Architecture, architecture_from_dict, uniform_architecture
from ..errors import TfnasError
from ..space import SearchSpace
from .table import LatencyTable

REFERENCE_KEY = "reference"


def reference_architecture(space: SearchSpace) -> Architecture:
    """The reference network of ``space``: its first candidate op in every block, full depth,
    nominal widths. Fixed by the space alone, so a rebuilt table measures the same network."""
    return uniform_architecture(space, space.candidates(0, 0)[0].op)


def reference_record(
    arch: Architecture, ms: float, measured_at: str | None | bool = True
) -> dict[str, Any]:
    """What a table stores under ``meta["reference"]`` (``measured_at``: True for now, a
    time, or None when unknown)."""
    if measured_at is True:
        measured_at = datetime.now(UTC).isoformat(timespec="seconds")
    return {"arch": arch.to_dict(), "ms": ms, "measured_at": measured_at or None}


def table_reference(table: LatencyTable, space: SearchSpace) -> tuple[Architecture, float] | None:
    """The table's reference network and its latency then, or None for a table built before
    tfnas recorded one (or imported from elsewhere). A malformed record is refused."""
    record = table.meta.get(REFERENCE_KEY)
    if record is None:
        return None
    ms = record.get("ms") if isinstance(record, dict) else None
    if not (isinstance(ms, int | float) and math.isfinite(ms) and ms > 0):
        raise TfnasError(
            "the latency table's reference record is malformed (its 'ms' must be a positive "
            "number); rebuild the table."
        )
    try:
        arch = architecture_from_dict(record["arch"])
    except (KeyError, TypeError, ValueError, TfnasError) as exc:
        raise TfnasError(
            f"the latency table's reference network is malformed ({exc}); rebuild the table."
        ) from None
    if (arch.space_name, arch.space_hash) != (space.name, space.hash):
        raise TfnasError(
            "the latency table's reference network belongs to another space; rebuild the table."
        )
    return arch, float(ms)


@dataclass(frozen=True)
class Drift:
    """The reference network's latency when the table was built and now."""

    then_ms: float
    now_ms: float

    @property
    def ratio(self) -> float:
        return self.now_ms / self.then_ms

    @property
    def pct(self) -> float:
        """How much slower (positive) or faster (negative) the machine runs now, in %."""
        return (self.ratio - 1) * 100

    def corrected(self, measured_ms: float) -> float:
        """A latency measured now, as the machine would have measured it when the table was
        built."""
        return measured_ms / self.ratio

    def sentence(self) -> str:
        where = f"({self.now_ms:.3f} ms against {self.then_ms:.3f} ms)"
        if abs(self.pct) < 0.5:
            return (
                "this machine runs the reference network as fast as when the table was built "
                + where
            )
        way = "slower" if self.pct > 0 else "faster"
        return (
            f"this machine now runs the reference network {abs(self.pct):.1f}% {way} than when "
            f"the table was built {where}"
        )

    def to_dict(self) -> dict[str, float]:
        return {"reference_then_ms": self.then_ms, "reference_now_ms": self.now_ms, "pct": self.pct}


def say_no_reference(source: str) -> None:
    print(
        f"note: {source} records no reference network (built by an older tfnas, or "
        "imported): drift since it was built cannot be checked; rebuild it to record one.",
        file=sys.stderr,
    )
