"""The result of a pipeline run: what was searched, how fast it runs against its target,
how accurate it retrained, and what each step cost. It owns its JSON form
(``summary.json``), which the command line, the sweep and the report read back."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TfnasError
from .io import atomic_write_json, read_json
from .latency.drift import Drift
from .search.selection import standing_sentence

SUMMARY_FILE = "summary.json"


def pct(value: float, reference: float) -> float:
    """How far ``value`` lies from ``reference``, in percent of it."""
    return (value - reference) / reference * 100


@dataclass(frozen=True)
class PipelineSummary:
    space: str
    data: str
    latency_table: str
    # how the table was made: built (and in how long), reused, calibrated
    lut: dict[str, Any]
    target_ms: float
    predicted_ms: float
    measured_ms: float
    # the machine's drift since the table was built, and the measurement corrected by it
    # (None for a table that records no reference network)
    drift: dict[str, Any] | None
    measured_drift_corrected_ms: float | None
    architecture: str
    # where the network stands among random ones at the target, as its supernet scores them
    supernet_standing: dict[str, Any] | None
    arch_file: str
    weights_file: str
    top1: float
    top5: float
    test_images: int
    params: int
    flops: int
    macs: int
    retrain_epochs: int
    step_seconds: dict[str, float]

    @property
    def total_seconds(self) -> float:
        return sum(self.step_seconds.values())

    @property
    def predicted_vs_target_pct(self) -> float:
        return pct(self.predicted_ms, self.target_ms)

    @property
    def measured_vs_target_pct(self) -> float:
        return pct(self.measured_ms, self.target_ms)

    @property
    def measured_vs_predicted_pct(self) -> float:
        return pct(self.measured_ms, self.predicted_ms)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field, and the derived errors and total beside them."""
        derived = ("predicted_vs_target_pct", "measured_vs_target_pct",
                   "measured_vs_predicted_pct", "total_seconds")  # fmt: skip
        return dataclasses.asdict(self) | {name: getattr(self, name) for name in derived}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineSummary:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})

    def save(self, run_dir: Path) -> None:
        atomic_write_json(Path(run_dir) / SUMMARY_FILE, self.to_dict())

    @classmethod
    def load(cls, run_dir: Path) -> PipelineSummary:
        path = Path(run_dir) / SUMMARY_FILE
        data = read_json(path, "pipeline summary", TfnasError)
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError) as exc:
            raise TfnasError(f"{path}: is not a tfnas pipeline summary ({exc}).") from None

    def report(self) -> str:
        """A few aligned lines for a terminal."""
        rows = [
            ("space / data", f"{self.space} / {self.data} ({self.test_images} test images)"),
            ("architecture", self.architecture),
            ("target latency", f"{self.target_ms:.4f} ms"),
            (
                "predicted latency",
                f"{self.predicted_ms:.4f} ms ({self.predicted_vs_target_pct:+.3f}% vs target)",
            ),
            (
                "measured latency",
                f"{self.measured_ms:.4f} ms ({self.measured_vs_target_pct:+.2f}% vs target, "
                f"{self.measured_vs_predicted_pct:+.2f}% vs predicted)",
            ),
        ]
        if self.drift and self.measured_drift_corrected_ms is not None:
            drift = Drift(self.drift["reference_then_ms"], self.drift["reference_now_ms"])
            corrected = self.measured_drift_corrected_ms
            rows.append(
                (
                    "drift-corrected",
                    f"{corrected:.4f} ms ({pct(corrected, self.target_ms):+.2f}% vs target): "
                    + drift.sentence(),
                )
            )
        if self.supernet_standing:
            rows.append(("supernet standing", standing_sentence(self.supernet_standing)))
        rows += [
            ("test top-1 / top-5", f"{self.top1:.2%} / {self.top5:.2%}"),
            (
                "params / FLOPs",
                f"{self.params / 1e6:.3f}M / {self.flops / 1e6:.1f}M ({self.macs / 1e6:.1f}M MACs)",
            ),
        ]
        for name, seconds in self.step_seconds.items():
            rows.append((f"time: {name}", f"{seconds:.0f} s{self._step_note(name)}"))
        total = self.total_seconds
        rows.append(("time: total", f"{total:.0f} s ({total / 60:.1f} min)"))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)

    def _step_note(self, name: str) -> str:
        if name == "retrain":
            return f" ({self.retrain_epochs} epochs)"
        if name != "latency table" or self.lut["built"]:
            return ""
        built = self.lut.get("build_seconds")
        return f" (reused; built in {built:.0f} s)" if built else " (reused)"


__all__ = ["SUMMARY_FILE", "PipelineSummary", "pct"]
