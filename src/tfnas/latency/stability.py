"""Whether the machine was quiet while a table was measured. A table built beside other work
is silently wrong (on two cores with a load average of 4, a demo table came out with a
calibration scale of 2.3 and moved the demo's target from 3 ms to 14 ms): the build records
how its reference network varied across passes and the load average against the cores it
had, and says so in one line where either shows a busy machine."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

# the reference network's spread across the passes of a build beyond which a quiet machine
# is unlikely (quiet 2-core builds here: 1-4%)
BUSY_SPREAD_PCT = 10.0


def load_average() -> float | None:
    """The machine's one-minute load average (None where the system has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


@dataclass(frozen=True)
class Stability:
    reference_pass_ms: list[float]  # the reference network's figure in every pass
    load_average: list[float | None]  # at the build's start and end
    cpus: int
    threads: int

    @property
    def spread_pct(self) -> float:
        passes = self.reference_pass_ms
        return (max(passes) - min(passes)) / min(passes) * 100 if len(passes) > 1 else 0.0

    @property
    def busy(self) -> str | None:
        """What shows a busy machine, in words (None: nothing)."""
        reasons = []
        if self.spread_pct > BUSY_SPREAD_PCT:
            reasons.append(f"the reference network varied {self.spread_pct:.0f}% across the passes")
        loads = [x for x in self.load_average if x is not None]
        # the build's own threads are part of the load: other work on more than half the
        # cores shares caches, memory bandwidth and the cores' clock with it
        if loads and max(loads) - self.threads > self.cpus / 2:
            reasons.append(
                f"the load average was {max(loads):.1f} on {self.cpus} cores, "
                f"{self.threads} of them the build's"
            )
        return " and ".join(reasons) or None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"spread_pct": self.spread_pct, "busy": self.busy}


def recorded_busy(meta: dict[str, Any]) -> str | None:
    """What a table's build recorded of a busy machine (None: quiet, or not recorded)."""
    record = meta.get("stability")
    return record.get("busy") if isinstance(record, dict) else None


def say_busy(source: str, stability: Stability) -> None:
    """One line on stderr where ``stability`` shows a busy machine."""
    if stability.busy:
        print(
            f"warning: {source}: the machine was busy while it was measured ({stability.busy}); "
            "its latencies may be off by as much. Rebuild it with nothing else running.",
            file=sys.stderr,
        )


__all__ = ["BUSY_SPREAD_PCT", "Stability", "load_average", "recorded_busy", "say_busy"]
