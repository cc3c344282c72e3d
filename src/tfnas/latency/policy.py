"""How a latency is timed: warm-up, the number of calls per window, the windows' statistic,
the passes over a table. Torch-free, so that the command line can build its timing options
from it (``tfnas lut build --statistic --back-to-back``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import TIMING_STATISTICS, setting

# the timing loop's own constants: what the benches settled (bench/lut_build_estimate.py),
# not a user's choice
_TUNED = {"cli": False}


@dataclass(frozen=True)
class TimingPolicy:
    """How long to warm up and how many calls to time."""

    warmup_calls: int = setting(5, "calls before any is timed", **_TUNED)
    warmup_seconds: float = setting(0.01, "seconds of calls before any is timed", **_TUNED)
    min_calls: int = setting(15, "calls timed per window, at least", **_TUNED)
    max_calls: int = setting(200, "calls timed per window, at most", **_TUNED)
    min_seconds: float = setting(0.03, "seconds a window lasts, at least", **_TUNED)
    statistic: str = setting(
        "p25",
        "statistic of the per-call times (p25: the lower quartile)",
        choices=TIMING_STATISTICS,
    )
    rounds: int = setting(3, "passes over the whole plan; each entry keeps its best", **_TUNED)
    # calls timed back to back per sample, the sample their mean. On CUDA they are enqueued
    # between one pair of events, so launch latency overlaps with the work as inside a
    # network (1: one call per pair, each after a synchronisation); on the CPU, where every
    # call is synchronous, it only amortises the clock's own cost
    back_to_back: int = setting(
        1,
        "time N calls back to back per sample (CUDA: between one pair of events, so that launch "
        "latency overlaps as inside a network; 1: each call alone)",
        metavar="N",
    )


__all__ = ["TimingPolicy"]
