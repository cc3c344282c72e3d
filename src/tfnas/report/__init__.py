"""``tfnas report RUN_DIR``: what a search, a retraining or a whole pipeline did, as one
self-contained HTML page (figures embedded) plus the same figures as PNG files.

The kind of run is read off its files: a search run has ``metrics.jsonl`` rows with operation
probabilities, a training run rows with test accuracy, a pipeline run a ``pipeline.json``
with both runs below it.
"""

from .page import Report, render_html, write_report
from .sections import Figure, Section, build_sections, search_section, training_section

__all__ = [
    "Figure",
    "Report",
    "Section",
    "build_sections",
    "render_html",
    "search_section",
    "training_section",
    "write_report",
]
