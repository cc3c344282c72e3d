"""A search lands on its target or says it cannot: targets in a gap between depths, at the
ends of the range, and a projection that never jumps past the target when it need not."""

from __future__ import annotations

import itertools
import json
import textwrap

import pytest

from tfnas.arch import Architecture, BlockChoice, load_architecture
from tfnas.latency.build import build_table
from tfnas.latency.table import latency_range, load_table, target_at_fraction
from tfnas.search.projection import _at_bound, project_to_target
from tfnas.space import load_space

from .conftest import assert_user_error
from .test_data import write_idx_dataset
from .test_latency import CountingMeter

# One stage of 1 to 3 blocks: its first block is cheap (4 channels in), every other one
# dear (32 in), so that depth 1 at its widest ends far below depth 2 at its narrowest.
GAPPED_SPACE = textwrap.dedent(
    """
    name: gapped
    input: {size: 8, channels: 1}
    classes: 3
    stem: [{type: conv, out: 4, kernel: 3, stride: 1, act: relu}]
    ops: {kernel: [3, 5], expansion: [3]}
    mid_width: {min: 1/2, max: 3/2}
    stages:
      - {out: 32, blocks: 3, stride: 2, act: relu}
    head: {out: 16, act: relu, dropout: 0.0}
    """
)


@pytest.fixture(scope="module")
def gapped(tmp_path_factory):
    root = tmp_path_factory.mktemp("gapped")
    (root / "gapped.yaml").write_text(GAPPED_SPACE)
    space = load_space(root / "gapped.yaml")
    build_table(space, CountingMeter(), root / "lut.json", width_step=4, progress=False)
    # latencies of many decimals, as measured ones have (the counting meter's are exact)
    data = json.loads((root / "lut.json").read_text())
    data["base"] *= 1.0471975511965976
    for entry in data["entries"].values():
        for width in entry:
            entry[width] *= 1.0471975511965976
    (root / "lut.json").write_text(json.dumps(data))
    write_idx_dataset(root / "fm", n_train=60, n_test=12)
    return root, space, load_table(root / "lut.json", space)


def reach(space, table, depth: int) -> tuple[float, float]:
    """The lowest and the highest latency of any architecture of ``depth`` blocks."""
    lows, highs = [], []
    for ops in itertools.product(space.stages[0].ops, repeat=depth):
        choices = tuple(
            BlockChoice(op, space.block_spec(0, j, op).nominal_width) for j, op in enumerate(ops)
        )
        arch = Architecture(space.name, space.hash, (choices,))
        lows.append(table.predict(space, _at_bound(space, arch, False, True)))
        highs.append(table.predict(space, _at_bound(space, arch, True, True)))
    return min(lows), max(highs)


def search(cli, root, out, *target):
    return cli("search", "--space", root / "gapped.yaml", "--lut", root / "lut.json",
               "--data", f"fashion-mnist:{root / 'fm'}", "--epochs", "2", "--batch-size",
               "8", "--threads", "1", *target, "--out", out)  # fmt: skip


def test_the_fixture_has_a_gap(gapped):
    _, space, table = gapped
    assert reach(space, table, 1)[1] < 0.8 * reach(space, table, 2)[0]


def test_a_target_in_a_gap_between_depths_ends_with_status_3(gapped, cli, tmp_path):
    root, space, table = gapped
    below, above = reach(space, table, 1)[1], reach(space, table, 2)[0]
    target = below + 0.3 * (above - below)  # nearer the widest single block
    result = search(cli, root, tmp_path / "s", "--target-ms", f"{target:.6f}")
    assert result.code == 3, result.err
    message = result.err.strip().splitlines()[-1]
    assert message.startswith("tfnas: error: the searched network misses the target")
    assert "--target-tolerance" in message and "Traceback" not in result.err
    arch, _ = load_architecture(tmp_path / "s" / "arch.json", space)
    # the nearest reachable network, not one of a block more that lies farther off
    assert arch.depths == (1,)
    assert table.predict(space, arch) == pytest.approx(below, rel=0.02)
    # allowed to miss: the same search succeeds
    result = search(cli, root, tmp_path / "t", "--target-ms", f"{target:.6f}",
                    "--target-tolerance", "0.5")  # fmt: skip
    assert result.code == 0, result.err


def test_projection_prefers_a_change_that_keeps_the_target_in_reach(gapped):
    _, space, table = gapped
    stage = space.stages[0]
    k3, k5 = stage.ops
    narrowest = BlockChoice(k3, space.block_spec(0, 0, k3).min_width)
    arch = Architecture(space.name, space.hash, ((narrowest,),))
    low1, high1 = reach(space, table, 1)
    k3_high = table.predict(space, _at_bound(space, arch, True, True))  # the argmax's own widest
    target = (k3_high + high1) / 2 if high1 > k3_high else high1
    # the argmax is depth 1 with k3, which cannot reach the target; adding a block is the
    # likelier change but jumps past it, switching to k5 keeps it in reach (when k5 reaches)
    op_log_probs = [[[-0.1, -3.0]] * 3]
    depth_log_probs = [[-0.5, -0.6, -3.0]]
    projection = project_to_target(space, table, arch, [[0]], target, op_log_probs, depth_log_probs)
    assert projection.arch.depths == (1,), projection.changes
    assert table.predict(space, _at_bound(space, projection.arch, False, True)) <= target


@pytest.mark.parametrize("fraction", ["0", "1"])
def test_the_ends_of_the_range_are_targets(gapped, cli, tmp_path, fraction):
    root, space, table = gapped
    r = latency_range(space, table)
    assert r.fastest_ms <= target_at_fraction(space, table, float(fraction)) <= r.slowest_ms
    result = search(cli, root, tmp_path / "s", "--target-fraction", fraction)
    assert result.code == 0, result.err


def test_a_target_outside_the_range_shows_it_to_the_digits_that_matter(gapped, cli, tmp_path):
    root, space, table = gapped
    slowest = latency_range(space, table).slowest_ms
    result = search(cli, root, tmp_path / "s", "--target-ms", f"{slowest * 1.0001:.6g}")
    assert_user_error(result, f"{slowest:.6g} ms")


def test_a_sweep_goes_on_past_a_target_it_cannot_meet(gapped, cli, tmp_path):
    root, space, table = gapped
    below, above = reach(space, table, 1)[1], reach(space, table, 2)[0]
    in_gap = below + 0.3 * (above - below)
    reachable = sum(reach(space, table, 2)) / 2  # amid what two blocks reach
    result = cli("sweep", "--space", root / "gapped.yaml", "--lut", root / "lut.json",
                 "--data", f"fashion-mnist:{root / 'fm'}", "--targets",
                 f"{in_gap:.5f},{reachable:.5f}", "--search-epochs", "2", "--search-batch-size",
                 "8", "--train-epochs", "1", "--train-batch-size", "8", "--calibrate-archs", "0",
                 "--threads", "1", "--out", tmp_path / "sweep")  # fmt: skip
    assert result.code == 3, result.err
    last = result.err.strip().splitlines()[-1]
    assert "1 of the sweep's 2 targets" in last and "--search-target-tolerance" in last
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [r["target"] for r in rows] == [f"{float(f'{reachable:.5f}'):g} ms"]
