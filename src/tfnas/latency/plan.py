"""Measurement plans you can carry: every model a latency table needs, exported once to a file
at its exact input shape, with a manifest; and the table assembled from latencies measured
anywhere.

A target device (a phone, a board, an accelerator behind a vendor runtime) cannot run
tfnas. ``tfnas lut plan`` writes what it must time: ``PLAN_DIR/manifest.json`` and one model
file per entry under ``PLAN_DIR/models/``. Measure each file there with any tool, write one
line per entry (CSV ``job,ms`` or JSON lines ``{"job": ..., "ms": ...}``; ``file`` may
stand for ``job``), and ``tfnas lut assemble`` turns them into a table in the same format,
with the same validation, as ``tfnas lut build``. The external runner of ``lut build
--device external`` goes through the same plan and the same assembly, so the two routes give
byte-identical tables from the same measurements.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import SettingError, named
from ..io import atomic_write_bytes, atomic_write_json, read_json, read_text
from ..options import MODEL_FORMATS
from ..schema import entry_place, validate
from ..space import SearchSpace, load_space
from .jobs import CALL_JOB, REFERENCE_JOB, Job, PlanModules, plan_jobs, table_from_measurements
from .plan_schema import PLAN_FORMAT, PLAN_VERSION, ManifestFile
from .settings import MeterSettings, PlanSettings
from .table import LatencyTable, LatencyTableError

MANIFEST = "manifest.json"
SETTINGS = ".plan-settings.json"


def model_bytes(module: nn.Module, input_shape: tuple[int, ...], fmt: str) -> bytes:
    """``module`` (in eval mode) as an ONNX or TorchScript model taking one input of
    exactly ``input_shape`` (batch included), named ``x``."""
    module = module.eval()
    x = torch.randn(input_shape)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "onnx":
            torch.onnx.export(
                module, (x,), buffer, input_names=["x"], output_names=["y"], dynamo=False
            )
        elif fmt == "torchscript":
            with torch.no_grad():
                torch.jit.save(torch.jit.trace(module, (x,)), buffer)
        else:
            raise SettingError("format", f"must be one of {', '.join(MODEL_FORMATS)}, got {fmt!r}.")
    return buffer.getvalue()


def job_file(job: Job, fmt: str) -> str:
    """The model file of ``job``, relative to the plan directory."""
    return f"models/{job.name.replace('@', '_w')}{MODEL_FORMATS[fmt]}"


@dataclass(frozen=True)
class Manifest:
    """A plan's manifest: the space and settings, and per entry its job, file, input shape
    and checksum."""

    directory: Path
    data: dict[str, Any]

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.data["entries"]

    @property
    def space(self) -> SearchSpace:
        """The space the plan names (a built-in name, or the YAML path it was made from)."""
        try:
            return load_space(self.data["space"]["source"])
        except LatencyTableError:
            raise
        except Exception as exc:  # a user's space file moved or changed: say which
            raise LatencyTableError(
                f"{self.directory / MANIFEST}: its space cannot be loaded ({exc}); pass the "
                f"space's YAML file as {named('space')}."
            ) from None

    def model_path(self, entry: dict[str, Any]) -> Path:
        return self.directory / entry["file"]


def write_plan(
    space: SearchSpace,
    out_dir: str | Path,
    *,
    fmt: str = PlanSettings.fmt,
    batch_size: int = MeterSettings.batch_size,
    width_step: int = PlanSettings.width_step,
    classes: int | None = None,
    in_channels: int | None = None,
    progress: Callable[[int], None] | None = None,
    space_source: str | None = None,
) -> Manifest:
    """Export every model the table of ``space`` needs into ``out_dir`` and write its
    manifest last, so that a directory with a manifest is a complete plan. A killed export
    resumes: model files already there (each written atomically) are checked, not redone."""
    if fmt not in MODEL_FORMATS:
        raise SettingError("format", f"must be one of {', '.join(MODEL_FORMATS)}, got {fmt!r}.")
    if batch_size < 1:
        raise SettingError("batch_size", f"must be at least 1, got {batch_size}.")
    out_dir = Path(out_dir)
    classes = classes or space.classes
    in_channels = in_channels or space.input_channels
    settings = {
        "space": {"name": space.name, "hash": space.hash},
        "model_format": fmt,
        "batch_size": batch_size,
        "width_step": width_step,
        "classes": classes,
        "in_channels": in_channels,
    }
    # model files already there are reused (a killed export resumes) only if they were
    # made with these settings: a stem.onnx of another space or batch size must not be
    marker = out_dir / SETTINGS
    if marker.exists() and read_json(marker, "plan settings", LatencyTableError) != settings:
        raise LatencyTableError(
            f"{out_dir}: holds a plan made with other settings (space, format, batch size, "
            "width step, classes or input channels); choose another directory."
        )
    atomic_write_json(marker, settings)
    parts = PlanModules(space, classes, in_channels)
    entries = []
    for job in plan_jobs(space, width_step):
        module, shape = parts.module(job)
        input_shape = [batch_size, *shape]
        relative = job_file(job, fmt)
        path = out_dir / relative
        if path.is_file():
            data = path.read_bytes()
        else:
            data = model_bytes(module, tuple(input_shape), fmt)
            atomic_write_bytes(path, data)
        entries.append(
            {
                "job": job.name,
                "key": job.key,
                "width": job.width,
                "file": relative,
                "input_shape": input_shape,
                # how to time it: a whole network as networks run (caches as it leaves
                # them), every other model as a block inside one (caches cold)
                "timing": "network" if job.key == REFERENCE_JOB else "block",
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
        if progress is not None:
            progress(1)
    data = {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        **settings,
        "space": {**settings["space"], "source": space_source or space.name},
        "input_name": "x",
        "entries": entries,
    }
    atomic_write_json(out_dir / MANIFEST, data)
    return Manifest(out_dir, data)


def load_manifest(plan_dir: str | Path, check_files: bool = True) -> Manifest:
    """A plan directory's manifest, checked: its format, and (``check_files``) that every
    model file is there with its recorded checksum."""
    plan_dir = Path(plan_dir)
    path = plan_dir / MANIFEST
    data = read_json(path, "plan manifest (tfnas lut plan writes one)", LatencyTableError)
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise LatencyTableError(f"{path}: is not a tfnas measurement plan.")
    if data.get("version") != PLAN_VERSION:
        raise LatencyTableError(
            f"{path}: is a plan of version {data.get('version')!r}; this tfnas reads "
            f"version {PLAN_VERSION}."
        )
    validate(ManifestFile, data, str(path), LatencyTableError, entry_place)
    manifest = Manifest(plan_dir, data)
    if check_files:
        for entry in manifest.entries:
            model = manifest.model_path(entry)
            if not model.is_file():
                raise LatencyTableError(f"{model}: listed in {path} but missing.")
            if hashlib.sha256(model.read_bytes()).hexdigest() != entry["sha256"]:
                raise LatencyTableError(
                    f"{model}: differs from the file {path} lists (checksum); make the plan again."
                )
    return manifest


def read_measurements(path: str | Path, manifest: Manifest) -> dict[str, float]:
    """Latencies per job from a CSV (``job,ms``) or JSON-lines file, one line per manifest
    entry (an entry may be named by its ``job`` or its ``file``). A missing, duplicate,
    unknown, negative or non-finite entry is refused with one sentence naming its line."""
    path = Path(path)
    text = read_text(path, "measurements file", LatencyTableError)
    by_name = {e["job"]: e["job"] for e in manifest.entries}
    by_name |= {e["file"]: e["job"] for e in manifest.entries}
    by_name |= {str(manifest.model_path(e)): e["job"] for e in manifest.entries}
    first_line: dict[str, int] = {}
    latencies: dict[str, float] = {}
    for number, record in _records(path, text):
        where = f"{path}: line {number}"
        name = record.get("job", record.get("file", record.get("model")))
        if name is None:
            raise LatencyTableError(f"{where} names no entry (give 'job' or 'file').")
        job = by_name.get(str(name))
        if job is None:
            raise LatencyTableError(f"{where} names {name!r}, which is not an entry of the plan.")
        if job in first_line:
            raise LatencyTableError(
                f"{where} measures {job} a second time (first on line {first_line[job]})."
            )
        ms = _latency(record.get("ms"))
        if ms is None:
            raise LatencyTableError(
                f"{where}: the latency of {job} must be a positive, finite number of ms, got "
                f"{record.get('ms')!r}."
            )
        first_line[job] = number
        latencies[job] = ms
    missing = [e["job"] for e in manifest.entries if e["job"] not in latencies]
    if missing:
        raise LatencyTableError(
            f"{path}: lacks {len(missing)} of the plan's {len(manifest.entries)} entries, "
            f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}."
        )
    return latencies


def _records(path: Path, text: str) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, record) of a CSV with a header or of JSON lines; blank lines skipped."""
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if first.lstrip().startswith("{"):
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LatencyTableError(
                    f"{path}: line {number} is not a JSON object ({exc.msg})."
                ) from None
            if not isinstance(record, dict):
                raise LatencyTableError(f"{path}: line {number} is not a JSON object.")
            yield number, record
        return
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "ms" not in reader.fieldnames:
        raise LatencyTableError(
            f"{path}: a CSV of measurements needs a header with 'job' (or 'file') and 'ms'."
        )
    for record in reader:
        yield reader.line_num, record


