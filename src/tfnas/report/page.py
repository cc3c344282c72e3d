"""The report as one self-contained HTML page (figures embedded) plus the same figures as
PNG files."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from ..io import atomic_write_bytes, atomic_write_text
from .sections import Section, build_sections


@dataclass
class Report:
    html_path: Path
    figure_paths: list[Path]


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


__all__ = ["Report", "render_html", "write_report"]
