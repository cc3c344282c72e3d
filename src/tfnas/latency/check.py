"""Check a latency table against whole networks, and fit its calibration.

Sum-of-blocks predictions are biased (a whole network has call overheads and cache effects
that isolated blocks don't), so the table is checked against measured random architectures
and can carry a linear correction ``measured ~ scale * predicted (+ per_block * blocks) +
offset`` fitted on them: the per-block term where it predicts networks it did not see
better (:func:`choose_calibration`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..arch import random_architecture
from ..errors import SettingError, TfnasError
from ..space import SearchSpace
from ..text import text_table
from .drift import Drift, say_no_reference, table_reference
from .measure import LatencyMeter
from .meters import measure_networks
from .settings import CheckSettings
from .table import Calibration, LatencyTable, LatencyTableError


def error_stats(predicted: list[float], measured: list[float]) -> dict[str, float]:
    """Absolute percentage errors of predictions against measurements."""
    errors = [(p - m) / m * 100 for p, m in zip(predicted, measured, strict=True)]
    absolute = [abs(e) for e in errors]
    worst = max(range(len(errors)), key=lambda i: absolute[i])
    return {
        "mean_abs_pct": statistics.fmean(absolute),
        "median_abs_pct": statistics.median(absolute),
        "within_5pct": sum(a <= 5 for a in absolute) / len(absolute),
        "within_10pct": sum(a <= 10 for a in absolute) / len(absolute),
        "worst_pct": errors[worst],
    }


def fit_calibration(
    raw: list[float], measured: list[float], blocks: list[int] | None = None
) -> Calibration:
    """Least-squares fit of the measurements on the raw predictions (a line), or with
    ``blocks`` on the raw predictions and the networks' block counts."""
    if len(raw) < 2:
        raise TfnasError("calibration needs at least 2 measured architectures.")
    x = np.asarray(raw, dtype=np.float64)
    y = np.asarray(measured, dtype=np.float64)
    columns = [x, np.ones_like(x)] + ([np.asarray(blocks, np.float64)] if blocks else [])
    if np.ptp(x) == 0:
        return Calibration(1.0, float(y.mean() - x.mean()), len(raw))
    coef = np.linalg.lstsq(np.stack(columns, axis=1), y, rcond=None)[0]
    per_block = float(coef[2]) if blocks else 0.0
    return Calibration(float(coef[0]), float(coef[1]), len(raw), per_block)


def leave_one_out(
    raw: list[float], measured: list[float], blocks: list[int] | None = None
) -> list[float]:
    """Each architecture predicted by a calibration fitted on all the others."""
    out = []
    for i in range(len(raw)):
        rest = [j for j in range(len(raw)) if j != i]
        cal = fit_calibration(
            [raw[j] for j in rest],
            [measured[j] for j in rest],
            [blocks[j] for j in rest] if blocks else None,
        )
        out.append(cal.apply(raw[i], blocks[i] if blocks else 0))
    return out


# the calibration scales a table built and checked on a quiet machine lies within (2-core
# CPU here: 0.9-1.1 with the call overhead taken off; a table built beside other work: 2.3)
SCALE_EXPECTED = (2 / 3, 3 / 2)
# the fewest networks a check judges a table unreliable on
JUDGED_FROM_ARCHS = 10
# the fewest networks a fit with a per-block term is tried on (three parameters)
PER_BLOCK_MIN_ARCHS = 6


def choose_calibration(
    raw: list[float], measured: list[float], blocks: list[int]
) -> tuple[Calibration, list[float], dict[str, dict[str, float]]]:
    """The calibration whose leave-one-out error is smaller: a line, or a line with a
    per-block term (which runtime pays what per block is for the measurements to say: on
    2 CPU cores it halved the error of ONNX Runtime tables and helped torch's on the knots
    only). Returns it, its leave-one-out predictions, and both models' errors."""
    line = leave_one_out(raw, measured)
    errors = {"line": error_stats(line, measured)}
    if len(raw) < PER_BLOCK_MIN_ARCHS or len(set(blocks)) < 2:
        return fit_calibration(raw, measured), line, errors
    per_block = leave_one_out(raw, measured, blocks)
    errors["per_block"] = error_stats(per_block, measured)
    if errors["per_block"]["median_abs_pct"] < errors["line"]["median_abs_pct"]:
        return fit_calibration(raw, measured, blocks), per_block, errors
    return fit_calibration(raw, measured), line, errors


