"""Latency measured by a program of the user's: the external-runner protocol.

``tfnas lut build --device external --runner 'CMD ... {model} ...'`` exports every model the
table needs (:mod:`tfnas.latency.plan`) and runs the command once per model, ``{model}``
replaced by the model file's path, or once per batch of models when the command says
``{models}`` (each path one argument). The command prints, among anything else, one JSON
line per model with its latency in milliseconds: ``{"ms": 0.42}`` for a single model, or
``{"model": PATH, "ms": 0.42}`` per model of a batch. The command line is split as a shell
would split it but run without a shell (wrap pipes or ``adb shell`` quoting in
``sh -c '...'``). A ``{model}`` that is a whole argument is replaced by the path as it is; one
inside a longer argument (the script of ``sh -c '... {model}'``) by the path quoted for a
POSIX shell, so that no file name can run commands. The runner runs in a process group of
its own, killed whole when it times out or exits: nothing it starts outlives the call. A
runner that exits non-zero, outlives its timeout, prints no such line or
prints a latency that is not a positive finite number stops the build with one sentence
naming the model; every latency measured before it is kept in the build's journal, and
``--resume`` continues from there. The environment variable ``TFNAS_TIMING`` tells the
runner whether it times a block (``block``: ``lut build`` times blocks with cold near
caches) or a whole network (``network``: timed as it runs).

``tfnas lut check --runner`` and ``tfnas profile --device external --runner`` time whole
networks through the same command (:class:`ExternalMeter`), so that a table and the
networks checked against it are measured on the same device.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import SettingError, named
from ..io import json_object
from ..options import MODEL_FORMATS
from ..space import SearchSpace
from .jobs import REFERENCE_JOB, plan_jobs
from .journal import Journal, counting_progress, journal_path, measuring_progress
from .plan import assemble_table, model_bytes, write_plan
from .policy import TimingPolicy
from .settings import MeterSettings, PlanSettings, RunnerSettings
from .table import LatencyTable, LatencyTableError

EXTERNAL_JOURNAL = "tfnas-external-journal"
BATCH = 64  # models per runner call with {models}
TIMING_ENV = "TFNAS_TIMING"  # "block" or "network", for the runner


RUNNER = named("runner")


class RunnerError(LatencyTableError):
    """The external runner failed on a model; the message names it."""


@dataclass(frozen=True)
class ExternalRunner:
    """A command template (``{model}`` or ``{models}``) and a timeout per model."""

    command: str
    timeout_s: float = RunnerSettings.runner_timeout
    # the thread counts the runner said it used ("threads" in its lines), as it reports them
    reported_threads: set[int] = field(default_factory=set, compare=False, repr=False)

    def __post_init__(self) -> None:
        try:
            tokens = shlex.split(self.command)
        except ValueError as exc:
            raise RunnerError(f"{RUNNER} {self.command!r}: cannot be split ({exc}).") from None
        if not tokens:
            raise RunnerError(f"{RUNNER} is empty; give the command that times one model.")
        if not any("{model}" in t or t == "{models}" for t in tokens):
            raise RunnerError(
                f"{RUNNER} {self.command!r}: says neither {{model}} (one model per call) nor "
                "{models} (several, each its own argument); tfnas puts the model paths there."
            )
        if not (isinstance(self.timeout_s, int | float) and self.timeout_s > 0):
            raise SettingError("runner_timeout", f"must be positive, got {self.timeout_s}.")

    @property
    def batched(self) -> bool:
        return "{models}" in shlex.split(self.command)

    def measure(self, files: list[Path], kind: str = "block") -> Iterator[tuple[Path, float]]:
        """(file, ms) for every file, in order, as the runner reports them. On a failure the
        latencies the runner reported before it are still yielded, then the error raised.

        ``kind`` ("block" or "network") reaches the runner as ``TFNAS_TIMING``: ``lut build``
        times blocks with cold near caches, as inside a network, and whole networks as they
        run; a runner that can do the same reads it."""
        size = BATCH if self.batched else 1
        for start in range(0, len(files), size):
            chunk = files[start : start + size]
            found, error, stdout = self._run(chunk, kind)
            for path in chunk:
                if str(path) not in found:
                    raise error or self._missing(path, chunk, stdout)
                yield path, found[str(path)]

    def _argv(self, files: list[Path]) -> list[str]:
        argv: list[str] = []
        for token in shlex.split(self.command):
            if token == "{models}":
                argv += [str(f) for f in files]
            elif token == "{model}":
                argv.append(str(files[0]))
            else:  # inside a longer argument, a shell script as like as not: quoted for one
                quoted = shlex.quote(str(files[0]))
                for form in ('"{model}"', "'{model}'", "{model}"):  # quotes of its own too
                    token = token.replace(form, quoted)
                argv.append(token)
        return argv

    def require_program(self) -> None:
        """Refuse a runner whose program is not there, before any work is written."""
        program = shlex.split(self.command)[0]
        found = shutil.which(program) if os.sep not in program else program
        if found is None or not (os.path.isfile(found) and os.access(found, os.X_OK)):
            raise RunnerError(f"{RUNNER}: no such program {program!r}.")

    def _run(
        self, files: list[Path], kind: str = "block"
    ) -> tuple[dict[str, float], RunnerError | None, str]:
        """The latencies one call of the runner reported, its failure if it failed, and
        what it printed."""
        name = str(files[0])
        if len(files) > 1:
            name += f" (or another of the {len(files)} models of its batch)"
        argv = self._argv(files)
        try:
            status, stdout, stderr = run_in_own_group(
                argv, self.timeout_s * len(files), {**os.environ, TIMING_ENV: kind}
            )
        except FileNotFoundError:
            raise RunnerError(f"{RUNNER}: no such program {argv[0]!r}.") from None
        found = self._parse(stdout, files)
        if status is None:
            error = RunnerError(
                f"{name}: the runner did not finish within {self.timeout_s:g} s per model "
                f"({named('runner_timeout')})."
            )
            return found, error, stdout
        if status != 0:
            # the end of what it said, where the reason usually is
            said = " / ".join(stderr.strip().splitlines()[-3:]) or "no message on stderr"
            error = RunnerError(f"{name}: the runner exited with status {status} ({said[-500:]}).")
            return found, error, stdout
        return found, None, stdout

    def _parse(self, stdout: str, files: list[Path]) -> dict[str, float]:
        found: dict[str, float] = {}
        names = {str(f) for f in files}
        for line in stdout.splitlines():
            record = json_object(line)
            if record is None or "ms" not in record:
                continue
            model = str(record.get("model", files[0] if len(files) == 1 else ""))
            if model not in names:
                continue
            ms = record["ms"]
            if not _positive_finite(ms):
                raise RunnerError(
                    f"{model}: the runner printed the latency {ms!r}; it must be a positive, "
                    "finite number of ms."
                )
            found.setdefault(model, float(ms))
            threads = record.get("threads")
            if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0:
                self.reported_threads.add(threads)
        return found

    @staticmethod
    def _missing(path: Path, chunk: list[Path], stdout: str) -> RunnerError:
        shown = stdout.strip()[:120] or "nothing"
        return RunnerError(
            f"{path}: the runner printed no JSON line with its latency (expected "
            f'{{"ms": ...}}{" with its model" if len(chunk) > 1 else ""}; it printed: '
            f"{shown!r})."
        )


def run_in_own_group(
    argv: list[str], timeout_s: float, env: dict[str, str]
) -> tuple[int | None, str, str]:
    """Run ``argv`` in a new process group: (exit status, or None past ``timeout_s``; its
    stdout; its stderr). The whole group is killed once the program has exited or timed out,
    so that a child it left behind neither outlives tfnas nor holds its output open."""
    with subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        env=env,
        start_new_session=True,
    ) as process:
        output: dict[str, str] = {}
        readers = [
            threading.Thread(target=lambda k=k, f=f: output.__setitem__(k, f.read()), daemon=True)
            for k, f in (("out", process.stdout), ("err", process.stderr))
        ]
        for reader in readers:
            reader.start()
        try:
            status: int | None = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            status = None
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if hasattr(os, "killpg"):
                    os.killpg(process.pid, signal.SIGKILL)
                else:  # no process groups to kill (Windows): the runner itself
                    process.kill()
            process.wait()
        for reader in readers:
            reader.join(timeout=5)
    return status, output.get("out", ""), output.get("err", "")


def runner_for(
    command: str | None, timeout_s: float, device: str | None = None
) -> ExternalRunner | None:
    """The runner of ``command`` (None without one). Where ``device`` says what times the
    networks, a runner needs device 'external', and device 'external' a runner."""
    if command is None:
        if device == "external":
            raise SettingError(
                "runner",
                f"is needed with {named('device')} external: the command that times a model.",
            )
        return None
    if device not in (None, "external"):
        raise SettingError(
            "runner",
            f"times models outside tfnas: use it with {named('device')} external, not {device}.",
        )
    return ExternalRunner(command, timeout_s)


def _positive_finite(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def external_device(name: str | None) -> dict[str, Any]:
    """A table's device record for latencies measured outside tfnas."""
    return {"device": "external", "name": name or "external"}


