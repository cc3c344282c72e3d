from __future__ import annotations

import json
import re

import pytest
import torch

from tfnas.arch import Architecture, BlockChoice, uniform_architecture
from tfnas.block import OpSpec
from tfnas.distributed import text_digest
from tfnas.latency.build import build_table
from tfnas.latency.official import import_tfnas_table
from tfnas.latency.table import latency_range
from tfnas.nn.supernet import Supernet
from tfnas.search.config import SearchConfig
from tfnas.search.elastic import elastic_scale
from tfnas.search.projection import project_to_target
from tfnas.search.sampling import sample_paths
from tfnas.search.searcher import search

from .conftest import OFFICIAL_LUTS, assert_user_error
from .test_data import write_idx_dataset
from .test_latency import TINY_SPACE, CountingMeter


@pytest.fixture(scope="module")
def paper_gpu_table(imagenet):
    path = OFFICIAL_LUTS / "latency_gpu.json"
    if not path.is_file():
        pytest.skip(f"{path} is not laid out beside the project")
    return import_tfnas_table(path, imagenet)


@pytest.mark.parametrize(
    "target, depths", [(12, None), (15, None), (18, None), (10, (2, 2, 3, 3, 3, 1))]
)
def test_elasticity_scaling_alone_reaches_the_target_on_the_papers_table(
    imagenet, paper_gpu_table, target, depths
):
    start = uniform_architecture(imagenet, OpSpec(3, 6, False), depths)
    low = uniform_architecture(imagenet, OpSpec(3, 6, False), depths, width="min")
    high = uniform_architecture(imagenet, OpSpec(3, 6, False), depths, width="max")
    assert (
        paper_gpu_table.predict(imagenet, low) <= target <= paper_gpu_table.predict(imagenet, high)
    )
    result = elastic_scale(imagenet, start, paper_gpu_table, target)
    assert result.latency_ms == pytest.approx(paper_gpu_table.predict(imagenet, result.arch))
    assert result.latency_ms <= target
    assert abs(result.latency_ms - target) / target < 0.005
    for _, _, spec, width in result.arch.blocks(imagenet):
        assert spec.min_width <= width <= spec.max_width
    assert result.arch.depths == start.depths


def test_elasticity_scaling_on_knots_uses_measured_widths_only(small, tmp_path):
    table = build_table(
        small, CountingMeter(), tmp_path / "lut.json", width_step=16, progress=False
    )
    nominal = uniform_architecture(small, OpSpec(3, 6, False))
    start = Architecture(  # widths between knots
        small.name,
        small.hash,
        tuple(tuple(BlockChoice(c.op, c.width + 3) for c in st) for st in nominal.stages),
    )
    low, high = (
        table.predict(small, uniform_architecture(small, OpSpec(3, 6, False), width=w))
        for w in ("min", "max")
    )
    target = (low + high) / 2
    anywhere = elastic_scale(small, start, table, target)
    on_knots = elastic_scale(small, start, table, target, on_knots=True)
    assert on_knots.latency_ms <= target and abs(on_knots.latency_ms / target - 1) < 0.05
    widths = [(spec, w) for _, _, spec, w in on_knots.arch.blocks(small)]
    assert all(w in table.entries[spec.lut_key] for spec, w in widths)  # all measured
    assert anywhere.latency_ms <= target


def test_bi_sampling_paths_differ_in_every_block(small):
    generator = torch.Generator().manual_seed(0)
    alphas = [
        [torch.randn(len(stage.ops)) * 3 for _ in range(stage.blocks)] for stage in small.stages
    ]
    for _ in range(300):
        gumbel, other = sample_paths(alphas, "gumbel-random", generator)
        for g_stage, o_stage in zip(gumbel, other, strict=True):
            assert all(g != o for g, o in zip(g_stage, o_stage, strict=True))
    assert len(sample_paths(alphas, "gumbel", generator)) == 1
    _, best = sample_paths(alphas, "gumbel-max", generator)
    assert best == [[int(a.argmax()) for a in stage] for stage in alphas]