@dataclass
class CheckResult:
    rows: list[dict[str, Any]]
    before: dict[str, float]
    calibration: Calibration | None = None
    after: dict[str, float] | None = None
    after_leave_one_out: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    drift: Drift | None = None
    # the overhead model the calibration was fitted with (None: the table's own, unchanged)
    overhead_model: str | None = None

    def calibrated(self, table: LatencyTable) -> LatencyTable:
        """``table`` with this check's calibration, its reference network re-anchored to this
        check's timing of it: the calibration fixes the prediction's scale to the machine as
        it ran during this check, so later drift is counted from here."""
        if self.overhead_model is not None:
            table = table.with_overhead_model(self.overhead_model)
        calibrated = table.with_calibration(self.calibration)
        if self.drift is not None:
            reference = dict(calibrated.meta["reference"])
            reference["ms"] = self.drift.now_ms
            reference["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            calibrated.meta = {**calibrated.meta, "reference": reference}
        return calibrated

    def report(self, lut: str) -> str:
        """The check as text: one row per network, the errors' summary before (and after)
        calibrating ``lut``, and the drift of the machine since the table was built."""
        rows = [
            (
                r["seed"],
                f"{r['predicted_ms']:.3f}",
                f"{r['measured_ms']:.3f}",
                f"{(r['predicted_ms'] - r['measured_ms']) / r['measured_ms'] * 100:+.1f}%",
            )
            for r in self.rows
        ]
        lines = [text_table(rows, ("seed", "predicted ms", "measured ms", "error"))]
        if self.drift is not None:
            lines.append(self.drift.sentence())
        lines.append(_errors_line("table as it was", self.before))
        if self.drift is not None:
            lines.append(_errors_line("drift-corrected", self.extra["before_drift_corrected"]))
        if self.calibration is not None:
            cal = self.calibration
            lines += [
                f"calibration: {cal.describe()}"
                + (f", overhead model {self.overhead_model}" if self.overhead_model else "")
                + f" (stored in {lut})",
                _errors_line("calibrated (in-sample)", self.after),
                _errors_line("calibrated (leave-one-out)", self.after_leave_one_out),
            ]
        return "\n".join(lines)

    @property
    def unreliable(self) -> str | None:
        """What shows the calibrated table unreliable: it still misses by more than a quiet
        machine's does, or needed a scale far from 1 to fit (the table's figures and this
        machine's now are far apart). None where neither, or where fewer than
        ``JUDGED_FROM_ARCHS`` networks were checked (too few to tell a busy machine from
        chance)."""
        loo, cal = self.after_leave_one_out, self.calibration
        if len(self.rows) < JUDGED_FROM_ARCHS:
            return None
        if loo is not None and (loo["median_abs_pct"] > 5 or loo["within_10pct"] < 0.9):
            return "the calibrated table still misses whole networks by more than usual"
        if cal is not None and not SCALE_EXPECTED[0] <= cal.scale <= SCALE_EXPECTED[1]:
            return f"the calibration had to scale the table by {cal.scale:.2f}"
        return None

    @property
    def misses(self) -> str | None:
        """:attr:`unreliable` with what it suggests and what to do, as a warning."""
        if self.unreliable is None:
            return None
        return (
            f"{self.unreliable}; was the machine busy while the table was built or checked? "
            "Rebuild or recheck it on a quiet machine."
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "archs": len(self.rows),
            "before": self.before,
            "rows": self.rows,
            **self.extra,
        }
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
            out["overhead_model"] = self.overhead_model
            out["after"] = self.after
            out["after_leave_one_out"] = self.after_leave_one_out
        return out


def _errors_line(name: str, st: dict[str, float]) -> str:
    return (
        f"{name}: mean |error| {st['mean_abs_pct']:.2f}%, median {st['median_abs_pct']:.2f}%, "
        f"within 5%: {st['within_5pct']:.0%}, within 10%: {st['within_10pct']:.0%}, "
        f"worst {st['worst_pct']:+.1f}%"
    )


def _calibrate(
    result: CheckResult,
    space: SearchSpace,
    table: LatencyTable,
    archs: list,
    measured: list[float],
) -> None:
    """Fit the calibration, and choose with it the overhead model: of every model the table
    can predict with and both fits, the pair whose leave-one-out error is smallest (the
    model that predicts raw sums best need not calibrate best: an entry's intercept is a
    noisy figure, an empty call's cost one constant)."""
    blocks = [r["blocks"] for r in result.rows]
    best, by_model = None, {}
    for model in table.overhead_models():
        variant = table.with_overhead_model(model)
        raw = [variant.raw_predict(space, arch) for arch in archs]
        cal, held_out, by_model[model] = choose_calibration(raw, measured, blocks)
        if not (math.isfinite(cal.scale) and cal.scale > 0):
            continue  # slower networks predicted faster: no calibration, a broken table
        median = error_stats(held_out, measured)["median_abs_pct"]
        if best is None or median < best[0]:
            best = (median, model, cal, raw, held_out)
    if best is None:
        raise LatencyTableError(
            "the measured networks do not grow with the table's predictions (every fit's "
            "scale is at or below 0), so no calibration is written: the table or these "
            "measurements are broken; build the table again on a quiet machine."
        )
    _, model, cal, raw, held_out = best
    result.calibration = cal
    result.overhead_model = model if len(by_model) > 1 else None
    in_sample = [cal.apply(x, n) for x, n in zip(raw, blocks, strict=True)]
    result.after = error_stats(in_sample, measured)
    result.after_leave_one_out = error_stats(held_out, measured)
    result.extra["leave_one_out_by_model"] = by_model


def check_table(
    space: SearchSpace,
    table: LatencyTable,
    meter: LatencyMeter,
    archs: int,
    seed: int = CheckSettings.seed,
    calibrate: bool = False,
    progress=None,
    check_drift: bool = True,
    on_knots: bool = False,
) -> CheckResult:
    """Measure ``archs`` random architectures whole and compare with the table's predictions.

    ``before`` uses the table's predictions as they stand (with any calibration it already
    has); with ``calibrate`` a new calibration is fitted on the uncalibrated sums and its
    errors reported in-sample and leave-one-out (each network predicted by a fit that did not
    see it). ``progress`` is called with 1 after every timing window. The table's reference
    network is timed among the networks (``check_drift``): the machine's drift since the
    table was built or last calibrated, and the errors against drift-corrected measurements
    besides the raw ones. ``on_knots`` moves every width of the random networks to the
    nearest width the table measured: the networks a search with ``--width-grid knots``
    produces, and the fair check of a table for a runtime that steps between its knots.
    """
    if archs < 1:
        raise SettingError("archs", f"must be at least 1, got {archs}.")
    if calibrate and archs < 3:
        raise SettingError("archs", f"must be at least 3 to calibrate, got {archs}.")
    classes = table.meta.get("classes")
    in_channels = table.meta.get("in_channels")
    reference = table_reference(table, space) if check_drift else None
    archs_list = [random_architecture(space, seed + i) for i in range(archs)]
    if on_knots:
        archs_list = [table.on_knots(space, arch) for arch in archs_list]
    # the table's reference network is timed with the others, its rounds interleaved with
    # theirs: the drift comes from the same moments as the measurements it corrects
    timed = archs_list + ([reference[0]] if reference is not None else [])
    measured_ms = measure_networks(space, timed, meter, classes, in_channels, progress)
    drift = Drift(reference[1], measured_ms.pop()) if reference is not None else None
    if check_drift and reference is None:
        say_no_reference("the table")
    rows = []
    for i, (arch, measured) in enumerate(zip(archs_list, measured_ms, strict=True)):
        raw = table.raw_predict(space, arch)
        blocks = sum(1 for _ in arch.blocks(space))
        rows.append(
            {
                "seed": seed + i,
                "arch": arch.describe(),
                "blocks": blocks,
                "raw_ms": raw,
                "predicted_ms": table.calibrated(raw, blocks),
                "measured_ms": measured,
            }
        )
    measured = [r["measured_ms"] for r in rows]
    result = CheckResult(rows, error_stats([r["predicted_ms"] for r in rows], measured))
    result.extra["drift"] = drift.to_dict() if drift is not None else None
    if drift is not None:
        corrected = [drift.corrected(m) for m in measured]
        for row, value in zip(rows, corrected, strict=True):
            row["measured_drift_corrected_ms"] = value
        result.drift = drift
        result.extra["before_drift_corrected"] = error_stats(
            [r["predicted_ms"] for r in rows], corrected
        )
    if calibrate:
        _calibrate(result, space, table, archs_list, measured)
    return result
