from __future__ import annotations

import itertools
import json
import textwrap
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from tfnas.arch import Architecture, BlockChoice, random_architecture, uniform_architecture
from tfnas.block import OpSpec
from tfnas.errors import TfnasError
from tfnas.latency.build import build_table
from tfnas.latency.check import (
    CheckResult,
    check_table,
    choose_calibration,
    error_stats,
    fit_calibration,
    leave_one_out,
)
from tfnas.latency.drift import (
    Drift,
    reference_architecture,
    table_reference,
)
from tfnas.latency.jobs import call_overhead_record, knot_widths, plan_jobs
from tfnas.latency.journal import journal_path
from tfnas.latency.measure import LatencyMeter, summarise
from tfnas.latency.meters import table_meter
from tfnas.latency.official import import_tfnas_table
from tfnas.latency.policy import TimingPolicy
from tfnas.latency.stability import Stability, recorded_busy
from tfnas.latency.table import (
    Calibration,
    LatencyTable,
    LatencyTableError,
    latency_range,
    load_table,
    monotone_fit,
)
from tfnas.nn.blocks import MBConv
from tfnas.space import parse_space

from .conftest import OFFICIAL_LUTS, assert_user_error

TINY_SPACE = textwrap.dedent(
    """
    name: tiny
    input: {size: 8, channels: 1}
    classes: 3
    stem: [{type: conv, out: 4, kernel: 3, stride: 1, act: relu}]
    ops: {kernel: [3, 5], expansion: [2], se: [false, true]}
    se_ratio: 1/2
    mid_width: {min: 1/2, max: 3/2}
    stages:
      - {out: 8, blocks: 2, stride: 2, act: relu}
      - {out: 8, blocks: 2, stride: 1, act: swish}
    head: {out: 16, act: relu, dropout: 0.0}
    """
)
FAST = TimingPolicy(
    warmup_calls=1, warmup_seconds=0.0, min_calls=3, max_calls=5, min_seconds=0.0, rounds=1
)


@pytest.fixture
def tiny():
    return parse_space(TINY_SPACE, "tiny.yaml")


@pytest.fixture
def tiny_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


class CountingMeter(LatencyMeter):
    """Deterministic 'latency': parameter count in thousands, 0.5 ms slower during its first
    ``slow_windows`` timing windows (a slow spell the build must see through); counts them."""

    def __init__(self, slow_windows: int = 0, rounds: int = 2):
        super().__init__("cpu", 1, 1, replace(FAST, rounds=rounds))
        self.calls = 0
        self.slow_windows = slow_windows

    def runner(self, module, input_shape):
        return lambda: sum(p.numel() for p in module.parameters()) / 1000

    def window_statistic(self, call, scrub_kib=0):
        self.calls += 1
        return call() + (0.5 if self.calls <= self.slow_windows else 0.0)


def test_knots_cover_bounds_and_steps(small):
    specs = [s for s in small.candidates(0, 0) if s.lut_key.endswith("_0_24_k3_s2_relu")]
    widths = knot_widths(specs, 8)
    assert widths[0] == min(s.min_width for s in specs) and widths[-1] == max(
        s.max_width for s in specs
    )
    assert all(w % 8 == 0 for w in widths[1:-1])
    for s in specs:
        assert s.min_width in widths and s.max_width in widths
    assert knot_widths(specs, 5) == sorted(set(knot_widths(specs, 5)))
    jobs = plan_jobs(small, 8)
    assert len({j.name for j in jobs}) == len(jobs)
    assert {j.key for j in jobs if j.spec} == {s.lut_key for s in small.all_block_specs()}


def _table(tiny, knots_for):
    entries = {}
    for spec in tiny.all_block_specs():
        entries.setdefault(spec.lut_key, {})
        for w in range(spec.min_width, spec.max_width + 1):
            entries[spec.lut_key][w] = knots_for(spec, w)
    return LatencyTable(tiny.name, tiny.hash, {"device": "cpu"}, "p25", 1.0, entries)


def test_interpolation_between_knots(tiny):
    spec = tiny.candidates(0, 1)[0]
    table = LatencyTable(
        tiny.name,
        tiny.hash,
        {},
        "p25",
        0.5,
        {spec.lut_key: {spec.min_width: 1.0, spec.max_width: 3.0}},
    )
    mid = (spec.min_width + spec.max_width) / 2
    assert table.block_ms(spec, mid) == pytest.approx(2.0)
    assert table.block_ms(spec, spec.min_width) == 1.0
    with pytest.raises(LatencyTableError, match="outside"):
        table.block_ms(spec, spec.max_width + 1)
    with pytest.raises(LatencyTableError, match="no entry"):
        table.block_ms(tiny.candidates(1, 0)[0], 8)


