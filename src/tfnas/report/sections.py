"""What a report says of a run directory: its sections (facts and figures), read off the
run's files. A search run has ``metrics.jsonl`` rows with operation probabilities, a
training run rows with test accuracy, a pipeline run a ``pipeline.json`` with both runs
below it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..arch import Architecture, architecture_from_dict, load_architecture
from ..errors import TfnasError
from ..io import read_json
from ..pipeline_summary import SUMMARY_FILE, PipelineSummary
from ..rundir import ARCH_FILE, BEST_WEIGHTS, CONFIG_FILE, METRICS_FILE, TRAIN_CHECKPOINT
from ..search.selection import standing_sentence
from ..space import SearchSpace, load_space
from . import figures


@dataclass
class Figure:
    name: str  # file stem of the PNG
    title: str
    png: bytes


@dataclass
class Section:
    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise TfnasError(f"{run_dir}: holds no {METRICS_FILE}, so it is not a tfnas run directory.")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise TfnasError(f"{path}: line {n} is not JSON.") from None
    if not rows:
        raise TfnasError(f"{path}: holds no finished epoch yet; report after the first one.")
    return rows


def _config(run_dir: Path) -> dict[str, Any]:
    data = read_json(run_dir / CONFIG_FILE, "run configuration", TfnasError)
    if not isinstance(data, dict):
        raise TfnasError(f"{run_dir / CONFIG_FILE}: is not a tfnas run configuration.")
    return data


def search_section(run_dir: Path) -> Section:
    rows = _rows(run_dir)
    if "op_probs" not in rows[-1]:
        raise TfnasError(f"{run_dir}: is not a search run (its metrics have no op_probs).")
    config = _config(run_dir)
    space = load_space(config["space"])
    last = rows[-1]
    arch_file = run_dir / ARCH_FILE
    arch = load_architecture(arch_file, space)[0] if arch_file.is_file() else None
    facts = [
        ("space", space.name),
        ("data", f"{config['data']}" + (f", {config['limit']} images" if config["limit"] else "")),
        ("epochs", f"{len(rows)} of {config['epochs']} (warm-up {config.get('warmup_epochs')})"),
        (
            "sampling / depth / width",
            f"{config['sampling']} / {config['depth']} / {config['width']}",
        ),  # fmt: skip
        ("target", f"{last['target_ms']:.4f} ms"),
        (
            "derived latency (last epoch)",
            f"{last['derived_latency_ms']:.4f} ms "
            f"({(last['derived_latency_ms'] / last['target_ms'] - 1) * 100:+.3f}%)",
        ),  # fmt: skip
        ("architecture", (arch.describe() if arch else last["arch"])),
    ]
    if "op_entropy_ratio" in last:
        facts.insert(
            -1,
            (
                "has the supernet learned? (last epoch)",
                f"sampled-path accuracy {last['weight_acc']:.1%}, derived path "
                f"{last['derived_arch_split_acc']:.1%} on the architecture split; op entropy "
                f"{last['op_entropy_ratio']:.2f} of uniform, top op probability "
                f"{last['top_op_prob']:.2f} on average",
            ),
        )
    if last.get("standing"):
        facts.append(("supernet standing", standing_sentence(last["standing"])))
    if last.get("selection"):
        chosen = last["selection"]["chosen"]
        count = len(last["selection"]["candidates"])
        facts.append(("selection after scaling", f"{chosen}, best-scored of {count} candidates"))
    section = Section("Search", facts)
    section.figures += [
        Figure("latency", "Latency per epoch", figures.latency_per_epoch(rows)),
        Figure(
            "op_probabilities", "Operation probabilities", figures.op_probabilities(rows, space)
        ),  # fmt: skip
        Figure(
            "depth_probabilities", "Depth probabilities", figures.depth_probabilities(rows, space)
        ),  # fmt: skip
    ]
    if "op_entropy_ratio" in last:
        section.figures.append(
            Figure("op_decisions", "How decided the ops are", figures.op_decisions(rows))
        )
    if arch is not None:
        section.figures += _architecture_figures(arch, space)
    section.figures.append(
        Figure(
            "search_curves",
            "Search loss and accuracy",
            figures.curves(
                rows,
                [
                    ("weight_loss", "weight steps"),
                    ("arch_loss", "architecture steps"),
                    ("weight_acc", "weight steps (sampled paths)"),
                    ("arch_acc", "architecture split"),
                    ("derived_arch_split_acc", "derived network, architecture split"),
                ],
                "Search",
            ),
        )
    )
    return section


def training_section(run_dir: Path, with_architecture: bool = True) -> Section:
    rows = _rows(run_dir)
    if "test_top1" not in rows[-1]:
        raise TfnasError(f"{run_dir}: is not a training run (its metrics have no test_top1).")
    config = _config(run_dir)
    arch, space = _trained_architecture(run_dir, config)
    best = max(rows, key=lambda r: r.get("ema_top1", r["test_top1"]))
    facts = [
        ("data", config["data"] + (f", {config['limit']} images" if config.get("limit") else "")),
        ("epochs", f"{len(rows)} of {config['epochs']}"),
        (
            "best test top-1",
            f"{best.get('ema_top1', best['test_top1']):.2%} (epoch {best['epoch'] + 1})",
        ),  # fmt: skip
        ("training time", f"{sum(r['seconds'] for r in rows):.0f} s"),
        ("architecture", arch.describe()),
    ]
    section = Section("Retraining", facts)
    section.figures.append(
        Figure(
            "training_curves",
            "Training loss and accuracy",
            figures.curves(
                rows,
                [
                    ("train_loss", "train"),
                    ("test_loss", "test"),
                    ("train_acc", "train"),
                    ("test_top1", "test top-1"),
                    ("ema_top1", "test top-1 (EMA)"),
                ],
                "Retraining",
            ),
        )
    )
    if with_architecture:
        section.figures += _architecture_figures(arch, space)
    return section


def _trained_architecture(
    run_dir: Path, config: dict[str, Any]
) -> tuple[Architecture, SearchSpace]:
    import torch

    space = load_space(config["space"]) if config.get("space") else None
    for name in (TRAIN_CHECKPOINT, BEST_WEIGHTS):
        path = run_dir / name
        if path.is_file():
            state = torch.load(path, map_location="cpu", weights_only=True)
            arch = architecture_from_dict(json.loads(state["arch"]), str(path))
            return arch, space or load_space(arch.space_name)
    return load_architecture(config["arch"], space)


def _architecture_figures(arch: Architecture, space: SearchSpace) -> list[Figure]:
    return [
        Figure("architecture", "Architecture", figures.architecture_diagram(arch, space)),
        Figure("widths", "Widths per block", figures.widths(arch, space)),
    ]


def pipeline_section(run_dir: Path) -> Section:
    if not (run_dir / SUMMARY_FILE).is_file():
        return Section("Pipeline", [("state", f"not finished yet (no {SUMMARY_FILE})")])
    s = PipelineSummary.load(run_dir)
    facts = [
        ("target / predicted / measured latency",
         f"{s.target_ms:.4f} / {s.predicted_ms:.4f} / {s.measured_ms:.4f} ms"),
        ("test top-1 / top-5", f"{s.top1:.2%} / {s.top5:.2%}"),
        ("params / FLOPs", f"{s.params / 1e6:.3f}M / {s.flops / 1e6:.1f}M"),
    ] + [(f"time: {k}", f"{v:.0f} s") for k, v in s.step_seconds.items()]  # fmt: skip
    return Section("Pipeline summary", facts)


def build_sections(run_dir: Path) -> list[Section]:
    """The sections for whatever kind of run ``run_dir`` holds."""
    if not run_dir.is_dir():
        raise TfnasError(f"{run_dir}: no such run directory.")
    if (run_dir / "pipeline.json").is_file():
        sections = [pipeline_section(run_dir)]
        searched = (run_dir / "search" / METRICS_FILE).is_file()
        if searched:
            sections.append(search_section(run_dir / "search"))
        if (run_dir / "train" / METRICS_FILE).is_file():
            sections.append(training_section(run_dir / "train", with_architecture=not searched))
        return sections
    rows = _rows(run_dir)
    return [search_section(run_dir) if "op_probs" in rows[-1] else training_section(run_dir)]


__all__ = [
    "Figure",
    "Section",
    "build_sections",
    "pipeline_section",
    "search_section",
    "training_section",
]
