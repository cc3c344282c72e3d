"""``tfnas report RUN_DIR``: what a search, a retraining or a whole pipeline did, as one
self-contained HTML page (figures embedded) plus the same figures as PNG files.

The kind of run is read off its files: a search run has ``metrics.jsonl`` rows with operation
probabilities, a training run rows with test accuracy, a pipeline run a ``pipeline.json``
with both runs below it.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..arch import Architecture, architecture_from_dict, load_architecture
from ..errors import TfnasError
from ..io import atomic_write_bytes, atomic_write_text, read_json
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


@dataclass
class Report:
    html_path: Path
    figure_paths: list[Path]


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise TfnasError(f"{run_dir}: holds no metrics.jsonl, so it is not a tfnas run directory.")
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
    data = read_json(run_dir / "config.json", "run configuration", TfnasError)
    if not isinstance(data, dict):
        raise TfnasError(f"{run_dir / 'config.json'}: is not a tfnas run configuration.")
    return data


def search_section(run_dir: Path) -> Section:
    rows = _rows(run_dir)
    if "op_probs" not in rows[-1]:
        raise TfnasError(f"{run_dir}: is not a search run (its metrics have no op_probs).")
    config = _config(run_dir)
    space = load_space(config["space"])
    last = rows[-1]
    arch_file = run_dir / "arch.json"
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
    for name in ("last.pt", "best.pt"):
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
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        return Section("Pipeline", [("state", "not finished yet (no summary.json)")])
    s = read_json(summary_path, "pipeline summary", TfnasError)
    facts = [
        ("target / predicted / measured latency",
         f"{s['target_ms']:.4f} / {s['predicted_ms']:.4f} / {s['measured_ms']:.4f} ms"),
        ("test top-1 / top-5", f"{s['top1']:.2%} / {s['top5']:.2%}"),
        ("params / FLOPs", f"{s['params'] / 1e6:.3f}M / {s['flops'] / 1e6:.1f}M"),
    ] + [(f"time: {k}", f"{v:.0f} s") for k, v in s["step_seconds"].items()]  # fmt: skip
    return Section("Pipeline summary", facts)


def build_sections(run_dir: Path) -> list[Section]:
    """The sections for whatever kind of run ``run_dir`` holds."""
    if not run_dir.is_dir():
        raise TfnasError(f"{run_dir}: no such run directory.")
    if (run_dir / "pipeline.json").is_file():
        sections = [pipeline_section(run_dir)]
        searched = (run_dir / "search" / "metrics.jsonl").is_file()
        if searched:
            sections.append(search_section(run_dir / "search"))
        if (run_dir / "train" / "metrics.jsonl").is_file():
            sections.append(training_section(run_dir / "train", with_architecture=not searched))
        return sections
    rows = _rows(run_dir)
    return [search_section(run_dir) if "op_probs" in rows[-1] else training_section(run_dir)]


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Report:
    """Write ``report.html`` and the figures (``report/*.png``) into ``out_dir`` (default:
    the run directory)."""
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir
    sections = build_sections(run_dir)
    paths = []
    for section in sections:
        for fig in section.figures:
            path = out / "report" / f"{fig.name}.png"
            atomic_write_bytes(path, fig.png)
            paths.append(path)
    html_path = out / "report.html"
    atomic_write_text(html_path, render_html(run_dir, sections))
    return Report(html_path, paths)


def render_html(run_dir: Path, sections: list[Section]) -> str:
    """One self-contained page; a script counts the figures that rendered (the count is
    what a headless browser test reads back)."""
    total = sum(len(s.figures) for s in sections)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>tfnas report: {html.escape(run_dir.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td{padding:3px 12px;border-bottom:1px solid"
        " #ddd;vertical-align:top}td:first-child{color:#555;white-space:nowrap}"
        "figure{margin:1.5em 0}img{max-width:100%}figcaption{color:#555}</style>",
        "</head><body>",
        f"<h1>tfnas report: {html.escape(str(run_dir))}</h1>",
        f"<p id='figures-status' data-total='{total}'>figures: not rendered yet</p>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2><table>")
        parts += [
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in section.facts
        ]
        parts.append("</table>")
        for fig in section.figures:
            data = base64.b64encode(fig.png).decode("ascii")
            parts.append(
                f"<figure><img class='figure' alt='{html.escape(fig.title)}' "
                f"src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(fig.title)}</figcaption></figure>"
            )
    parts.append(
        "<script>window.addEventListener('load',function(){"
        "var imgs=document.querySelectorAll('img.figure'),ok=0;"
        "imgs.forEach(function(i){if(i.complete&&i.naturalWidth>0)ok++;});"
        "document.getElementById('figures-status').textContent="
        "'figures rendered: '+ok+' of '+imgs.length;});</script>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


__all__ = ["Report", "build_sections", "write_report"]
