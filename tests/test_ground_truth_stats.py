"""The ground-truth bench's statistics (bench/ground_truth.py) on simulated sets whose
variance components are known."""

from __future__ import annotations

import math
import random
import statistics
import sys

import pytest
from scipy import stats

from .conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from ground_truth import reliability, space_fit  # noqa: E402


def _simulated_set(archs: int, seeds: int, between: float, within: float, rng: random.Random):
    truth = [rng.gauss(0.88, between) for _ in range(archs)]
    per_arch = []
    for t in truth:
        top1 = [t + rng.gauss(0, within) for _ in range(seeds)]
        per_arch.append({"top1": top1, "mean": statistics.fmean(top1)})
    return truth, per_arch


def test_variance_components_and_attainable_tau_of_a_known_set():
    rng = random.Random(0)
    truth, per_arch = _simulated_set(400, 2, between=0.010, within=0.005, rng=rng)
    r = reliability(per_arch)
    assert r["seed_sd"] == pytest.approx(0.005, rel=0.1)
    assert r["between_architecture_sd"] == pytest.approx(0.010, rel=0.1)
    expected = 0.010**2 / (0.010**2 + 0.005**2 / 2)
    assert r["reliability"] == pytest.approx(expected, abs=0.03)
    # a ranking that knows every architecture's true accuracy reaches about the attainable tau
    tau = stats.kendalltau(truth, [a["mean"] for a in per_arch])[0]
    assert r["attainable_kendall_tau"] == pytest.approx(tau, abs=0.05)
    assert r["attainable_kendall_tau"] == pytest.approx(
        2 / math.pi * math.asin(math.sqrt(r["reliability"]))
    )


def test_a_set_of_pure_seed_noise_has_no_reliability():
    rng = random.Random(1)
    _, per_arch = _simulated_set(300, 2, between=0.0, within=0.005, rng=rng)
    r = reliability(per_arch)
    assert r["reliability"] < 0.15 and r["attainable_kendall_tau"] < 0.25


def test_the_reliability_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = random.Random(3)
    between, within, seeds = 0.004, 0.004, 2
    truth = between**2 / (between**2 + within**2 / seeds)
    covered = 0
    for _ in range(200):
        _, per_arch = _simulated_set(12, seeds, between, within, rng)
        low, high = reliability(per_arch)["reliability_95"]
        covered += low <= truth <= high
    assert 0.88 <= covered / 200 <= 0.99


def test_the_detectable_difference_follows_the_seed_noise():
    rng = random.Random(4)
    _, per_arch = _simulated_set(300, 2, between=0.0, within=0.005, rng=rng)
    # 2.80 seed s.d. times sqrt(2 / 2 seeds): 1.4 points at 0.5 points of seed noise
    assert reliability(per_arch)["detectable_difference"] == pytest.approx(0.014, rel=0.1)


def test_the_space_fit_finds_the_feature_that_decides():
    rng = random.Random(2)
    per_arch = []
    for _ in range(40):
        f = {
            "se_blocks": rng.randint(0, 11),
            "e6_blocks": rng.randint(0, 11),
            "k5_blocks": rng.randint(0, 11),
            "depth": rng.randint(5, 11),
            "mid_width": rng.randint(1500, 3500),
            "macs": rng.randint(10**7, 2 * 10**7),
        }
        mean = 0.88 - 0.002 * f["se_blocks"] + rng.gauss(0, 0.0005)
        per_arch.append({"mean": mean, "features": f})
    fit = space_fit(per_arch)
    assert fit["spearman"]["se_blocks"]["rho"] < -0.9
    assert all(abs(v["rho"]) < 0.5 for k, v in fit["spearman"].items() if k != "se_blocks")
    points = fit["linear_fit"]["points_per_sd"]
    assert points["se_blocks"] < 0 and all(abs(points[k]) < abs(points["se_blocks"]) / 5
                                           for k in points if k != "se_blocks")  # fmt: skip
    assert fit["linear_fit"]["r2"] > 0.9
