"""The resumable record of a table build: one JSON line per measurement, appended and synced
as soon as it is taken, after a header that says what the build measures.

A killed build loses at most the measurement in flight; ``--resume`` reads the journal back,
drops a line cut short by the kill, and refuses a journal whose header says it measured
something else (the caller decides what "else" means: ``mismatch``). The in-process build
(:mod:`.build`) and the external runner's (:mod:`.external`) both keep their journals here,
and both show their progress with :func:`measuring_progress`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tqdm import tqdm

from ..errors import named
from ..io import json_object
from .table import LatencyTableError

log = logging.getLogger(__name__)
T = TypeVar("T")


def journal_path(out: Path) -> Path:
    """Where the build of the table ``out`` keeps its journal."""
    return out.with_name(out.name + ".partial")


class Journal:
    """Measurements already taken (``done``: (job name, pass) -> ms; ``seconds``: the time
    they took), and the file new ones are appended to (``record``, inside ``with``)."""

    def __init__(
        self,
        path: Path,
        header: dict[str, Any],
        resume: bool,
        mismatch: Callable[[dict[str, Any]], str | None],
    ) -> None:
        """``mismatch(saved_header)``: why a journal already there cannot be continued by
        this build (a sentence after the journal's path), or None when it can."""
        self.path = path
        self.done: dict[tuple[str, int], float] = {}
        self.seconds = 0.0
        self._started = time.perf_counter()
        self._handle = None
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if len(lines) <= 1:  # nothing measured yet (a start that failed): nothing to keep
            self._write_header(header)
            return
        if not resume:
            raise LatencyTableError(
                f"{path}: a partial build is there; pass {named('resume')} to continue it, or "
                "delete it to start over."
            )
        saved = json_object(lines[0])
        if saved is None:
            log.warning("%s: unreadable header, starting over", path)
            self._write_header(header)
            return
        why = mismatch(saved)
        if why is not None:
            raise LatencyTableError(f"{path}: {why}")
        good = [lines[0]]
        for line in lines[1:]:
            record = json_object(line)
            try:
                if record is None:
                    raise ValueError("not a JSON object")
                ms = float(record["ms"])
                # a latency no measurement gives (edited, or written by a broken runner); an
                # explicit check, not an assert, which python -O would remove
                if not (math.isfinite(ms) and ms > 0):
                    raise ValueError(f"latency {ms}")
                self.done[record["job"], int(record["round"])] = ms
                self.seconds = float(record.get("seconds", self.seconds))
            except (KeyError, TypeError, ValueError):
                break  # a line cut short by the kill (or unusable): measured again
            good.append(line)
        if len(good) != len(lines):
            path.write_text("\n".join(good) + "\n", encoding="utf-8")
        log.info("resuming %s: %d measurements already taken", path, len(self.done))

    def _write_header(self, header: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(header) + "\n", encoding="utf-8")

    @property
    def elapsed(self) -> float:
        """Seconds of measuring so far, those of earlier runs of the build included."""
        return self.seconds + time.perf_counter() - self._started

    def __enter__(self) -> Journal:
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in exit)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def record(self, job: str, round_: int, ms: float) -> None:
        """Keep one measurement, on disk before this returns."""
        assert self._handle is not None, "record inside `with journal:`"
        self.done[job, round_] = ms
        line = {"job": job, "round": round_, "ms": ms, "seconds": self.elapsed}
        self._handle.write(json.dumps(line) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def finish(self) -> None:
        """The table is written: the journal has served."""
        self.path.unlink(missing_ok=True)


def measuring_progress(
    items: list[T],
    total: int,
    initial: int,
    show: bool | None,
    label: Callable[[T], str],
    verb: str = "measured",
) -> Iterator[T]:
    """``items`` as they are measured. ``show`` None: a progress bar with ETA on a terminal,
    a plain line every 10% otherwise; True: the bar; False: silence. ``label``: what the bar
    says of the item in hand; ``verb``: what is done to them."""
    if show is False:
        yield from items
        return
    if show or sys.stderr.isatty():
        bar = tqdm(items, total=total, initial=initial, unit="model", desc=verb, dynamic_ncols=True)
        for item in bar:
            bar.set_postfix_str(label(item), refresh=False)
            yield item
        return
    step = max(1, total // 10)
    started = time.perf_counter()
    for i, item in enumerate(items, initial + 1):
        yield item
        if i % step == 0 or i == total:
            rate = (i - initial) / max(time.perf_counter() - started, 1e-9)
            print(
                f"{verb} {i}/{total}, about {(total - i) / rate:.0f} s to go",
                file=sys.stderr,
                flush=True,
            )


def counting_progress(
    total: int, verb: str, show: bool | None, quiet_seconds: float = 5.0
) -> Callable[[int], None]:
    """A callback for work that reports ``n`` items done at a time (an export). ``show``
    None: a bar on a terminal; elsewhere (a log) a line every 10% once the work has taken
    ``quiet_seconds`` (``exported 420/1402, about 50 s to go``), so that short work says
    nothing; True: the bar; False: silence."""
    if show is False:
        return lambda n=1: None
    if show or sys.stderr.isatty():
        bar = tqdm(total=total, unit="model", desc=verb, dynamic_ncols=True)

        def update(n: int = 1) -> None:
            bar.update(n)
            if bar.n >= total:
                bar.close()

        return update
    started, step, state = time.perf_counter(), max(1, total // 10), {"done": 0, "said": 0}

    def advance(n: int = 1) -> None:
        state["done"] += n
        done, elapsed = state["done"], time.perf_counter() - started
        if elapsed < quiet_seconds or (done - state["said"] < step and done < total):
            return
        state["said"] = done
        left = (total - done) / (done / max(elapsed, 1e-9))
        print(f"{verb} {done}/{total}, about {left:.0f} s to go", file=sys.stderr, flush=True)

    return advance


__all__ = ["Journal", "counting_progress", "journal_path", "measuring_progress"]