def test_monotone_in_width():
    noisy = np.array([1.0, 1.2, 1.1, 1.5, 1.4, 1.3, 2.0])
    fitted = monotone_fit(noisy)
    assert np.all(np.diff(fitted) >= 0)
    assert fitted.sum() == pytest.approx(noisy.sum())  # least squares keeps the mean
    assert np.array_equal(monotone_fit(np.array([1.0, 2.0, 3.0])), [1.0, 2.0, 3.0])


def test_lookups_are_monotone_even_on_noisy_knots(tiny):
    rng = np.random.default_rng(0)
    table = _table(tiny, lambda spec, w: w * 0.01 + rng.normal(0, 0.05))
    for spec in tiny.all_block_specs():
        values = [table.block_ms(spec, w) for w in np.linspace(spec.min_width, spec.max_width, 25)]
        assert all(b >= a for a, b in itertools.pairwise(values))


def test_prediction_is_base_plus_blocks_then_calibration(tiny):
    table = _table(tiny, lambda spec, w: w / 10 + spec.kernel / 100)
    arch = random_architecture(tiny, 4)
    expected = 1.0 + sum(w / 10 + spec.kernel / 100 for _, _, spec, w in arch.blocks(tiny))
    assert table.predict(tiny, arch) == pytest.approx(expected)
    calibrated = table.with_calibration(Calibration(1.5, -0.25))
    assert calibrated.predict(tiny, arch) == pytest.approx(1.5 * expected - 0.25)
    assert calibrated.raw_predict(tiny, arch) == pytest.approx(expected)


def test_expected_latency_matches_prediction_for_one_hot_choices(tiny):
    table = _table(tiny, lambda spec, w: w / 10 + spec.se_channels / 7)
    arch = random_architecture(tiny, 2)
    op_probs, widths, depth_probs = [], [], []
    for s, stage in enumerate(tiny.stages):
        op_probs.append([]), widths.append([])
        for b in range(stage.blocks):
            chosen = arch.stages[s][b] if b < len(arch.stages[s]) else None
            probs = torch.zeros(len(stage.ops))
            probs[stage.ops.index(chosen.op if chosen else stage.ops[0])] = 1
            op_probs[s].append(probs)
            widths[s].append(
                [
                    chosen.width
                    if chosen and op == chosen.op
                    else tiny.block_spec(s, b, op).min_width
                    for op in stage.ops
                ]
            )
        depth = torch.zeros(len(stage.depths))
        depth[list(stage.depths).index(len(arch.stages[s]))] = 1
        depth_probs.append(depth)
    lat = table.expected_latency(tiny, op_probs, depth_probs, widths)
    assert lat.item() == pytest.approx(table.predict(tiny, arch), rel=1e-5)
    # a table that takes a call overhead off, with a per-block calibration term, predicts
    # the same in both ways: the expected count of blocks is in the expected latency
    overhead = replace(table, meta={"call_overhead": {"ms": 0.02, "applied": True}})
    calibrated = overhead.with_calibration(Calibration(1.2, 0.1, 40, -0.03))
    lat = calibrated.expected_latency(tiny, op_probs, depth_probs, widths)
    assert lat.item() == pytest.approx(calibrated.predict(tiny, arch), rel=1e-5)
    assert calibrated.predict(tiny, arch) != pytest.approx(table.predict(tiny, arch))
    # gradients reach the architecture parameters
    alpha = torch.zeros(len(tiny.stages[0].ops), requires_grad=True)
    beta = torch.zeros(len(tiny.stages[0].depths), requires_grad=True)
    op_probs[0][1] = torch.softmax(alpha, 0)
    depth_probs[0] = torch.softmax(beta, 0)
    table.expected_latency(tiny, op_probs, depth_probs, widths).backward()
    assert alpha.grad.abs().sum() > 0 and beta.grad.abs().sum() > 0


