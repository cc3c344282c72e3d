"""One run directory for search and training: the guard, checkpoints, metrics and resume.

A run directory holds ``config.json`` (every setting that decides the result),
``metrics.jsonl`` (one row per finished epoch) and a checkpoint. Both the search and the
retraining use it the same way:

- :meth:`RunDir.guard` before any work: a directory that holds a run already is refused
  unless resuming, and a resume with other settings is refused, naming them;
- :meth:`RunDir.save` after every epoch: the checkpoint (``torch.save``, loadable with
  ``weights_only=True``) and the metrics, each written atomically, so a kill at any moment
  leaves the previous epoch's state intact;
- :meth:`RunDir.load` on resume: the checkpoint and the metrics rows of the epochs it holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from .errors import TfnasError, named
from .io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_output,
    json_object,
    read_json,
)

# The files of a run directory, named here only.
CONFIG_FILE = "config.json"  # every setting that decides the run's result
METRICS_FILE = "metrics.jsonl"  # one row per finished epoch
ARCH_FILE = "arch.json"  # the architecture a search found
SEARCH_CHECKPOINT = "checkpoint.pt"  # a search's resumable state
TRAIN_CHECKPOINT = "last.pt"  # a training's resumable state
BEST_WEIGHTS = "best.pt"  # the weights of a training's best epoch
RUN_FILE = "run.json"  # what the run is and was started from: kind, inputs' digests, threads
LOCK_FILE = ".lock"  # held (flock) by the process writing the run, with its pid
# what each kind of run leaves that another kind must not write over
CHECKPOINTS = {SEARCH_CHECKPOINT: "search", TRAIN_CHECKPOINT: "training run"}


def file_digest(path: str | Path) -> str:
    """The first 16 hex digits of a file's sha256: what a run records of an input file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def dataclass_defaults(cls: type) -> dict[str, Any]:
    """The declared defaults of a config dataclass's fields (for :meth:`RunDir.guard`)."""
    return {
        f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
    }


