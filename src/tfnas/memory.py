"""How much memory a search will take, estimated before it starts.

A supernet's architecture step runs every candidate op of every block and keeps their
activations for the backward pass, so its memory grows with the batch far faster than a
plain network's: on this project's 24 GB machine a tfnas-imagenet search needs about 8 GB at
batch 16 and was killed by the kernel at batch 64, in its second epoch. The estimate runs
that step's forward pass once at two small batch sizes and sums the activations autograd keeps
(``torch.autograd.graph.saved_tensors_hooks``), so it follows the space, the op-weight
scheme and the precision without a model of either; the weights, their gradients and the
optimizer's momentum come on top.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import TfnasError, named
from .nn.supernet import Supernet

# Over the kept activations: the backward pass's transient buffers and the allocator's
# slack. Measured on the CPU (bench/memory_estimate.py, bench/results/memory_estimate_cpu.json):
# the peak grows by 1.01-1.03x the kept bytes per image, on top of a fixed 0.2 GB
# (tfnas-small) to 2.4 GB (tfnas-imagenet) the probe does not see. 1.3 covers that fixed part
# at the batch sizes where memory runs out: estimate / measured 0.72 at tfnas-imagenet batch
# 8, 0.91 at 16, about 1.17 at 64 (extrapolated); 1.08 and 1.19 for tfnas-small at 64 and
# 256.
OVERHEAD = 1.3
PROBE_BATCHES = (2, 4)


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int  # parameters, gradients and SGD momentum
    fixed_bytes: int  # kept by the architecture step whatever the batch (autocast's copies)
    bytes_per_image: int  # activations the architecture step keeps for its backward pass
    batch_size: int

    @property
    def total_bytes(self) -> int:
        return int(self.weights_bytes + self.fixed_bytes + self._activations(self.batch_size))

    def _activations(self, batch_size: int) -> float:
        return OVERHEAD * self.bytes_per_image * batch_size

    def largest_batch(self, available: int) -> int:
        """The largest batch size whose estimate fits in ``available`` bytes (0: none)."""
        room = available - self.weights_bytes - self.fixed_bytes
        return max(0, int(room / self._activations(1)))


def saved_activation_bytes(
    net: torch.nn.Module, run: Callable[[], None], params: list[torch.Tensor] | None = None
) -> int:
    """Bytes of the distinct tensors autograd keeps for backward while ``run()`` runs the
    forward pass, parameters excluded."""
    skip = {p.data_ptr() for p in (params if params is not None else net.parameters())}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.data_ptr() not in skip:
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(storages.values())


def estimate_search_memory(
    space,
    batch_size: int,
    in_channels: int | None = None,
    *,
    net=None,
    device: torch.device | str = "cpu",
    autocast=None,
    memory_format: torch.memory_format = torch.channels_last,
) -> MemoryEstimate:
    """The memory of a search of ``space`` at ``batch_size``: the architecture step (every
    op mixed) is probed at two small batch sizes on ``net`` (default: a fresh supernet on
    the CPU), whose difference is the cost of one image. The probe leaves the network, its
    batch-norm statistics and the random number generators as they were."""
    if net is None:
        net = Supernet(space, space.classes, in_channels)
    device = torch.device(device)
    channels = in_channels or space.input_channels
    weights = net.weight_parameters()
    flags = [p.requires_grad for p in weights]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    was_training = net.training
    kept = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            net.train()
            for p in weights:  # as in the architecture step: weights frozen
                p.requires_grad_(False)
            for m in norms:  # momentum 0: the running statistics stay as they are
                m.momentum = 0.0
            op_weights = [
                [torch.softmax(net.alpha(s, b), 0) for b in range(len(stage))]
                for s, stage in enumerate(net.stages)
            ]
            for batch in PROBE_BATCHES:
                images = torch.randn(batch, channels, space.input_size, space.input_size)
                images = images.to(device).contiguous(memory_format=memory_format)

                def run(images=images) -> None:
                    context = autocast() if autocast is not None else contextlib.nullcontext()
                    with context:
                        net(images, op_weights=op_weights)

                kept[batch] = saved_activation_bytes(net, run, list(net.parameters()))
        finally:
            for p, flag in zip(weights, flags, strict=True):
                p.requires_grad_(flag)
            for m, (momentum, tracked) in zip(norms, saved, strict=True):
                m.momentum = momentum
                m.num_batches_tracked.copy_(tracked)
            net.train(was_training)
    small, large = PROBE_BATCHES
    per_image = max(0, (kept[large] - kept[small]) // (large - small))
    fixed = max(0, kept[small] - per_image * small)
    weight_bytes = sum(p.numel() * p.element_size() for p in weights)
    return MemoryEstimate(3 * weight_bytes, fixed, per_image, batch_size)


def available_bytes(device: torch.device | str) -> int | None:
    """Memory free for this process on ``device``: the GPU's free memory, or on the CPU
    the smaller of the kernel's MemAvailable and the container's (cgroup) limit; None
    where it cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            free = min(free, int(limit) - used) if free is not None else int(limit) - used
    except (OSError, ValueError):
        pass
    return free


def check_search_memory(estimate: MemoryEstimate, space_name: str, device) -> str | None:
    """Refuse a search that will not fit, naming a batch size that does; return a warning
    when it fits only narrowly (None: it fits). TFNAS_SKIP_MEMORY_CHECK=1 skips it."""
    if os.environ.get("TFNAS_SKIP_MEMORY_CHECK") == "1":
        return None
    available = available_bytes(device)
    if available is None:
        return None
    need = estimate.total_bytes
    gib = 1024**3
    device = torch.device(device)
    where = "this machine" if device.type == "cpu" else f"GPU {device}"
    if need > available:
        fits = estimate.largest_batch(available)
        advice = (
            f"{named('batch_size')} {fits} fits"
            if fits >= 1
            else "not even one image fits; use a smaller space or a larger machine"
        )
        raise TfnasError(
            f"{named('batch_size')} {estimate.batch_size}: a search of {space_name} needs about "
            f"{need / gib:.1f} GiB of memory at this batch size (estimated), and "
            f"{where} has {available / gib:.1f} GiB free; {advice} (set "
            "TFNAS_SKIP_MEMORY_CHECK=1 to try anyway)."
        )
    if need > 0.8 * available:
        return (
            f"note: a search of {space_name} at {estimate.batch_size} images a batch needs about "
            f"{need / gib:.1f} GiB (estimated) of the {available / gib:.1f} GiB available; "
            "other programs may push it out of memory."
        )
    return None