def test_range_is_the_true_extremes(tiny):
    """Brute force over every depth and op with widths at their bounds."""
    table = _table(
        tiny, lambda spec, w: w / 10 + (0.3 if spec.se_channels else 0.0) + spec.kernel / 50
    )
    r = latency_range(tiny, table)
    latencies = []
    for stage_choices in itertools.product(
        *[
            [ops for d in stage.depths for ops in itertools.product(stage.ops, repeat=d)]
            for stage in tiny.stages
        ]
    ):
        for bound in ("min", "max"):
            stages = []
            for s, ops in enumerate(stage_choices):
                blocks = []
                for b, op in enumerate(ops):
                    spec = tiny.block_spec(s, b, op)
                    blocks.append(
                        BlockChoice(op, spec.min_width if bound == "min" else spec.max_width)
                    )
                stages.append(tuple(blocks))
            latencies.append(table.predict(tiny, Architecture(tiny.name, tiny.hash, tuple(stages))))
    assert r.fastest_ms == pytest.approx(min(latencies))
    assert r.slowest_ms == pytest.approx(max(latencies))


@pytest.mark.parametrize("kind, low, high", [("gpu", 4.09, 27.06), ("cpu", 19.98, 135.91)])
def test_import_official_tables_and_their_range(kind, low, high, imagenet, tmp_path, cli):
    source = OFFICIAL_LUTS / f"latency_{kind}.json"
    if not source.is_file():
        pytest.skip(f"{source} is not laid out beside the project")
    table = import_tfnas_table(source, imagenet)
    assert len(table.entries) == 66
    r = latency_range(imagenet, table)
    assert (round(r.fastest_ms, 2), round(r.slowest_ms, 2)) == (low, high)
    out = tmp_path / f"{kind}.json"
    assert cli("lut", "import-tfnas", source, "--out", out).code == 0
    result = cli("lut", "range", "--lut", out, "--json").json()
    assert (round(result["fastest_ms"], 2), round(result["slowest_ms"], 2)) == (low, high)
    # the device is known by the file's content, not its name
    renamed = tmp_path / "table.json"
    renamed.write_bytes(source.read_bytes())
    assert import_tfnas_table(renamed, imagenet).device == table.device != {"device": "unknown"}
    posing = tmp_path / f"mine_{kind}.json"
    posing.write_text(json.dumps({**json.loads(source.read_text()), "base": 1.0}))
    assert import_tfnas_table(posing, imagenet).device == {"device": "unknown"}
    # a table value read back exactly as published
    published = json.loads(source.read_text())
    spec = imagenet.candidates(2, 1)[3]
    assert (
        load_table(out).entries[spec.lut_key][spec.max_width]
        == published[spec.lut_key][str(spec.max_width)]
    )


def test_calibration_arithmetic():
    raw = [1.0, 2.0, 3.0, 5.0]
    measured = [2 * x + 1 for x in raw]
    cal = fit_calibration(raw, measured)
    assert (cal.scale, cal.offset_ms, cal.archs) == (pytest.approx(2.0), pytest.approx(1.0), 4)
    assert leave_one_out(raw, measured) == pytest.approx(measured)
    stats = error_stats([11.0, 9.0, 10.0, 13.0], [10.0, 10.0, 10.0, 10.0])
    assert stats["mean_abs_pct"] == pytest.approx(12.5)  # |10|, |-10|, 0, |30|
    assert stats["median_abs_pct"] == pytest.approx(10.0)
    assert stats["within_5pct"] == 0.25 and stats["within_10pct"] == 0.75
    assert stats["worst_pct"] == pytest.approx(30.0)
    assert summarise([5.0, 1.0, 2.0, 3.0, 4.0], "p25") == 2.0
    assert summarise([5.0, 1.0, 2.0], "median") == 2.0


def test_a_calibration_takes_a_per_block_term_where_it_predicts_unseen_networks_better():
    rng = np.random.default_rng(0)
    raw = list(rng.uniform(1, 3, 20))
    blocks = [int(b) for b in rng.integers(6, 14, 20)]
    # a runtime that runs the network as one call: 30 us less per block than the parts
    measured = [0.9 * x - 0.03 * n + 0.1 for x, n in zip(raw, blocks, strict=True)]
    cal, held_out, errors = choose_calibration(raw, measured, blocks)
    assert cal.per_block_ms == pytest.approx(-0.03) and cal.scale == pytest.approx(0.9)
    assert held_out == pytest.approx(measured)
    assert errors["per_block"]["median_abs_pct"] < errors["line"]["median_abs_pct"]
    assert "-30.0 us per block" in cal.describe()
    # where the blocks explain nothing, the line is kept (one parameter fewer)
    noise = rng.normal(0, 0.02, 20)
    line = [2 * x + 1 + e for x, e in zip(raw, noise, strict=True)]
    cal, _, errors = choose_calibration(raw, line, blocks)
    assert (
        cal.per_block_ms == 0.0
        or errors["per_block"]["median_abs_pct"] < errors["line"]["median_abs_pct"]
    )
    assert choose_calibration(raw[:4], measured[:4], blocks[:4])[0].per_block_ms == 0.0


