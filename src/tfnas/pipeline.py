"""The whole chain in one resumable run: latency table -> search -> retrain -> evaluate ->
profile, ending with one summary.

Each step writes into its own sub-folder of the run directory and records its wall time and
result in ``pipeline.json`` (written atomically after every step), so a killed pipeline
started again with the same settings skips the finished steps and resumes the interrupted
one from its own checkpoint. The latency is measured the way the table was built (device,
threads, batch, timing policy): the summary puts target, prediction and measurement side by
side.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .arch import load_architecture
from .data import open_dataset
from .errors import TfnasError, named
from .evaluation import evaluate_weights
from .io import atomic_write_json, check_output, read_json
from .latency.build import build_table
from .latency.check import check_table
from .latency.external import build_external_table
from .latency.measure import LatencyMeter
from .latency.meters import table_meter
from .latency.profile import profile_in_fresh_process
from .latency.stability import recorded_busy
from .latency.table import check_target, load_table, target_at_fraction
from .pipeline_config import PipelineConfig
from .pipeline_summary import PipelineSummary
from .rundir import ARCH_FILE, BEST_WEIGHTS
from .search.config import SearchConfig
from .search.searcher import search
from .space import load_space
from .train import train
from .train_config import TrainConfig

FORMAT = "tfnas-pipeline"
VERSION = 1
STEPS = ("latency table", "search", "retrain", "evaluate", "profile")


@dataclass
class StepRecord:
    seconds: float
    result: dict[str, Any]


class Pipeline:
    """One pipeline run in ``run_dir``; call :meth:`run`."""

    def __init__(
        self,
        config: PipelineConfig,
        run_dir: str | Path,
        log: Callable[[str], None] | None = None,
        build_lut: bool = False,
        runner=None,
        accept_busy_table: bool = False,
    ) -> None:
        config.validate()
        check_output(run_dir, "out", "directory")
        self.build_lut = build_lut
        self.accept_busy_table = accept_busy_table
        # an ExternalRunner: the table is built (and the network profiled) through it
        self.runner = runner
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise TfnasError(
                "tfnas pipeline runs in one process; under torchrun, run `tfnas search` and "
                "`tfnas train` separately."
            )
        self.config = config
        self.run_dir = Path(run_dir)
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.record_path = self.run_dir / "pipeline.json"
        # each step's own run directory, and the files one step hands the next
        self.search_dir = self.run_dir / "search"
        self.train_dir = self.run_dir / "train"
        self.arch_file = self.search_dir / ARCH_FILE
        self.weights_file = self.train_dir / BEST_WEIGHTS
        self.steps: dict[str, StepRecord] = {}
        if self.record_path.exists():
            saved = read_json(self.record_path, "pipeline record", TfnasError)
            if (
                not isinstance(saved, dict)
                or saved.get("format") != FORMAT
                or saved.get("config") != asdict(config)
            ):
                raise TfnasError(
                    f"{self.run_dir}: holds a pipeline with other settings; run it again with "
                    f"the same ones to resume it, or choose another {named('out')}."
                )
            self.steps = {
                name: StepRecord(float(s["seconds"]), s["result"])
                for name, s in saved.get("steps", {}).items()
            }

    # -- bookkeeping ----------------------------------------------------------------------
    def _save(self) -> None:
        atomic_write_json(
            self.record_path,
            {
                "format": FORMAT,
                "version": VERSION,
                "config": asdict(self.config),
                "steps": {name: asdict(record) for name, record in self.steps.items()},
            },
        )

    def _step(
        self, name: str, work: Callable[[], dict[str, Any]], part: str | None = None
    ) -> dict[str, Any]:
        """Run step ``name`` unless an earlier run did; an error of a step with settings of
        its own names them within ``part`` (``search.batch_size``)."""
        if name in self.steps:
            self.log(f"[{name}] done in an earlier run ({self.steps[name].seconds:.0f} s)")
            return self.steps[name].result
        self.log(f"[{name}] ...")
        started = time.perf_counter()
        try:
            result = work()
        except TfnasError as exc:
            if part is None:
                raise
            raise exc.within(part) from None
        self.steps[name] = StepRecord(time.perf_counter() - started, result)
        self._save()
        self.log(f"[{name}] {self.steps[name].seconds:.0f} s")
        return result

    # -- the steps ------------------------------------------------------------------------
    def check_inputs(self):
        """Refuse bad input before any step starts (:meth:`run` calls it; a sweep calls it
        for every target first); returns the search space."""
        space = load_space(self.config.space)
        self._check_inputs(space)
        return space

    def run(self) -> PipelineSummary:
        space = self.check_inputs()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._save()
        lut = self._step("latency table", lambda: self._latency_table(space))
        search = self._step("search", lambda: self._search(space), "search")
        retrain = self._step("retrain", self._retrain, "train")
        evaluation = self._step("evaluate", self._evaluate)
        profile = self._step("profile", self._profile)
        summary = PipelineSummary(
            space=space.name,
            data=self.config.data,
            latency_table=self.config.lut,
            lut=lut,
            target_ms=search["target_ms"],
            predicted_ms=search["predicted_ms"],
            measured_ms=profile["measured_ms"],
            drift=profile.get("drift"),
            measured_drift_corrected_ms=profile.get("measured_drift_corrected_ms"),
            architecture=search["architecture"],
            supernet_standing=search.get("standing"),
            arch_file=str(self.arch_file),
            weights_file=str(self.weights_file),
            top1=evaluation["top1"],
            top5=evaluation["top5"],
            test_images=evaluation["images"],
            params=profile["params"],
            flops=profile["flops"],
            macs=profile["macs"],
            retrain_epochs=retrain["epochs"],
            step_seconds={name: self.steps[name].seconds for name in STEPS},
        )
        summary.save(self.run_dir)
        return summary

    def _check_inputs(self, space) -> None:
        """Refuse bad input before any step starts: the table (when there is one already),
        the target against its feasible range, and the data source."""
        c = self.config
        if c.arch is not None:
            load_architecture(c.arch, space)
        if Path(c.lut).exists():
            table = load_table(c.lut, space)
            if c.arch is None and "search" not in self.steps:
                check_target(space, table, self._target_ms(space, table))
            external = table.device.get("device") == "external"
            if external and self.runner is None and "profile" not in self.steps:
                raise TfnasError(
                    f"{c.lut}: was measured by an external runner; pass {named('runner')} so "
                    "that the searched network is timed on the same device."
                )
        elif not self.build_lut and "search" not in self.steps:
            raise TfnasError(
                f"{c.lut}: no such latency table; correct {named('lut')}, or pass "
                f"{named('build_lut')} to measure one there on this machine (minutes: "
                "tfnas-small about 3 on a CPU)."
            )
        open_dataset(
            c.data,
            "train",
            image_size=space.input_size,
            channels=space.input_channels,
            root=c.data_root,
        )

    def _target_ms(self, space, table) -> float | None:
        c = self.config
        if c.target_ms is not None or c.target_fraction is None:
            return c.target_ms
        return target_at_fraction(space, table, c.target_fraction)

    def _latency_table(self, space) -> dict[str, Any]:
        return ensure_table(self.config, space, self.log, self.runner, self.accept_busy_table)

    def _search(self, space) -> dict[str, Any]:
        c = self.config
        table = load_table(c.lut, space)
        target = self._target_ms(space, table)
        if c.arch is not None:  # given, not searched: the step only files it with the run
            arch, _ = load_architecture(c.arch, space)
            arch.save(self.arch_file)
            predicted = table.predict(space, arch)
            return {
                "target_ms": target if target is not None else predicted,
                "predicted_ms": predicted,
                "architecture": arch.describe(),
                "epochs": 0,
                "given": c.arch,
            }
        config = SearchConfig(
            space=c.space,
            lut=c.lut,
            target_ms=target,
            data=c.data,
            data_root=c.data_root,
            seed=c.seed,
            device=c.device,
            **c.search,
        )
        # the space and the table this step has loaded already: each file is read once
        result = search(config, self.search_dir, resume=True, space=space, table=table)
        # a network that misses the target is not retrained: the run stops here, exit 3
        result.require_target_met(config)
        standing = result.standing
        return {
            "target_ms": target,
            "predicted_ms": result.predicted_ms,
            "architecture": result.arch.describe(),
            "epochs": config.epochs,
            # where it stands among random networks at the target, as its supernet scores
            # them (tfnas.search.selection.standing); None when not scored
            "standing": {k: v for k, v in standing.items() if k != "reference_scores"}
            if standing
            else None,
        }

    def _retrain(self) -> dict[str, Any]:
        c = self.config
        config = TrainConfig(
            arch=str(self.arch_file),
            space=c.space,
            data=c.data,
            data_root=c.data_root,
            seed=c.seed,
            device=c.device,
            **c.train,
        )
        result = train(config, self.train_dir, resume=True)
        last = result.last
        return {
            "epochs": result.epochs,
            "best_top1": result.best_top1,
            "last_train_acc": last.get("train_acc"),
        }

    def _evaluate(self) -> dict[str, Any]:
        c = self.config
        return evaluate_weights(
            self.arch_file,
            self.weights_file,
            c.data,
            space=c.space,
            data_root=c.data_root,
            device=c.device,
        )

    def _profile(self) -> dict[str, Any]:
        """The searched network timed as the table's blocks were, in a fresh process
        (:func:`~tfnas.latency.profile.profile_in_fresh_process`)."""
        c = self.config
        profile = profile_in_fresh_process(self.arch_file, c.lut, c.space, self.runner)
        keys = ("measured_ms", "device", "params", "flops", "macs")
        out = {k: profile[k] for k in keys}
        out["drift"] = profile.get("drift")
        out["measured_drift_corrected_ms"] = profile.get("measured_drift_corrected_ms")
        return out


def ensure_table(
    config: PipelineConfig,
    space,
    log: Callable[[str], None] = lambda line: None,
    runner=None,
    accept_busy_table: bool = False,
) -> dict[str, Any]:
    """The pipeline's latency table: reused when ``config.lut`` exists, else built on this
    machine, or through the external ``runner`` (resumable), and calibrated on whole
    networks; returns how it was made. A table built on a busy machine, or one its own
    check finds unreliable, is refused (and measured again on the next run) unless
    ``accept_busy_table``."""
    c = config
    path = Path(c.lut)
    if path.exists():
        table = load_table(path, space)
        return {
            "built": False,
            "build_seconds": table.meta.get("build_seconds"),
            "calibrated": table.calibration is not None,
        }
    meter = LatencyMeter(c.lut_device, threads=c.lut_threads, batch_size=c.lut_batch_size)
    where = f"through {runner.command!r}" if runner is not None else f"on {c.lut_device}"
    log(f"building {path} {where} (a killed build resumes)")
    building = path.with_name(path.name + ".uncalibrated")
    if building.exists():  # built before a kill during the calibration
        table = load_table(building, space)
    elif runner is not None:
        table = build_external_table(
            space, runner, building, resume=True, space_source=c.space, progress=False
        )
    else:
        table = build_table(space, meter, building, resume=True)
    if runner is not None:
        meter = table_meter(table, runner=runner)
    result: dict[str, Any] = {
        "built": True,
        "build_seconds": table.meta.get("build_seconds"),
        "calibrated": False,
    }
    busy = recorded_busy(table.meta)
    problems = [f"the machine was busy while it was measured ({busy})" if busy else None]
    if c.calibrate_archs:
        log(f"calibrating on {c.calibrate_archs} whole random networks")
        check = check_table(space, table, meter, c.calibrate_archs, c.seed, calibrate=True)
        problems.append(check.unreliable)
        table = check.calibrated(table)
        loo = check.after_leave_one_out
        result.update(
            calibrated=True,
            leave_one_out_median_pct=loo["median_abs_pct"],
            leave_one_out_within_10pct=loo["within_10pct"],
        )
    problem = next((p for p in problems if p), None)
    if problem and not accept_busy_table:
        building.unlink()  # the next run measures it again
        raise TfnasError(
            f"{path}: {problem}; the pipeline stops before searching on it. Run it again with "
            f"nothing else on the machine, or pass {named('accept_busy_table')} to go on."
        )
    table.save(path)
    building.unlink()
    return result


def run_pipeline(
    config: PipelineConfig,
    run_dir: str | Path,
    log: Callable[[str], None] | None = None,
    build_lut: bool = False,
    runner=None,
    accept_busy_table: bool = False,
) -> PipelineSummary:
    """Run (or resume) the whole chain and return its summary (also in ``summary.json``).
    A missing latency table is built only with ``build_lut``; an external ``runner``
    (:class:`~tfnas.latency.external.ExternalRunner`) builds it and times the network."""
    return Pipeline(config, run_dir, log, build_lut, runner, accept_busy_table).run()


__all__ = ["PipelineConfig", "Pipeline", "PipelineSummary", "run_pipeline"]