# a number as a CSV writes one, in ASCII (float() would also take "1_000", "١٫٥" or " nan ")
_DECIMAL = re.compile(r"[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _latency(value: Any) -> float | None:
    """A positive, finite number of ms: a JSON number (not true or false) or a decimal
    string, else None."""
    if isinstance(value, str):
        ms = float(value) if _DECIMAL.fullmatch(value.strip()) else math.nan
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ms = float(value)
    else:
        return None
    return ms if math.isfinite(ms) and ms > 0 else None


def assemble_table(
    manifest: Manifest,
    latencies: dict[str, float],
    device: dict[str, Any],
    space: SearchSpace | None = None,
) -> LatencyTable:
    """The latency table of ``manifest`` from one latency per entry, made as ``lut build``
    makes its tables and validated as they are (``space``: default, the one the manifest
    names). Deterministic: the same manifest and latencies give the same table, byte for
    byte."""
    data = manifest.data
    space = space or manifest.space
    if (space.name, space.hash) != (data["space"]["name"], data["space"]["hash"]):
        raise LatencyTableError(
            f"{manifest.directory / MANIFEST}: was made for another version of space "
            f"'{space.name}'; make the plan again."
        )
    jobs = plan_jobs(space, int(data["width_step"]))
    planned = {e["job"] for e in manifest.entries}
    if CALL_JOB not in planned:  # a plan made before tfnas timed a call that does no work
        jobs = [job for job in jobs if job.key != CALL_JOB]
    if {job.name for job in jobs} != planned:
        raise LatencyTableError(
            f"{manifest.directory / MANIFEST}: does not list the entries this tfnas plans for "
            f"space '{space.name}'; make the plan again."
        )
    table = table_from_measurements(
        space,
        jobs,
        latencies,
        device={**device, "batch_size": int(data["batch_size"])},
        statistic=str(device.get("statistic", "external")),
        meta={
            "classes": data["classes"],
            "in_channels": data["in_channels"],
            "width_step": data["width_step"],
            "model_format": data["model_format"],
            "measurements": len(jobs),
        },
        measured_at=None,
    )
    table.check_entries(space, str(manifest.directory / MANIFEST))
    return table


__all__ = [
    "Manifest",
    "assemble_table",
    "load_manifest",
    "model_bytes",
    "read_measurements",
    "write_plan",
]