def test_the_call_overhead_comes_off_where_the_reference_network_says_it_should(tiny):
    table = _table(tiny, lambda spec, w: 0.03 + w / 10)  # every entry: 30 us fixed, then width
    reference = reference_architecture(tiny)
    summed = table.raw_predict(tiny, reference)
    blocks = sum(1 for _ in reference.blocks(tiny))

    def chosen(measured_ms: float, call_ms: float = 0.05) -> LatencyTable:
        record = call_overhead_record(tiny, table, call_ms, measured_ms)
        return replace(table, meta={"call_overhead": record})

    # a network that pays every call (torch's eager mode): the sum stands
    assert chosen(summed).overhead_model == "none"
    assert chosen(summed).raw_predict(tiny, reference) == pytest.approx(summed)
    # a network that is one call: the parts' sum less every call but one ...
    one_call = chosen(summed - (blocks + 1) * 0.05)
    assert one_call.overhead_model == "call"
    assert one_call.raw_predict(tiny, reference) == pytest.approx(summed - (blocks + 1) * 0.05)
    # ... or less every block's own fixed cost (the intercept of its entry), the stem's and
    # the head's call but one
    fixed = chosen(summed - 0.05 - blocks * 0.03)
    assert fixed.overhead_model == "intercepts"
    assert all(v == pytest.approx(0.03) for v in fixed.entry_intercepts.values())
    assert fixed.raw_predict(tiny, reference) == pytest.approx(summed - 0.05 - blocks * 0.03)
    record = fixed.meta["call_overhead"]
    assert record["applied"] and set(record["reference_error_pct"]) == {
        "none", "call", "intercepts"
    }  # fmt: skip
    assert fixed.overhead_models() == ("intercepts", "none", "call")
    assert fixed.with_overhead_model("none").raw_predict(tiny, reference) == pytest.approx(summed)
    assert table.overhead_models() == ("none",)  # it timed no empty call
    # a table that recorded the older verdict only ("applied") reads as the call model
    older = replace(table, meta={"call_overhead": {"ms": 0.05, "applied": True}})
    assert older.overhead_model == "call"


def test_a_calibration_chooses_its_overhead_model_by_networks_it_did_not_see(tiny, tmp_path):
    # parameter counts add up exactly: whole networks are the sum of their parts
    table = build_table(tiny, CountingMeter(), tmp_path / "lut.json", width_step=4, progress=False)
    assert table.overhead_models()[0] == table.overhead_model
    result = check_table(tiny, table, CountingMeter(), archs=8, calibrate=True)
    by_model = result.extra["leave_one_out_by_model"]
    assert set(by_model) == {"none", "call", "intercepts"}
    assert result.overhead_model in by_model
    assert result.after_leave_one_out["median_abs_pct"] == pytest.approx(
        min(min(fit["median_abs_pct"] for fit in fits.values()) for fits in by_model.values())
    )
    assert result.after_leave_one_out["median_abs_pct"] < 1e-6
    assert result.calibrated(table).overhead_model == result.overhead_model


def test_a_check_calls_a_table_unreliable_on_enough_networks_only():
    good = {"median_abs_pct": 2.0, "within_10pct": 1.0}
    scaled = CheckResult([{}] * 12, {}, Calibration(2.3, -1.28), after_leave_one_out=good)
    assert "had to scale the table by 2.30" in scaled.unreliable
    assert scaled.misses.startswith(scaled.unreliable) and "quiet machine" in scaled.misses
    bad = {"median_abs_pct": 7.5, "within_10pct": 0.6}
    missing = CheckResult([{}] * 12, {}, Calibration(1.0, 0.0), after_leave_one_out=bad)
    assert "misses whole networks" in missing.unreliable
    quiet = CheckResult([{}] * 12, {}, Calibration(1.1, 0.0), after_leave_one_out=good)
    assert quiet.misses is None
    few = CheckResult([{}] * 3, {}, Calibration(2.3, 0.0), after_leave_one_out=good)
    assert few.misses is None


