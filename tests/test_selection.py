"""Scoring architectures as supernet paths, selection after scaling and the search's standing."""

from __future__ import annotations

import json
import re

import pytest
import torch

from tfnas.arch import random_architecture, uniform_architecture
from tfnas.latency.table import latency_range
from tfnas.nn.supernet import Supernet
from tfnas.report import search_section
from tfnas.search.config import SearchConfig
from tfnas.search.path_score import PathScorer, ranking_quality, supernet_path, trained_supernet
from tfnas.search.searcher import search
from tfnas.search.selection import (
    ARGMAX,
    draw_architecture,
    draw_candidates,
    random_references,
    select_after_scaling,
    standing,
    standing_sentence,
)

from .test_search import _tiny_like_table, tiny_search_setup  # noqa: F401 (a fixture)


def test_ranking_quality_of_a_known_order():
    truth = [0.91, 0.88, 0.87, 0.93, 0.85, 0.90, 0.86]
    same_order = [t * 0.5 + 0.1 for t in truth]  # another scale, the same order
    q = ranking_quality(same_order, truth)
    assert q["kendall_tau"] == pytest.approx(1.0)
    assert q["spearman_rho"] == pytest.approx(1.0)
    assert q["top_k"] == 5 and q["top_k_precision"] == 1.0
    reversed_order = ranking_quality([-t for t in truth], truth)
    assert reversed_order["kendall_tau"] == pytest.approx(-1.0)
    assert reversed_order["top_k_precision"] == 3 / 5  # 7 items: the best 5 and worst 5 share 3
    with pytest.raises(ValueError):
        ranking_quality([1.0], [1.0])


@pytest.fixture
def small_supernet(small):
    torch.manual_seed(0)
    return Supernet(small, 10, 1)


def _batches(count: int, seed: int, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, 1, 32, 32, generator=g), torch.randint(10, (size,), generator=g))
        for _ in range(count)
    ]


def test_path_scorer_leaves_the_callers_supernet_alone(small, small_supernet):
    net = small_supernet
    widths = net.widths()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    scorer = PathScorer(net, _batches(2, 0), _batches(2, 1))
    archs = [random_architecture(small, seed) for seed in range(3)]
    first = scorer.score_all(archs)
    assert all(0.0 <= s <= 1.0 for s in first)
    assert scorer.score_all(archs) == first  # the same batches: the same scores
    assert net.widths() == widths
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_a_score_does_not_depend_on_what_was_scored_before(small, small_supernet):
    net = small_supernet
    with torch.no_grad():  # weights that moved since the widths were set, as after training
        for p in net.weight_parameters():
            p.add_(0.5 * torch.randn_like(p))
    # the same ops at the widths the supernet was built with, and narrower: the second
    # moves the masks the first one's widths had kept
    op = small.stages[0].ops[0]
    archs = [uniform_architecture(small, op), uniform_architecture(small, op, width="min")]
    forward = PathScorer(net, _batches(2, 0), _batches(2, 1)).score_all(archs)
    backward = PathScorer(net, _batches(2, 0), _batches(2, 1)).score_all(archs[::-1])
    assert forward == backward[::-1]


def test_supernet_path_runs_exactly_the_architectures_blocks(small, small_supernet):
    arch = random_architecture(small, 3)
    path, depth_weights, sources = supernet_path(small_supernet, arch)
    for s, stage in enumerate(arch.stages):
        assert depth_weights[s].tolist().index(1.0) == small.stages[s].depths.index(len(stage))
        assert sources[s] == list(range(len(stage)))
        for j, choice in enumerate(stage):
            assert small_supernet.stages[s][j].specs[path[s][j]].op == choice.op


class _ScoreBySE:
    """A stand-in scorer with a known preference: more SE blocks score higher."""

    def __init__(self) -> None:
        self.scored = []

    def score(self, arch) -> float:
        self.scored.append(arch)
        return sum(c.op.se for stage in arch.stages for c in stage) / 100

    def score_all(self, archs):
        return [self.score(a) for a in archs]


