"""Build a latency table by measuring every block of a space on the device at hand.

Every distinct block identity is measured at sampled mid widths (every ``width_step``
channels plus the bounds of each op that uses it); lookups interpolate between them. The
whole plan is measured in several passes (the timing policy's rounds) and each entry keeps
its fastest pass, so a slow spell of the machine touches one pass of a few entries rather
than deciding them. Each measurement is appended to a journal beside the output file as soon
as it is taken, so a killed build resumes (``resume=True``) losing at most the measurement in
flight.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..arch import Architecture
from ..block import BlockSpec
from ..nn.blocks import MBConv
from ..nn.network import Head, Network, build_stem
from ..space import SearchSpace
from .measure import LatencyMeter
from .table import LatencyTable, LatencyTableError

log = logging.getLogger(__name__)
JOURNAL_FORMAT = "tfnas-latency-journal"


@dataclass(frozen=True)
class Job:
    """One measurement: a fixed part (``key`` 'stem' or 'head') or a block at one width."""

    key: str
    width: int
    spec: BlockSpec | None = None

    @property
    def name(self) -> str:
        return self.key if self.spec is None else f"{self.key}@{self.width}"


# CPU blocks start each timed call with their near caches cold (a 4 MiB buffer written
# first), as inside a network: on tfnas-small (2-core EPYC, 1 MiB L2 per core) the raw sum of
# blocks then missed 30 whole networks by less than when timed warm in 7 of 8 paired checks,
# by a median of 7 points (bench/results/lut_cache_state.json). 0 keeps the warm timing.
DEFAULT_SCRUB_KIB = 4096
REFERENCE_JOB = "reference"


def knot_widths(specs: list[BlockSpec], width_step: int) -> list[int]:
    """Every ``width_step`` channels across the specs' union range, plus each spec's bounds."""
    low = min(s.min_width for s in specs)
    high = max(s.max_width for s in specs)
    widths = {w for s in specs for w in (s.min_width, s.max_width)}
    widths.update(range(-(-low // width_step) * width_step, high + 1, width_step))
    return sorted(w for w in widths if low <= w <= high)


def plan(space: SearchSpace, width_step: int) -> list[Job]:
    """The measurements a table of ``space`` needs, fixed parts first."""
    if width_step < 1:
        raise LatencyTableError(f"--width-step must be at least 1, got {width_step}.")
    groups: dict[str, list[BlockSpec]] = {}
    for spec in space.all_block_specs():
        groups.setdefault(spec.lut_key, []).append(spec)
    # the reference network (latency/drift.py) is measured in every pass like the blocks, so
    # its figure, the baseline of later drift checks, is the same best-of-passes
    jobs = [Job("stem", 0), Job("head", 0), Job(REFERENCE_JOB, 0)]
    for key, specs in groups.items():
        # Ops sharing a key differ only in nominal expansion; build the one with an expand conv.
        module_spec = max(specs, key=lambda s: s.has_expand)
        jobs += [Job(key, w, module_spec) for w in knot_widths(specs, width_step)]
    return jobs


class PlanModules:
    """The module and input shape of every planned measurement, as the networks build them."""

    def __init__(self, space: SearchSpace, classes: int, in_channels: int) -> None:
        self.space, self.classes, self.in_channels = space, classes, in_channels

    def module(self, job: Job) -> tuple[nn.Module, tuple[int, ...]]:
        space = self.space
        if job.key == "stem":
            return build_stem(space, self.in_channels), (
                self.in_channels,
                space.input_size,
                space.input_size,
            )
        if job.key == "head":
            res = space.final_resolution
            return Head(space, self.classes), (space.final_channels, res, res)
        if job.key == REFERENCE_JOB:
            from .drift import reference_architecture

            net = Network(space, reference_architecture(space), self.classes, self.in_channels)
            return net, net.input_shape(1)[1:]
        spec = job.spec
        assert spec is not None
        return MBConv(spec, job.width), (spec.in_channels, spec.resolution, spec.resolution)


def build_table(
    space: SearchSpace,
    meter: LatencyMeter,
    out: str | Path,
    *,
    width_step: int = 8,
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
        raise LatencyTableError(f"--scrub-kib must be 0 or more, got {scrub_kib}.")
    classes = classes or space.classes
    in_channels = in_channels or space.input_channels
    jobs = plan(space, width_step)
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
    journal = journal_path(out)
    done, spent = _open_journal(journal, header, resume)
    rounds = meter.policy.rounds
    todo = [(r, job) for r in range(rounds) for job in jobs if (job.name, r) not in done]
    parts = PlanModules(space, classes, in_channels)
    started = time.perf_counter()
    measured = 0
    total = rounds * len(jobs)
    with open(journal, "a", encoding="utf-8") as handle:
        for r, job in _progress(todo, total, total - len(todo), progress):
            if limit is not None and measured >= limit:
                break
            module, shape = parts.module(job)
            # a whole network (the reference) is timed as networks run, caches as it leaves them
            scrub = 0 if job.key == REFERENCE_JOB else scrub_kib
            ms = meter.window_statistic(meter.runner(module, shape), scrub)
            done[job.name, r] = ms
            measured += 1
            record = {
                "job": job.name,
                "round": r,
                "ms": ms,
                "seconds": spent + time.perf_counter() - started,
            }
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    if len(done) < total:
        return None
    best = {job.name: min(done[job.name, r] for r in range(rounds)) for job in jobs}
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
            "build_seconds": round(spent + time.perf_counter() - started, 1),
            "policy": header["policy"],
        },
    )
    table.save(out)
    journal.unlink(missing_ok=True)
    return table


def table_from_measurements(
    space: SearchSpace,
    jobs: list[Job],
    best: dict[str, float],
    device: dict[str, Any],
    statistic: str,
    meta: dict[str, Any],
    measured_at: str | None | bool = True,
) -> LatencyTable:
    """The table of ``space`` from one latency per planned job (``best``, by job name):
    ``lut build`` and ``lut assemble`` both make their tables here. ``measured_at`` stamps
    the reference network's record (True: now; None: no time, for a table that must be the
    same bytes whenever it is assembled)."""
    from .drift import reference_architecture, reference_record

    entries: dict[str, dict[int, float]] = {}
    for job in jobs:
        if job.spec is not None:
            entries.setdefault(job.key, {})[job.width] = best[job.name]
    table = LatencyTable(
        space_name=space.name,
        space_hash=space.hash,
        device=device,
        statistic=statistic,
        base_ms=best["stem"] + best["head"],
        entries=entries,
        meta={"base_parts_ms": {"stem": best["stem"], "head": best["head"]}, **meta},
    )
    table.meta["reference"] = reference_record(
        reference_architecture(space), best[REFERENCE_JOB], measured_at
    )
    return table


def journal_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def _open_journal(
    journal: Path, header: dict[str, Any], resume: bool
) -> tuple[dict[tuple[str, int], float], float]:
    """Measurements already taken ((job name, round) -> ms) and the seconds they took, after
    checking that they are comparable with what this build would measure."""
    if not journal.exists():
        _write_header(journal, header)
        return {}, 0.0
    if not resume:
        raise LatencyTableError(
            f"{journal}: a partial build is there; pass --resume to continue it, or delete it "
            "to start over."
        )
    lines = journal.read_text(encoding="utf-8").splitlines()
    try:
        saved = json.loads(lines[0])
    except (IndexError, json.JSONDecodeError):
        log.warning("%s: unreadable header, starting over", journal)
        _write_header(journal, header)
        return {}, 0.0
    older = {"scrub_kib": 0}  # what a journal from before a setting existed used
    fields = ("format", "space", "policy", "width_step", "classes", "in_channels", "scrub_kib")
    for field in fields:
        if saved.get(field, older.get(field)) != header[field]:
            raise LatencyTableError(
                f"{journal}: was started with other settings ({field} differs); delete it or "
                "rerun with the same settings."
            )
    for field in ("device", "cpu", "gpu", "threads", "batch_size", "torch"):
        if saved["device"].get(field) != header["device"].get(field):
            raise LatencyTableError(
                f"{journal}: was measured with {field} {saved['device'].get(field)!r}, not "
                f"{header['device'].get(field)!r}; its figures cannot be mixed with new ones."
            )
    done: dict[tuple[str, int], float] = {}
    seconds = 0.0
    good = [lines[0]]
    for line in lines[1:]:
        try:
            record = json.loads(line)
            done[record["job"], int(record["round"])] = float(record["ms"])
            seconds = float(record.get("seconds", seconds))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            break  # a line cut short by the kill: that measurement is taken again
        good.append(line)
    if len(good) != len(lines):
        journal.write_text("\n".join(good) + "\n", encoding="utf-8")
    log.info("resuming %s: %d measurements already taken", journal, len(done))
    return done, seconds


def _write_header(journal: Path, header: dict[str, Any]) -> None:
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text(json.dumps(header) + "\n", encoding="utf-8")


def _progress(
    jobs: list[tuple[int, Job]], total: int, initial: int, show: bool | None
) -> Iterator[tuple[int, Job]]:
    """``None``: a progress bar with ETA on a terminal, a plain line every 10% otherwise;
    ``True``: the bar; ``False``: silence."""
    if show is False:
        yield from jobs
        return
    if show or sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(
            jobs, total=total, initial=initial, unit="block", desc="measuring", dynamic_ncols=True
        )
        for r, job in bar:
            bar.set_postfix_str(f"pass {r + 1}: {job.name}", refresh=False)
            yield r, job
        return
    step = max(1, total // 10)
    started = time.perf_counter()
    for i, item in enumerate(jobs, initial + 1):
        yield item
        if i % step == 0 or i == total:
            rate = (i - initial) / max(time.perf_counter() - started, 1e-9)
            print(
                f"measured {i}/{total}, about {(total - i) / rate:.0f} s to go",
                file=sys.stderr,
                flush=True,
            )


def measure_network(
    space: SearchSpace,
    arch: Architecture,
    meter: LatencyMeter,
    classes: int | None = None,
    in_channels: int | None = None,
) -> float:
    """Latency in ms of the whole standalone network, timed like the table's blocks."""
    return measure_networks(space, [arch], meter, classes, in_channels)[0]