def test_a_busy_machine_is_told_by_the_reference_networks_spread_or_the_load():
    quiet = Stability([2.00, 2.03, 2.01], [1.1, 1.0], cpus=2, threads=1)
    assert quiet.busy is None and quiet.spread_pct == pytest.approx(1.5)
    spread = Stability([2.0, 2.6, 2.1], [1.0, 1.0], cpus=2, threads=1)
    assert "varied 30% across the passes" in spread.busy
    loaded = Stability([2.0, 2.0], [3.2, None], cpus=2, threads=1)
    assert "load average was 3.2 on 2 cores, 1 of them the build's" in loaded.busy
    assert Stability([2.0], [None, None], cpus=2, threads=1).busy is None
    assert recorded_busy({"stability": loaded.to_dict()}) == loaded.busy
    assert recorded_busy({}) is None


def test_resume_of_a_partial_build(tiny, tmp_path):
    out = tmp_path / "lut.json"
    per_pass = len(plan_jobs(tiny, 4))
    total = 2 * per_pass  # two passes over the plan
    meter = CountingMeter(slow_windows=per_pass)
    assert build_table(tiny, meter, out, width_step=4, limit=5, progress=False) is None
    assert meter.calls == 5 and not out.exists() and journal_path(out).exists()
    with pytest.raises(LatencyTableError, match="pass resume"):
        build_table(tiny, meter, out, width_step=4, progress=False)
    with pytest.raises(LatencyTableError, match="width_step"):
        build_table(tiny, meter, out, width_step=2, resume=True, progress=False)
    # a kill while writing leaves a cut line: that one measurement is taken again
    with open(journal_path(out), "a") as handle:
        handle.write('{"job": "MBInvertedRes')
    resumed = CountingMeter(slow_windows=per_pass - 5)  # the first pass stays slow
    table = build_table(tiny, resumed, out, width_step=4, resume=True, progress=False)
    assert resumed.calls == total - 5
    assert not journal_path(out).exists()
    fresh = build_table(
        tiny, CountingMeter(), tmp_path / "fresh.json", width_step=4, progress=False
    )
    assert table.entries == fresh.entries and table.base_ms == fresh.base_ms
    # every entry is the fastest of its passes: the parameter count, without the offset
    spec = tiny.candidates(1, 1)[0]
    params = sum(p.numel() for p in MBConv(spec, spec.max_width).parameters()) / 1000
    assert fresh.entries[spec.lut_key][spec.max_width] == pytest.approx(params)
    assert load_table(out, tiny).entries == fresh.entries


@pytest.mark.parametrize("bad", ["NaN", "-1.0", "0"])
def test_a_journal_latency_no_measurement_gives_is_measured_again(tiny, tmp_path, bad):
    out = tmp_path / "lut.json"
    assert build_table(tiny, CountingMeter(), out, width_step=4, limit=3, progress=False) is None
    lines = journal_path(out).read_text().splitlines()
    first = json.loads(lines[1])
    lines[1] = json.dumps(first).replace(f'"ms": {json.dumps(first["ms"])}', f'"ms": {bad}')
    journal_path(out).write_text("\n".join(lines) + "\n")
    meter = CountingMeter()
    table = build_table(tiny, meter, out, width_step=4, resume=True, progress=False)
    assert meter.calls == 2 * len(plan_jobs(tiny, 4))  # every measurement taken (again)
    fresh = build_table(tiny, CountingMeter(), tmp_path / "f.json", width_step=4, progress=False)
    assert table.base_ms == fresh.base_ms and table.entries == fresh.entries


def test_real_cpu_and_onnxruntime_timing(tiny):
    spec = tiny.candidates(0, 0)[0]
    block = MBConv(spec, spec.max_width)
    shape = (spec.in_channels, spec.resolution, spec.resolution)
    for device in ("cpu", "ort-cpu"):
        meter = LatencyMeter(device, threads=1, batch_size=2, policy=FAST)
        samples = meter.samples(block, shape)
        assert 3 <= len(samples) <= 5 and all(s > 0 for s in samples)
        two = LatencyMeter(device, threads=1, batch_size=2, policy=replace(FAST, rounds=2))
        assert 6 <= len(two.samples(block, shape)) <= 10
        assert two.measure(block, shape) > 0
        assert meter.fingerprint()["batch_size"] == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_a_clear_error(cli, tmp_path):
    assert_user_error(
        cli(
            "lut",
            "build",
            "--space",
            "tfnas-small",
            "--device",
            "cuda",
            "--out",
            tmp_path / "x.json",
        ),
        "CUDA",
    )