def build_external_table(
    space: SearchSpace,
    runner: ExternalRunner,
    out: str | Path,
    *,
    fmt: str = PlanSettings.fmt,
    batch_size: int = MeterSettings.batch_size,
    width_step: int = PlanSettings.width_step,
    classes: int | None = None,
    in_channels: int | None = None,
    rounds: int = TimingPolicy.rounds,
    device_name: str | None = None,
    resume: bool = False,
    progress: bool | None = None,
    space_source: str | None = None,
) -> LatencyTable:
    """Measure every model of ``space``'s plan with ``runner`` and write the table to
    ``out``: the plan goes to ``OUT.plan/`` (removed after success), every latency to the
    journal ``OUT.partial`` as it arrives; the best of ``rounds`` passes per entry, each
    pass a sweep over all the models, so that a slow spell of the device touches one pass
    of many models rather than every pass of a few."""
    out = Path(out)
    plan_dir = out.with_name(out.name + ".plan")
    header = {
        "format": EXTERNAL_JOURNAL,
        "space": {"name": space.name, "hash": space.hash},
        "runner": runner.command,
        "model_format": fmt,
        "batch_size": batch_size,
        "width_step": width_step,
        "rounds": rounds,
    }
    runner.require_program()
    journal = Journal(journal_path(out), header, resume, lambda saved: _mismatch(saved, header))
    if progress or (progress is None and sys.stderr.isatty()):
        print(f"exporting the models to measure into {plan_dir}", file=sys.stderr, flush=True)
    exported = counting_progress(len(plan_jobs(space, width_step)), "exported", progress)
    manifest = write_plan(
        space,
        plan_dir,
        fmt=fmt,
        batch_size=batch_size,
        width_step=width_step,
        classes=classes,
        in_channels=in_channels,
        space_source=space_source,
        progress=exported,
    )
    files = {e["job"]: manifest.model_path(e) for e in manifest.entries}
    job_of = {str(path): job for job, path in files.items()}
    todo = [(r, job) for r in range(rounds) for job in files if (job, r) not in journal.done]
    total = rounds * len(files)
    ticks = measuring_progress(
        todo, total, total - len(todo), progress, lambda item: f"pass {item[0] + 1}: {item[1]}"
    )
    with journal:
        for r in range(rounds):
            for kind in ("block", "network"):  # the reference network is timed as one
                pending = [
                    files[job]
                    for rr, job in todo
                    if rr == r and (job == REFERENCE_JOB) == (kind == "network")
                ]
                for path, ms in runner.measure(pending, kind):
                    journal.record(job_of[str(path)], r, ms)
                    next(ticks, None)
    best = {job: min(journal.done[job, r] for r in range(rounds)) for job in files}
    device = external_device(device_name)
    if len(runner.reported_threads) == 1:  # what the runner said it ran with
        device["threads"] = next(iter(runner.reported_threads))
    table = assemble_table(manifest, best, device, space)
    # what an in-process build records besides: its passes, its time, when the reference ran
    table.meta |= {"rounds": rounds, "build_seconds": round(journal.elapsed, 1)}
    table.meta["reference"]["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    table.save(out)
    journal.finish()
    shutil.rmtree(plan_dir, ignore_errors=True)
    return table


def _mismatch(saved: dict[str, Any], header: dict[str, Any]) -> str | None:
    """Why the journal ``saved`` cannot be continued by the external build of ``header``."""
    if saved == header:
        return None
    return (
        "was started with other settings (runner, format, batch size, width step or rounds); "
        "delete it or rerun with the same settings."
    )


class ExternalMeter:
    """Times whole networks through an external runner, for ``lut check`` and ``profile``
    (the interface of :class:`~tfnas.latency.measure.LatencyMeter` they use)."""

    device = "external"
    threads = 1

    def __init__(
        self,
        runner: ExternalRunner,
        batch_size: int = 1,
        fmt: str = "onnx",
        rounds: int = TimingPolicy.rounds,
        name: str | None = None,
    ) -> None:
        self.runner = runner
        self.batch_size = batch_size
        self.fmt = fmt
        self.name = name
        self.policy = TimingPolicy(rounds=rounds, statistic="external")

    def fingerprint(self) -> dict[str, object]:
        return {**external_device(self.name), "batch_size": self.batch_size}

    def _files(self, items: list[tuple[nn.Module, tuple[int, ...]]], folder: Path) -> list[Path]:
        files = []
        for i, (module, shape) in enumerate(items):
            path = folder / f"net{i}{MODEL_FORMATS[self.fmt]}"
            path.write_bytes(model_bytes(module, (self.batch_size, *shape), self.fmt))
            files.append(path)
        return files

    def measure_interleaved(
        self,
        items: list[tuple[nn.Module, tuple[int, ...]]],
        progress: Callable[[int], None] | None = None,
    ) -> list[float]:
        """The best of ``rounds`` runner passes over all the networks."""
        return [best for best, _ in self._passes(items, self.policy.rounds, 0.0, progress)]

    def measure_spread_many(
        self,
        items: list[tuple[nn.Module, tuple[int, ...]]],
        rounds: int = 20,
        gap_seconds: float = 0.5,
    ) -> list[tuple[float, list[list[float]]]]:
        return self._passes(items, rounds, gap_seconds)

    def _passes(self, items, rounds, gap_seconds, progress=None):
        with tempfile.TemporaryDirectory(prefix="tfnas-external-") as tmp:
            files = self._files(items, Path(tmp))
            windows: list[list[list[float]]] = [[] for _ in files]
            for r in range(rounds):
                if r and gap_seconds:
                    time.sleep(gap_seconds)
                for i, (_, ms) in enumerate(self.runner.measure(files, "network")):
                    windows[i].append([ms])
                    if progress is not None:
                        progress(1)
        return [(min(w[0] for w in ws), ws) for ws in windows]


__all__ = [
    "ExternalMeter",
    "ExternalRunner",
    "RunnerError",
    "build_external_table",
    "external_device",
]
