"""Build a latency table by measuring every block of a space on the device at hand.

The whole plan (:mod:`.jobs`) is measured in several passes (the timing policy's rounds)
and each entry keeps its fastest pass, so a slow spell of the machine touches one pass of a
few entries rather than deciding them. Each measurement goes to the build's journal
(:mod:`.journal`) as soon as it is taken, so a killed build resumes (``resume=True``) losing
at most the measurement in flight.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import SettingError
from ..options import DEFAULT_SCRUB_KIB
from ..space import SearchSpace
from .jobs import REFERENCE_JOB, PlanModules, plan_jobs, table_from_measurements
from .journal import Journal, journal_path, measuring_progress
from .measure import LatencyMeter
from .settings import PlanSettings
from .stability import Stability, load_average, say_busy
from .table import LatencyTable

JOURNAL_FORMAT = "tfnas-latency-journal"
# what must agree for a journal's measurements to be continued, and the value a journal from
# before a setting existed was made with
_SETTINGS = ("format", "space", "policy", "width_step", "classes", "in_channels", "scrub_kib")
_OLDER = {"scrub_kib": 0}
_DEVICE = ("device", "cpu", "gpu", "threads", "batch_size", "torch")


def build_table(
    space: SearchSpace,
    meter: LatencyMeter,
    out: str | Path,
    *,
    width_step: int = PlanSettings.width_step,
    classes: int | None = None,
    in_channels: int | None = None,
    resume: bool = False,
    progress: bool | None = None,
    limit: int | None = None,
    scrub_kib: int = DEFAULT_SCRUB_KIB,
) -> LatencyTable | None:
    """Measure ``space`` with ``meter`` and write the table to ``out``.

    ``limit`` stops after that many new measurements (journal kept, returns ``None``): used to
    time a subset and estimate a full build. ``scrub_kib`` (CPU) evicts the nearest caches
    before every timed call of a block (:meth:`LatencyMeter.window`); the reference network
    (latency/drift.py), a whole network, is timed as networks run.
    """
    out = Path(out)
    if scrub_kib < 0:
        raise SettingError("scrub_kib", f"must be 0 or more, got {scrub_kib}.")
    classes = classes or space.classes
    in_channels = in_channels or space.input_channels
    jobs = plan_jobs(space, width_step)
    header = {
        "format": JOURNAL_FORMAT,
        "space": {"name": space.name, "hash": space.hash},
        "device": meter.fingerprint(),
        "policy": asdict(meter.policy),
        "width_step": width_step,
        "classes": classes,
        "in_channels": in_channels,
        "scrub_kib": scrub_kib,
    }
    journal = Journal(journal_path(out), header, resume, lambda saved: _mismatch(saved, header))
    load_at_start = load_average()
    rounds = meter.policy.rounds
    todo = [(r, job) for r in range(rounds) for job in jobs if (job.name, r) not in journal.done]
    parts = PlanModules(space, classes, in_channels)
    measured = 0
    total = rounds * len(jobs)
    ticks = measuring_progress(
        todo, total, total - len(todo), progress, lambda item: f"pass {item[0] + 1}: {item[1].name}"
    )
    with journal:
        for r, job in ticks:
            if limit is not None and measured >= limit:
                break
            module, shape = parts.module(job)
            # a whole network (the reference) is timed as networks run, caches as it leaves them
            scrub = 0 if job.key == REFERENCE_JOB else scrub_kib
            journal.record(job.name, r, meter.window_statistic(meter.runner(module, shape), scrub))
            measured += 1
    done = journal.done
    if len(done) < total:
        return None
    best = {job.name: min(done[job.name, r] for r in range(rounds)) for job in jobs}
    stability = Stability(
        [done[REFERENCE_JOB, r] for r in range(rounds)],
        [load_at_start, load_average()],
        os.cpu_count() or 1,
        meter.threads,
    )
    table = table_from_measurements(
        space,
        jobs,
        best,
        device=header["device"],
        statistic=meter.policy.statistic,
        meta={
            "classes": classes,
            "in_channels": in_channels,
            "width_step": width_step,
            "scrub_kib": scrub_kib,
            "measurements": len(jobs),
            "rounds": rounds,
            "build_seconds": round(journal.elapsed, 1),
            "policy": header["policy"],
            "stability": stability.to_dict(),
        },
    )
    table.save(out)
    say_busy(str(out), stability)
    journal.finish()
    return table


def _mismatch(saved: dict[str, Any], header: dict[str, Any]) -> str | None:
    """Why the journal ``saved`` cannot be continued by the build of ``header``."""
    for setting in _SETTINGS:
        if saved.get(setting, _OLDER.get(setting)) != header[setting]:
            return (
                f"was started with other settings ({setting} differs); delete it or rerun with "
                "the same settings."
            )
    device = saved.get("device") if isinstance(saved.get("device"), dict) else {}
    for field in _DEVICE:
        if device.get(field) != header["device"].get(field):
            return (
                f"was measured with {field} {device.get(field)!r}, not "
                f"{header['device'].get(field)!r}; its figures cannot be mixed with new ones."
            )
    return None


__all__ = ["build_table"]