def test_cli_build_check_profile(tiny_file, tmp_path, cli):
    lut = tmp_path / "tiny-lut.json"
    result = cli("lut", "build", "--space", tiny_file, "--width-step", "8", "--out", lut)
    assert result.code == 0, result.err
    data = json.loads(lut.read_text())
    assert data["format"] == "tfnas-latency-table" and data["space"]["name"] == "tiny"
    assert data["device"]["threads"] == 1 and data["device"]["batch_size"] == 1
    assert data["statistic"] == "p25" and data["base"] > 0
    assert_user_error(cli("lut", "range", "--lut", lut), "not built in", "--space")
    assert cli("lut", "range", "--lut", lut, "--space", tiny_file).code == 0
    checked = cli(
        "lut", "check", "--lut", lut, "--space", tiny_file, "--archs", "4", "--calibrate", "--json"
    )
    assert checked.code == 0, checked.err
    report = checked.json()
    assert report["archs"] == 4 and "after_leave_one_out" in report
    assert json.loads(lut.read_text())["calibration"]["scale"] == pytest.approx(
        report["calibration"]["scale"]
    )
    arch = tmp_path / "arch.json"
    cli("arch", "random", "--space", tiny_file, "--out", arch)
    prof = cli("profile", arch, "--lut", lut, "--space", tiny_file, "--json")
    assert prof.code == 0, prof.err
    out = prof.json()
    assert out["measured_ms"] > 0 and out["predicted_ms"] > 0 and out["params"] > 0
    # the table's reference network measured again: the drift, and both measurements
    assert report["drift"]["reference_then_ms"] == data["meta"]["reference"]["ms"]
    # calibrating re-anchors the reference to the check's own timing of it
    recalibrated = json.loads(lut.read_text())["meta"]["reference"]
    assert recalibrated["ms"] == pytest.approx(report["drift"]["reference_now_ms"])
    assert out["drift"]["reference_now_ms"] > 0
    ratio = out["drift"]["reference_now_ms"] / out["drift"]["reference_then_ms"]
    assert out["measured_drift_corrected_ms"] == pytest.approx(out["measured_ms"] / ratio)
    assert "reference network" in cli("profile", arch, "--lut", lut, "--space", tiny_file).out