@pytest.mark.parametrize("op_weights", ["separate", "shared"])
@pytest.mark.parametrize("training", [False, True])
def test_supernet_path_equals_standalone_network(small, training, op_weights):
    torch.manual_seed(0)
    net = Supernet(small, op_weights=op_weights)
    generator = torch.Generator().manual_seed(1)
    # random widths, random path, random depths
    for stage in net.stages:
        for block in stage:
            for i, spec in enumerate(block.specs):
                w = int(
                    torch.randint(spec.min_width, spec.max_width + 1, (1,), generator=generator)
                )
                block.set_width(i, w)
    for alpha in net.alphas:
        alpha.data.normal_(generator=generator)
    for beta in net.betas:
        beta.data.normal_(generator=generator)
    arch, sources = net.derive()
    path, depth_weights = net.derived_path()
    standalone = net.extract(arch, sources)
    net.train(training)
    standalone.train(training)
    x = torch.randn(6, 1, 32, 32)
    with torch.no_grad():
        torch.manual_seed(2)  # the same dropout mask in the head, in training mode
        from_supernet = net(x, path=path, depth_weights=depth_weights)
        torch.manual_seed(2)
        torch.testing.assert_close(from_supernet, standalone(x), rtol=1e-4, atol=1e-5)
    built = [blk.mid_channels for st in standalone.stages for blk in st]
    assert built == [c.width for st in arch.stages for c in st]


def test_projection_makes_a_too_slow_choice_feasible(small):
    """Flat distributions, heaviest ops everywhere: the projection trades the least likely
    choices until the target is within the widths' reach."""
    table = _tiny_like_table(small)
    heavy = uniform_architecture(small, OpSpec(5, 6, True), width="min")
    r = latency_range(small, table)
    target = r.fastest_ms + 0.3 * (r.slowest_ms - r.fastest_ms)
    assert table.predict(small, heavy) > target
    flat_ops = [[[0.0] * len(st.ops) for _ in range(st.blocks)] for st in small.stages]
    flat_depths = [[0.0] * len(st.depths) for st in small.stages]
    sources = [list(range(d)) for d in heavy.depths]
    projection = project_to_target(small, table, heavy, sources, target, flat_ops, flat_depths)
    assert projection.changes
    scaled = elastic_scale(small, projection.arch, table, target)
    assert target * 0.99 <= scaled.latency_ms <= target


def _tiny_like_table(space):
    """A synthetic table: latency grows with width, SE and kernel (no measuring needed)."""
    from tfnas.latency.table import LatencyTable

    entries = {}
    for spec in space.all_block_specs():
        knots = entries.setdefault(spec.lut_key, {})
        for w in (spec.min_width, spec.nominal_width, spec.max_width):
            knots[w] = (
                w * spec.resolution**2 * (1 + 0.2 * bool(spec.se_channels)) * spec.kernel / 1e5
            )
    return LatencyTable(space.name, space.hash, {"device": "cpu"}, "p25", 0.1, entries)


@pytest.fixture
def tiny_search_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("TFNAS_CACHE", str(tmp_path / "cache"))
    write_idx_dataset(tmp_path / "fm", n_train=60, n_test=10)
    space_file = tmp_path / "tiny.yaml"
    space_file.write_text(TINY_SPACE)
    from tfnas.space import load_space

    space = load_space(space_file)
    lut = tmp_path / "tiny-lut.json"
    table = build_table(space, CountingMeter(), lut, width_step=4, progress=False)
    r = latency_range(space, table)
    config = dict(
        space=str(space_file),
        lut=str(lut),
        data=f"fashion-mnist:{tmp_path / 'fm'}",
        target_ms=r.fastest_ms + 0.4 * (r.slowest_ms - r.fastest_ms),
        epochs=3,
        warmup_epochs=1,
        batch_size=8,
        eval_batches=2,
        deterministic=True,  # exact resume on a GPU too (a no-op on the CPU)
    )
    return tmp_path, space, table, config, r


