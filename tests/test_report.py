from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tfnas.report import write_report
from tfnas.search.config import SearchConfig
from tfnas.search.searcher import search
from tfnas.train import train
from tfnas.train_config import TrainConfig

from .conftest import assert_user_error
from .test_search import tiny_search_setup  # noqa: F401  (a fixture)

SEARCH_FIGURES = {
    "latency", "op_probabilities", "depth_probabilities", "op_decisions", "architecture",
    "widths", "search_curves",
}  # fmt: skip


@pytest.fixture
def runs(tiny_search_setup):  # noqa: F811
    """A finished tiny search and a retraining of its architecture."""
    tmp_path, space, table, config, _ = tiny_search_setup
    search(SearchConfig(**config), tmp_path / "search", progress=False)
    train(
        TrainConfig(
            arch=str(tmp_path / "search" / "arch.json"),
            space=config["space"],
            data=config["data"],
            epochs=2,
            batch_size=8,
        ),
        tmp_path / "train",
        progress=False,
    )
    return tmp_path


def test_reports_of_a_search_and_a_training_run(runs, cli):
    report = write_report(runs / "search")
    assert {p.stem for p in report.figure_paths} == SEARCH_FIGURES
    for path in report.figure_paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = report.html_path.read_text()
    # self-contained: every image is embedded, nothing is fetched
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) == len(SEARCH_FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http" not in page

    r = cli("report", runs / "train")
    assert r.code == 0, r.err
    stems = {p.stem for p in (runs / "train" / "report").iterdir()}
    assert stems == {"training_curves", "architecture", "widths"}
    assert "best test top-1" in (runs / "train" / "report.html").read_text()


def test_report_refuses_what_is_not_a_run(tmp_path, cli):
    assert_user_error(cli("report", tmp_path / "nowhere"), "no such run directory")
    (tmp_path / "empty").mkdir()
    assert_user_error(cli("report", tmp_path / "empty"), "holds no metrics.jsonl")
    (tmp_path / "empty" / "metrics.jsonl").write_text("")
    assert_user_error(cli("report", tmp_path / "empty"), "no finished epoch")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium(runs, tmp_path):
    report = write_report(runs / "search")
    url = report.html_path.resolve().as_uri()
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(
        [*browser, "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    # the page's own script counts the figures whose images decoded and have a size
    n = len(SEARCH_FIGURES)
    assert f"figures rendered: {n} of {n}" in dom

    shot = tmp_path / "shot.png"
    subprocess.run(
        [*browser, "--window-size=1200,2400", f"--screenshot={shot}", url],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1200)
    ink = (pixels < 0.9).any(axis=2).mean()  # share of pixels that are not (near) white
    colours = len({tuple(p) for p in (pixels[::7, ::7] * 255).astype(int).reshape(-1, 3)})
    assert ink > 0.05 and colours > 50, (ink, colours)