def test_bad_and_mismatched_tables(tiny, tiny_file, small, tmp_path, cli):
    table = build_table(tiny, CountingMeter(), tmp_path / "lut.json", width_step=4, progress=False)
    good = tmp_path / "lut.json"
    text = good.read_text()
    truncated = tmp_path / "truncated.json"
    truncated.write_text(text[: len(text) // 2])
    assert_user_error(cli("lut", "range", "--lut", truncated), "not valid JSON")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text(text.replace('"base": ', '"base": "x", "old_base": '))
    assert_user_error(cli("lut", "range", "--lut", corrupt, "--space", tiny_file), "base")
    assert_user_error(cli("lut", "range", "--lut", tmp_path / "missing.json"), "no such")
    assert_user_error(
        cli("lut", "range", "--lut", good, "--space", "tfnas-small"), "space 'tiny'", "tfnas-small"
    )
    edited = tmp_path / "edited.yaml"
    edited.write_text(TINY_SPACE.replace("out: 16", "out: 24"))
    assert_user_error(cli("lut", "range", "--lut", good, "--space", edited), "hash")
    with pytest.raises(LatencyTableError):
        load_table(good, small)
    paper_format = tmp_path / "paper.json"
    paper_format.write_text(json.dumps({"base": 1.0, "k": {"1": 0.1}}))
    assert_user_error(cli("lut", "range", "--lut", paper_format), "import-tfnas")
    arch = tmp_path / "arch.json"
    uniform_architecture(small, OpSpec(3, 3, False)).save(arch)
    assert_user_error(cli("profile", arch, "--lut", good, "--space", tiny_file), "tiny")
    assert table.meta["measurements"] == len(plan_jobs(tiny, 4))


def test_timing_sets_its_threads_only_while_it_times():
    """A table built, or a network profiled, in the same process as a search or a training
    run must not leave that run with the meter's single thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        meter = LatencyMeter("cpu", threads=1, batch_size=1, policy=FAST)
        meter.window(lambda: seen.append(torch.get_num_threads()))
        assert set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_tables_record_a_reference_network_and_drift_is_its_ratio(tiny, tmp_path, capsys):
    table = build_table(tiny, CountingMeter(), tmp_path / "lut.json", width_step=4, progress=False)
    arch, then_ms = table_reference(load_table(tmp_path / "lut.json", tiny), tiny)
    assert arch == reference_architecture(tiny) and then_ms > 0
    assert set(arch.depths) == {s.blocks for s in tiny.stages}  # full depth
    # the counting meter's "latency" does not drift: checked again, the same
    report = check_table(tiny, table, CountingMeter(), archs=2)
    assert report.drift.pct == pytest.approx(0) and "as fast as" in report.drift.sentence()
    slower = Drift(then_ms=2.0, now_ms=2.2)
    assert slower.pct == pytest.approx(10) and slower.corrected(3.3) == pytest.approx(3.0)
    assert "10.0% slower" in slower.sentence() and "2.200 ms against 2.000 ms" in slower.sentence()
    assert "5.0% faster" in Drift(2.0, 1.9).sentence()
    # a table from before references (or imported) loads, and says drift cannot be checked
    data = json.loads((tmp_path / "lut.json").read_text())
    del data["meta"]["reference"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = load_table(tmp_path / "old.json", tiny)
    assert check_table(tiny, old, CountingMeter(), archs=2).drift is None
    assert "records no reference network" in capsys.readouterr().err
    # a malformed record is refused with one sentence
    for bad in ({"arch": data["meta"].get("x"), "ms": -1.0}, {"arch": {"format": 1}, "ms": 1.0}):
        data["meta"]["reference"] = bad
        (tmp_path / "bad.json").write_text(json.dumps(data))
        with pytest.raises(TfnasError, match="reference"):
            table_reference(load_table(tmp_path / "bad.json", tiny), tiny)


def test_back_to_back_samples_time_several_calls_each():
    calls = []
    meter = LatencyMeter("cpu", policy=TimingPolicy(back_to_back=4, warmup_calls=2,
                                                    warmup_seconds=0, min_calls=3, max_calls=3,
                                                    min_seconds=0))  # fmt: skip
    samples = meter.window(lambda: calls.append(time.sleep(0.001)))
    assert len(samples) == 3 and len(calls) == 2 + 3 * 4  # warm-up, then 4 calls a sample
    assert all(0.9 <= ms <= 50 for ms in samples)  # the mean of its calls: about 1 ms each


def test_back_to_back_timing_is_a_policy_the_table_keeps(tiny, tmp_path, cli):
    with pytest.raises(TfnasError, match="back_to_back must be at least 1"):
        LatencyMeter("cpu", policy=TimingPolicy(back_to_back=0))
    meter = CountingMeter()
    meter.policy = replace(meter.policy, back_to_back=10)
    build_table(tiny, meter, tmp_path / "lut.json", width_step=8, progress=False)
    # whoever measures against this table (check, profile, the pipeline) times the same way
    assert table_meter(load_table(tmp_path / "lut.json", tiny)).policy.back_to_back == 10
    assert_user_error(
        cli(
            "lut",
            "build",
            "--space",
            "tfnas-small",
            "--back-to-back",
            "0",
            "--out",
            tmp_path / "x.json",
        ),  # fmt: skip
        "--back-to-back must be at least 1, got 0.",
    )


def test_networks_on_the_tables_knots(tiny, tmp_path, cli, tiny_file):
    table = build_table(tiny, CountingMeter(), tmp_path / "lut.json", width_step=8, progress=False)
    for seed in range(5):
        arch = table.on_knots(tiny, random_architecture(tiny, seed))
        for _, _, spec, width in arch.blocks(tiny):
            assert width in table.entries[spec.lut_key] and spec.check_width(width)
    result = cli("lut", "check", "--lut", tmp_path / "lut.json", "--space", tiny_file,
                 "--archs", "3", "--width-grid", "knots", "--json")  # fmt: skip
    assert result.code == 0, result.err