def test_search_meets_the_target_and_resumes_exactly(tiny_search_setup):
    tmp_path, space, table, config, _ = tiny_search_setup
    full = search(SearchConfig(**config), tmp_path / "full", progress=False)
    # at or below the target, short of it by about one width step of this tiny space at most
    # (mid widths of 5 to 24 channels: one step moves the latency by a few per cent)
    assert config["target_ms"] * 0.95 <= full.predicted_ms <= config["target_ms"]
    rows = [
        json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    for key in (
        "weight_loss",
        "weight_acc",
        "derived_arch_split_acc",
        "tau",
        "expected_latency_ms",
        "derived_latency_ms",
        "op_probs",
        "depth_probs",
        "widths",
        "op_entropy",
    ):
        assert key in rows[-1]
    assert "arch_acc" in rows[-1] and rows[0]["phase"] == "warmup"

    class Killed(Exception):
        pass

    def kill(epoch, step):
        if epoch == 1 and step == 3:
            raise Killed

    with pytest.raises(Killed):
        search(SearchConfig(**config), tmp_path / "killed", progress=False, on_step=kill)
    assert not (tmp_path / "killed" / "arch.json").exists()
    resumed = search(SearchConfig(**config), tmp_path / "killed", resume=True, progress=False)
    assert resumed.arch == full.arch
    assert (tmp_path / "killed" / "arch.json").read_text() == (
        tmp_path / "full" / "arch.json"
    ).read_text()


@pytest.mark.parametrize(
    "ablation",
    [
        {"sampling": "gumbel"},
        {"sampling": "gumbel-gumbel"},
        {"sampling": "gumbel-max"},
        {"depth": "skip-op"},
        {"depth": "fixed"},
        {"width": "fixed"},
    ],
)
def test_ablation_switches_run(tiny_search_setup, ablation):
    tmp_path, space, table, config, _ = tiny_search_setup
    result = search(
        SearchConfig(**{**config, "epochs": 2, **ablation}), tmp_path / "run", progress=False
    )
    assert table.predict(space, result.arch) == pytest.approx(result.predicted_ms)
    if ablation.get("depth") == "fixed":
        assert result.arch.depths == tuple(s.blocks for s in space.stages)


def test_cli_search_refuses_infeasible_targets_and_reuse(tiny_search_setup, cli):
    tmp_path, space, table, config, r = tiny_search_setup
    base = [
        "search",
        "--space",
        config["space"],
        "--lut",
        config["lut"],
        "--data",
        config["data"],
        "--epochs",
        "2",
        "--warmup-epochs",
        "1",
        "--batch-size",
        "8",
    ]
    result = cli(*base, "--target-ms", r.fastest_ms / 2, "--out", tmp_path / "low")
    assert_user_error(result, "outside the feasible latency range", f"{r.fastest_ms:.3f}")
    assert not (tmp_path / "low").exists()
    ok = cli(*base, "--target-ms", config["target_ms"], "--out", tmp_path / "run")
    assert ok.code == 0, ok.err
    assert (
        json.loads((tmp_path / "run" / "arch.json").read_text())["info"]["target_ms"]
        == config["target_ms"]
    )
    assert_user_error(
        cli(*base, "--target-ms", config["target_ms"], "--out", tmp_path / "run"), "--resume"
    )
    again = cli("search", "--resume", tmp_path / "run")
    assert again.code == 0, again.err
    assert_user_error(cli("search", "--space", config["space"]), "--lut", "--target-ms")


def test_expected_latency_follows_the_supernet_widths(small):
    table = _tiny_like_table(small)
    net = Supernet(small)
    before = float(net.expected_latency(table).detach())
    for stage in net.stages:
        for block in stage:
            for i, spec in enumerate(block.specs):
                block.set_width(i, spec.min_width)
    assert float(net.expected_latency(table).detach()) < before
    one_hot = uniform_architecture(small, OpSpec(3, 3, False), width="min")
    ops = [[torch.eye(len(st.ops))[0] for _ in range(st.blocks)] for st in small.stages]
    depths = [torch.eye(len(st.depths))[-1] for st in small.stages]
    assert float(net.expected_latency(table, ops, depths).detach()) == pytest.approx(
        table.predict(small, one_hot), rel=1e-5
    )
    assert isinstance(one_hot, Architecture) and isinstance(one_hot.stages[0][0], BlockChoice)


@pytest.mark.slow
def test_torchrun_search_two_processes_agree(tiny_search_setup):
    """Two CPU processes (gloo) search together; every epoch they must derive the same
    architecture (the search checks it and fails otherwise)."""
    import os
    import subprocess
    import sys

    tmp_path, space, table, config, _ = tiny_search_setup
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29533",
        "-m",
        "tfnas",
        "search",
        "--space",
        config["space"],
        "--lut",
        config["lut"],
        "--data",
        config["data"],
        "--target-ms",
        str(config["target_ms"]),
        "--epochs",
        "2",
        "--warmup-epochs",
        "1",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / "ddp"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    arch = json.loads((tmp_path / "ddp" / "arch.json").read_text())
    # both processes ended with the same architecture, the one written
    digests = dict(
        re.findall(r"process (\d) of 2: architecture sha256 ([0-9a-f]{64})", result.stderr)
    )
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"], result.stderr[-2000:]
    assert text_digest(json.dumps(arch, sort_keys=True)) == digests["0"]
    assert arch["info"]["predicted_ms"] <= config["target_ms"]
    rows = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