def measure_networks(
    space: SearchSpace,
    archs: list[Architecture],
    meter: LatencyMeter,
    classes: int | None = None,
    in_channels: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[float]:
    """Latencies in ms of whole standalone networks, their timing rounds interleaved."""
    nets = [Network(space, arch, classes, in_channels) for arch in archs]
    return meter.measure_interleaved([(net, net.input_shape(1)[1:]) for net in nets], progress)


def table_meter(table: LatencyTable, device: str | None = None, runner=None) -> LatencyMeter:
    """A meter configured as the one that built ``table`` (device, threads, batch, policy);
    for a table measured by an external runner, that ``runner`` (which the table does not
    record: the command that times models is the user's to give again)."""
    from .measure import TimingPolicy

    if runner is not None or table.device.get("device") == "external":
        from .external import ExternalMeter

        if runner is None:
            raise LatencyTableError(
                "the table was measured by an external runner; pass the command that times "
                "models on its device with --runner."
            )
        return ExternalMeter(
            runner,
            int(table.device.get("batch_size", 1)),
            str(table.meta.get("model_format", "onnx")),
            name=table.device.get("name"),
        )

    policy_data = table.meta.get("policy")
    policy = TimingPolicy(**policy_data) if isinstance(policy_data, dict) else TimingPolicy()
    return LatencyMeter(
        device or str(table.device.get("device", "cpu")),
        threads=int(table.device.get("threads", 1)),
        batch_size=int(table.device.get("batch_size", 1)),
        policy=policy,
    )


__all__ = [
    "build_table",
    "table_from_measurements",
    "knot_widths",
    "measure_network",
    "measure_networks",
    "plan",
    "table_meter",
]