class RunDir:
    """The folder of one run of ``kind`` ("search", "training run") with its checkpoint."""

    def __init__(self, path: str | Path, kind: str, checkpoint: str) -> None:
        self.path = check_output(path, "out", "directory")
        self.kind = kind
        self.checkpoint = self.path / checkpoint
        self.config_file = self.path / CONFIG_FILE
        self.metrics_file = self.path / METRICS_FILE
        self.created = not self.path.exists()  # by this run: removable if it fails at once
        self.record_file = self.path / RUN_FILE
        self._lock: int | None = None  # the lock file's descriptor while this process holds it

    def guard(
        self,
        config: dict[str, Any],
        resume: bool,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        """Refuse to start over an existing run, or to resume one with other settings.

        A directory without a checkpoint holds no finished epoch (a run killed or failed
        before its first): a new start there loses nothing and is allowed. A run saved by a
        tfnas with fewer settings resumes when each newer setting is at its default
        (``defaults``, the config's defaults), which is what that run used; a setting tfnas
        no longer has is not compared."""
        for name, other in CHECKPOINTS.items():
            if other != self.kind and (self.path / name).exists():
                raise TfnasError(
                    f"{self.path}: holds a {other}, not a {self.kind}; choose another "
                    f"{named('out')}."
                )
        if not self.checkpoint.exists():
            return
        config = json.loads(json.dumps(config))  # tuples as lists, as saved
        if not resume:
            raise TfnasError(
                f"{self.path}: holds a {self.kind} already; pass {named('resume')} to "
                f"continue it, or choose another {named('out')}."
            )
        if self.config_file.exists():
            saved = read_json(self.config_file, "run configuration", TfnasError)
            if not isinstance(saved, dict):
                raise TfnasError(f"{self.config_file}: is not a tfnas run configuration.")
            defaults = json.loads(json.dumps(defaults or {}))
            saved = {k: v for k, v in saved.items() if k in config}
            saved |= {k: defaults.get(k) for k in config.keys() - saved.keys()}
            refuse_other_settings(self.path, saved, config)

    def acquire(self) -> None:
        """Hold the run directory for this process (a lock file, released by the kernel
        when the process ends, however it ends): a second writer is refused, naming the
        process that holds it."""
        import fcntl  # POSIX; tfnas runs on Linux and macOS

        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / LOCK_FILE
        while self._lock is None:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise TfnasError(
                    f"{self.path}: is being written by process {holder} (a {self.kind} runs "
                    f"there); wait for it to end, or choose another {named('out')}."
                ) from None
            try:
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:  # removed by its last holder meanwhile: take it anew
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            self._lock = fd

    def release(self) -> None:
        """Let go of the run directory (removing the lock file) if this process holds it."""
        if self._lock is None:
            return
        (self.path / LOCK_FILE).unlink(missing_ok=True)
        os.close(self._lock)
        self._lock = None

    def write_record(self, inputs: dict[str, tuple[str, str]], threads: int) -> None:
        """Record what the run is and was started from (``inputs``: name -> (file, digest))."""
        record = {
            "kind": self.kind,
            "inputs": {name: {"file": f, "digest": d} for name, (f, d) in inputs.items()},
            "threads": threads,
        }
        atomic_write_json(self.record_file, record)

    def check_record(self, inputs: dict[str, tuple[str, str]], threads: int) -> None:
        """On resume: refuse inputs whose content differs from what the run recorded, and
        say so where the thread count differs (the run goes on, not bit for bit the same)."""
        if not self.record_file.is_file():
            return  # a run of a tfnas that kept no record
        try:
            saved = json.loads(self.record_file.read_text())
            recorded = {k: v["digest"] for k, v in saved.get("inputs", {}).items()}
            saved_threads = saved.get("threads")
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError):
            raise TfnasError(f"{self.record_file}: is not a tfnas run record.") from None
        for name, (file, digest) in inputs.items():
            if name in recorded and recorded[name] != digest:
                raise TfnasError(
                    f"{file}: differs from the {name} this {self.kind} was started with (its "
                    "content changed since); restore it, or start a new run with "
                    f"{named('out')}."
                )
        if isinstance(saved_threads, int) and saved_threads != threads:
            print(
                f"note: {self.path} was started with {saved_threads} thread(s) and resumes "
                f"with {threads}: its result will not be bit for bit that of a run never "
                f"interrupted (resume it with {saved_threads} for that).",
                file=sys.stderr,
            )

    def discard_if_unstarted(self) -> None:
        """After a failure before the first checkpoint: remove what the run wrote (its
        settings, metrics, TensorBoard folder, and the directory if the run made it), so
        that nothing half-begun is left; a run with a checkpoint is kept to be resumed."""
        if self.checkpoint.exists():
            return
        self.release()
        for path in (self.config_file, self.metrics_file, self.record_file):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.path / "tensorboard", ignore_errors=True)
        if self.created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.config_file, config)

    def save(
        self, state: dict[str, Any], history: list[dict[str, Any]], path: Path | None = None
    ) -> None:
        """Write ``state`` to the checkpoint (or ``path``) and ``history`` as the metrics."""
        save_state(state, path or self.checkpoint)
        self.write_metrics(history)

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        atomic_write_text(self.metrics_file, "".join(json.dumps(r) + "\n" for r in history))

    def load(
        self, device: torch.device | str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The checkpoint and the metrics rows of the epochs it holds; None without one."""
        if not self.checkpoint.exists():
            return None
        try:
            state = torch.load(self.checkpoint, map_location=device, weights_only=True)
            epoch = int(state["epoch"])
        except Exception as exc:  # torch raises many types for a damaged file
            raise TfnasError(
                f"{self.checkpoint}: cannot be read as a {self.kind}'s checkpoint "
                f"({type(exc).__name__}); the disk may have damaged it: delete it to start "
                "the run over."
            ) from None
        rows = []
        if self.metrics_file.exists():
            lines = self.metrics_file.read_text().splitlines()
            parsed = (json_object(x) for x in lines)  # a damaged line is one row less
            rows = [r for r in parsed if r and isinstance(r.get("epoch"), int)]
            rows = [r for r in rows if r["epoch"] < epoch]
        return state, rows


def refuse_other_settings(path: Path, saved: dict[str, Any], given: dict[str, Any]) -> None:
    """A resumed run keeps the settings it was started with (``saved``): refuse, naming
    them, the ``given`` settings that would change them or that it has no place for."""
    changed = []
    for name in sorted(given):
        value = json.loads(json.dumps(given[name]))  # tuples as lists, as saved
        if name not in saved:
            changed.append(f"{named(name)} (a saved run keeps its own)")
        elif value != saved[name]:
            changed.append(f"{named(name)} {given[name]} (it was started with {saved[name]})")
    if changed:
        raise TfnasError(
            f"{path}: a resumed run keeps the settings it was started with, and "
            f"{'; '.join(changed)} would change them; start a new run with {named('out')} to "
            "use other settings."
        )


def save_state(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` to memory, then one atomic write."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())
