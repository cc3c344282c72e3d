"""The search's step functions and the supernet's weight sharing, without data files."""

from __future__ import annotations

import os
import traceback

import pytest
import torch
from torch.overrides import TorchFunctionMode

from tfnas.errors import TfnasError
from tfnas.latency.build import build_table
from tfnas.nn.supernet import Supernet
from tfnas.precision import resolve_precision
from tfnas.schedules import TemperatureSchedule, cosine_lr
from tfnas.search.sampling import sample_paths
from tfnas.search.steps import (
    LatencyPenalty,
    StepStats,
    arch_step,
    weight_step,
)
from tfnas.space import parse_space

from .test_latency import TINY_SPACE, CountingMeter


@pytest.fixture
def tiny():
    return parse_space(TINY_SPACE, "tiny.yaml")


def batch(n: int = 8, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(classes, (n,), generator=g)


def alphas_of(net: Supernet):
    return [[net.alpha(s, b) for b in range(len(stage))] for s, stage in enumerate(net.stages)]


@pytest.mark.parametrize("op_weights", ["separate", "shared"])
def test_steps_run_on_tensors_alone(tiny, tmp_path, op_weights):
    torch.manual_seed(0)
    net = Supernet(tiny, op_weights=op_weights)
    table = build_table(tiny, CountingMeter(), tmp_path / "lut.json", width_step=4, progress=False)
    weight_opt = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9)
    arch_opt = torch.optim.Adam(net.arch_parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(1)
    before = [p.detach().clone() for p in net.arch_parameters()]
    total = StepStats()
    for i in range(3):
        images, labels = batch(seed=i)
        paths = sample_paths(alphas_of(net), "gumbel-random", generator)
        total.add(weight_step(net, weight_opt, images, labels, paths))
    sums = total.as_floats()
    assert sums["seen"] == 24 and sums["steps"] == 3 and 0 <= sums["correct"] <= 24
    assert sums["loss"] > 0
    penalty = LatencyPenalty(target_ms=1.0, weight=0.1)
    stats = arch_step(net, arch_opt, *batch(seed=9), table, penalty, 2.0, generator)
    assert float(stats.latency_loss) >= 0 and stats.seen == 8
    after = list(net.arch_parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    # alphas stay log-probabilities, and the weights were not touched by the arch step
    for alpha in net.alphas:
        assert float(alpha.detach().exp().sum()) == pytest.approx(1.0, abs=1e-5)
    assert all(p.requires_grad for p in net.weight_parameters())


def test_fixed_path_supernet_trains_exactly_like_its_standalone_network(small):
    """N identical SGD steps on the fixed path and on the extracted network: same weights,
    same outputs (masks, sink weights and path mechanics add nothing)."""
    torch.manual_seed(0)
    net = Supernet(small)
    with torch.no_grad():
        for alpha in net.alphas:
            alpha.fill_(-10)[3] = 0  # k5_e6 everywhere
        for beta in net.betas:
            beta.fill_(0)[-1] = 10  # full depth
    arch, sources = net.derive()
    path, depth_weights = net.derived_path()
    standalone = net.extract(arch, sources)
    net.head.dropout.p = standalone.head.dropout.p = 0.0
    opt_super = torch.optim.SGD(net.weight_parameters(), lr=0.05, momentum=0.9)
    opt_alone = torch.optim.SGD(standalone.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(3)
    for _ in range(4):
        images = torch.randn(16, 1, 32, 32, generator=g)
        labels = torch.randint(10, (16,), generator=g)
        weight_step(
            net, opt_super, images, labels, [path], grad_clip=None, depth_weights=depth_weights
        )
        standalone.train()
        opt_alone.zero_grad()
        torch.nn.functional.cross_entropy(standalone(images), labels).backward()
        opt_alone.step()
    again = net.extract(arch, sources)
    for (name, a), b in zip(
        standalone.state_dict().items(), again.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    net.eval()
    standalone.eval()
    x = torch.randn(4, 1, 32, 32, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(
            net(x, path=path, depth_weights=depth_weights), standalone(x), rtol=1e-4, atol=1e-5
        )


def test_shared_ops_read_centre_kernels_and_first_channels(small):
    torch.manual_seed(0)
    net = Supernet(small, op_weights="shared")
    block = net.stages[1][1]
    bank = block.bank
    names = [spec.op.label for spec in block.specs]
    k3_e3 = block.ops[names.index("k3_e3")].conv_weights()
    k5_e6 = block.ops[names.index("k5_e6")].conv_weights()
    assert k5_e6.depthwise.data_ptr() == bank.depthwise.data_ptr()
    torch.testing.assert_close(
        k3_e3.depthwise, bank.depthwise[: k3_e3.depthwise.shape[0], :, 1:4, 1:4]
    )
    torch.testing.assert_close(k3_e3.project, bank.project[:, : k3_e3.project.shape[1]])
    # one bank per block position: far fewer weights than eight separate ops
    separate = Supernet(small, op_weights="separate")
    count = lambda m: sum(p.numel() for p in m.weight_parameters())  # noqa: E731
    assert count(net) < count(separate) / 2
    # a step on one op moves the weights every op is made of
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.1)
    before = bank.depthwise.detach().clone()
    path = [[names.index("k3_e3")] * len(stage) for stage in net.stages]
    weight_step(net, opt, torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 3]), [path])
    changed = (bank.depthwise.detach() != before).any(dim=(0, 1))
    assert changed[1:4, 1:4].all() and not changed[0].any()  # the 3x3 centre, not the rim


def test_temperature_schedule_and_learning_rate():
    schedule = TemperatureSchedule.spanning(5.0, 0.5, search_epochs=3, warmup_epochs=1)
    assert schedule.at(0) == schedule.at(1) == 5.0
    assert schedule.at(4) == pytest.approx(0.5)
    assert cosine_lr(0.1, 0, 10) == pytest.approx(0.1)
    assert cosine_lr(0.1, 10, 10) == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(0.1, 0.5, 10, warmup=1, unit=0.01) == pytest.approx(0.051)
    assert cosine_lr(0.1, 0, 100, warmup=4) == pytest.approx(0.025)  # the first step trains
    assert cosine_lr(0.1, 1, 10, warmup=1) == pytest.approx(0.1)
    assert cosine_lr(0.1, 12, 10) == pytest.approx(0.0, abs=1e-12)  # past the end: stays 0


def test_shared_ops_with_and_without_expansion():
    """A space whose ops include expansion 1 (no expand conv) shares the rest of the bank."""
    space = parse_space(TINY_SPACE.replace("expansion: [2]", "expansion: [1, 2]"), "mixed.yaml")
    torch.manual_seed(0)
    net = Supernet(space, op_weights="shared")
    g = torch.Generator().manual_seed(1)
    for alpha in net.alphas:
        alpha.data.normal_(generator=g)
    for beta in net.betas:
        beta.data.normal_(generator=g)
    arch, sources = net.derive()
    path, depth = net.derived_path()
    standalone = net.extract(arch, sources).eval()
    net.eval()
    x = torch.randn(3, 1, 8, 8, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(net(x, path=path, depth_weights=depth), standalone(x))
    labels = {spec.op.label for spec in net.stages[0][0].specs}
    assert {"k3_e1", "k5_e2_se"} <= labels


class HostReads(TorchFunctionMode):
    """Records every tensor operation that reads values back to the host (on a GPU: a
    synchronisation), except on tensors declared host state. Runs on any device: on the CPU
    it finds the reads that would stall a GPU."""

    READS = frozenset(
        ["item", "tolist", "numpy", "cpu", "nonzero", "__bool__", "__int__", "__float__"]
        + ["__index__"]
    )  # fmt: skip

    def __init__(self, host_state: list[torch.Tensor]) -> None:
        super().__init__()
        self.host = {id(t) for t in host_state}
        self.reads: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.READS and args and id(args[0]) not in self.host:
            caller = traceback.extract_stack(limit=2)[0].filename
            # the optimizers keep their step counts on the host by design
            if f"torch{os.sep}optim{os.sep}" not in caller:
                self.reads.append(f"{name} in {caller}")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_steps_do_not_read_values_back_to_the_host(small, device, tmp_path):
    """A weight step on a path sampled from the host copy of the architecture, then an
    architecture step, never wait for the device: checked op by op on any machine, and with
    CUDA's own synchronisation detector where there is a GPU."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no GPU")
    torch.manual_seed(0)
    net = Supernet(small).to(device)
    table = build_table(
        small, CountingMeter(), tmp_path / "lut.json", width_step=64, progress=False
    )
    weight_opt = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9)
    arch_opt = torch.optim.Adam(net.arch_parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(1)
    penalty = LatencyPenalty(target_ms=1.0, weight=0.1)

    def steps(seed: int) -> list[str]:
        host = net.host_state()
        assert all(a.device.type == "cpu" for stage in host.alphas for a in stage)
        paths = sample_paths(host.alphas, "gumbel-random", generator)
        images, labels = batch(n=4, classes=10, seed=seed)
        images = torch.nn.functional.interpolate(images, size=32).to(device)
        labels = labels.to(device)
        with HostReads(host.depth_weights) as reads:
            if device == "cuda":
                torch.cuda.set_sync_debug_mode("error")
            try:
                weight_step(
                    net, weight_opt, images, labels, paths, depth_weights=host.depth_weights
                )
                arch_step(net, arch_opt, images, labels, table, penalty, 2.0, generator)
            finally:
                if device == "cuda":
                    torch.cuda.set_sync_debug_mode(0)
        return reads.reads

    steps(0)  # the first steps create optimizer state and cache the active channel indices
    assert steps(1) == []


def test_precision_resolves_per_device_and_bf16_steps_run_on_the_cpu(tiny):
    assert resolve_precision("auto", torch.device("cpu")).name == "fp32"
    with pytest.raises(TfnasError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(TfnasError, match="^precision must be one of"):
        resolve_precision("fp8", torch.device("cpu"))
    bf16 = resolve_precision("bf16", torch.device("cpu"))
    torch.manual_seed(0)
    net = Supernet(tiny)
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.1)
    paths = sample_paths(net.host_state().alphas, "gumbel-random", torch.Generator())
    stats = weight_step(net, opt, *batch(), paths, precision=bf16, scaler=bf16.scaler())
    assert torch.isfinite(stats.loss) and stats.loss.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in net.parameters())  # weights stay fp32


def test_one_sided_latency_loss_charges_only_latency_above_the_target():
    two, one = LatencyPenalty(2.0, 0.1), LatencyPenalty(2.0, 0.1, "one-sided")
    below = torch.tensor(1.5, requires_grad=True)
    one(below).backward()
    assert float(one(below).detach()) == 0.0 and float(below.grad) == 0.0
    assert float(two(below).detach()) == pytest.approx(0.1 * 0.25)
    above = torch.tensor(2.5)
    assert float(one(above)) == pytest.approx(float(two(above))) == pytest.approx(0.025)