def test_selection_returns_the_best_scored_candidate_each_at_the_target(small, small_supernet):
    table = _tiny_like_table(small)
    r = latency_range(small, table)
    target = r.fastest_ms + 0.5 * (r.slowest_ms - r.fastest_ms)
    drawn = draw_candidates(small_supernet, table, target, 6, seed=0)
    assert len(drawn) >= 3
    for _, arch in drawn:
        assert table.predict(small, arch) == pytest.approx(target, rel=0.01)
    # the first draw stands for the derived (argmax) architecture, already at the target
    argmax, drawn = drawn[0][1], drawn[1:]
    scorer = _ScoreBySE()
    selection = select_after_scaling(scorer, argmax, drawn)
    best = max(c.score for c in selection.candidates)
    assert selection.chosen.score == best
    assert selection.candidates[0].origin == ARGMAX
    assert {c.origin for c in selection.candidates} <= {ARGMAX} | {o for o, _ in drawn}
    for c in selection.candidates:
        assert table.predict(small, c.arch) == pytest.approx(target, rel=0.01)
    # a tie goes to the argmax
    flat = type("Flat", (), {"score": lambda self, arch: 0.5})()
    assert select_after_scaling(flat, argmax, drawn).chosen.origin == ARGMAX


def test_draws_follow_the_learned_distribution(small, small_supernet):
    net = small_supernet
    with torch.no_grad():
        for alpha in net.alphas:
            alpha.fill_(-30.0)
            alpha[1] = 0.0  # op 1 in every block
        for beta in net.betas:
            beta.fill_(-30.0)
            beta[0] = 0.0  # the shallowest depth in every stage
    arch = draw_architecture(net, torch.Generator().manual_seed(0))
    for s, stage in enumerate(arch.stages):
        assert len(stage) == small.stages[s].depths[0]
        assert all(c.op == net.stages[s][j].specs[1].op for j, c in enumerate(stage))


def test_standing_counts_the_references_it_beats(small):
    table = _tiny_like_table(small)
    r = latency_range(small, table)
    target = r.fastest_ms + 0.5 * (r.slowest_ms - r.fastest_ms)
    refs = random_references(small, table, target, 8, seed=0)
    assert len(refs) == 8
    scorer = _ScoreBySE()
    result = standing(scorer, refs[0], refs, target)
    se = [sum(c.op.se for stage in a.stages for c in stage) for a in refs]
    assert result["beats"] == sum(se[0] > x for x in se)
    assert result["ties"] == sum(se[0] == x for x in se) and result["of"] == 8
    assert f"beats {result['beats']} of 8 random networks" in standing_sentence(result)


def test_search_selects_after_scaling_and_reports_its_standing(tiny_search_setup, cli):  # noqa: F811
    tmp_path, space, table, config, _ = tiny_search_setup
    settings = {**config, "select_candidates": 4, "standing_randoms": 5}
    result = search(SearchConfig(**settings), tmp_path / "run", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    chosen = last["selection"]["chosen"]
    scores = {c["origin"]: c["score"] for c in last["selection"]["candidates"]}
    assert scores[chosen] == max(scores.values())
    assert result.arch.describe() == next(
        c["arch"] for c in last["selection"]["candidates"] if c["origin"] == chosen
    )
    assert result.predicted_ms == pytest.approx(config["target_ms"], rel=0.05)
    assert result.standing["of"] >= 1 and 0 <= result.standing["beats"] <= result.standing["of"]
    meta = json.loads((tmp_path / "run" / "arch.json").read_text())["info"]
    assert meta["selected"] == chosen and meta["supernet_standing"]["of"] == result.standing["of"]
    facts = dict(search_section(tmp_path / "run").facts)
    assert facts["supernet standing"] == standing_sentence(result.standing)
    assert facts["selection after scaling"].startswith(chosen)
    # a finished run resumed reads its selection back: the same architecture, no rescoring
    again = search(SearchConfig(**settings), tmp_path / "run", resume=True, progress=False)
    assert again.arch == result.arch
    # its supernet reloads for scoring after the search
    net, saved = trained_supernet(tmp_path / "run")
    assert saved.select_candidates == 4 and isinstance(net, Supernet)

    out = cli("search", "--space", config["space"], "--lut", config["lut"], "--data",
              config["data"], "--target-ms", config["target_ms"], "--epochs", 2,
              "--warmup-epochs", 1, "--batch-size", 8, "--standing-randoms", 3,
              "--out", tmp_path / "cli")  # fmt: skip
    assert out.code == 0, out.err
    assert re.search(r"beats \d+ of \d+ random networks at", out.out), out.out
