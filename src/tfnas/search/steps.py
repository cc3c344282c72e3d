"""The search's two steps as free functions, and the small objects they are made of.

:func:`weight_step` trains the supernet's weights on one batch along one or more sampled paths;
:func:`arch_step` trains the architecture parameters on one batch through the soft mixture of
all ops under the latency penalty. Neither reads data files, writes a run directory or reads
a value back to the host: they return their statistics as (detached) tensors, so a loop can
sum them on the device and read them once per log interval.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from ..engine import optimizer_step
from ..nn.supernet import Path, Supernet
from ..precision import Precision
from .sampling import gumbel_softmax

GradReducer = Callable[[list[torch.Tensor]], None]
_NO_SCALING = torch.amp.GradScaler("cpu", enabled=False)  # fp32 and bf16 need none


@dataclass(frozen=True)
class LatencyPenalty:
    """``lambda * |LAT / T - 1|`` (docs/method.md section 1): zero exactly on the target.

    ``one-sided``: ``lambda * max(0, LAT / T - 1)``. The paper's two-sided loss pushes the
    expected latency *up* while it sits below the target, towards slower ops that
    elasticity-scaling then pays for with width; the one-sided one charges only excess
    latency and leaves the rest to the cross-entropy (and to elasticity-scaling)."""

    target_ms: float
    weight: float = 0.1
    mode: str = "two-sided"

    def relative_error(self, expected_ms: torch.Tensor) -> torch.Tensor:
        excess = expected_ms / self.target_ms - 1
        return excess.clamp_min(0) if self.mode == "one-sided" else excess.abs()

    def __call__(self, expected_ms: torch.Tensor) -> torch.Tensor:
        return self.weight * self.relative_error(expected_ms)


@dataclass
class StepStats:
    """Sums over the batches of one or more steps, kept as device tensors until read."""

    loss: torch.Tensor | float = 0.0  # loss summed over images
    correct: torch.Tensor | float = 0.0  # correct predictions of the first path
    seen: int = 0
    steps: int = 0

    def add(self, other: StepStats) -> StepStats:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def as_floats(self) -> dict[str, float]:
        """Read the sums back to the host (one synchronisation)."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@dataclass
class ArchStepStats(StepStats):
    ce: torch.Tensor | float = 0.0  # cross-entropy summed over images
    latency_loss: torch.Tensor | float = 0.0  # relative latency error summed over steps


def _autocast(precision: Precision | None):
    return precision.autocast() if precision is not None else contextlib.nullcontext()


def weight_step(
    net: Supernet,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    paths: Sequence[Path],
    grad_clip: float | None = 5.0,
    reduce_grads: GradReducer | None = None,
    depth_weights: Sequence[torch.Tensor] | None = None,
    precision: Precision | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> StepStats:
    """One SGD step on the summed cross-entropy of ``paths`` (bi-sampling: two paths, one
    backward). ``reduce_grads`` averages gradients across processes under torchrun;
    ``depth_weights`` replace the supernet's own (a fixed depth, say); ``precision`` runs the
    forward passes under autocast, ``scaler`` scales the loss (fp16)."""
    net.train()
    optimizer.zero_grad(set_to_none=True)
    loss = images.new_zeros((), dtype=torch.float32)
    correct = None
    with _autocast(precision):
        for path in paths:
            logits = net(images, path=path, depth_weights=depth_weights)
            loss = loss + F.cross_entropy(logits, labels)
            if correct is None:
                correct = (logits.detach().argmax(1) == labels).sum()
    optimizer_step(
        loss, net.weight_parameters(), optimizer, scaler or _NO_SCALING, grad_clip, reduce_grads
    )
    n = len(labels)
    return StepStats(loss.detach() / len(paths) * n, correct, n, 1)


def arch_step(
    net: Supernet,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    table,
    penalty: LatencyPenalty,
    tau: float,
    generator: torch.Generator,
    grad_clip: float | None = 5.0,
    reduce_grads: GradReducer | None = None,
    precision: Precision | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> ArchStepStats:
    """One step of the architecture parameters: every block's ops mixed with soft
    Gumbel-softmax weights at temperature ``tau``, loss = CE + latency penalty (the
    network under ``precision``'s autocast, the latency in fp32)."""
    op_weights = [
        [gumbel_softmax(net.alpha(s, b), tau, generator) for b in range(len(stage))]
        for s, stage in enumerate(net.stages)
    ]
    depth_weights = net.depth_weights()
    optimizer.zero_grad(set_to_none=True)
    weights = net.weight_parameters()
    # With the weights frozen, autograd skips their gradients, which halves the cost of this
    # (all-ops) step.
    for p in weights:
        p.requires_grad_(False)
    try:
        with _autocast(precision):
            logits = net(images, op_weights=op_weights, depth_weights=depth_weights)
            ce = F.cross_entropy(logits, labels)
        expected = net.expected_latency(table, op_weights, depth_weights)
        latency_loss = penalty.relative_error(expected)
        loss = ce + penalty.weight * latency_loss
        optimizer_step(
            loss, net.arch_parameters(), optimizer, scaler or _NO_SCALING, grad_clip, reduce_grads
        )
    finally:
        for p in weights:
            p.requires_grad_(True)
    net.renormalise_alphas()
    n = len(labels)
    correct = (logits.detach().argmax(1) == labels).sum()
    return ArchStepStats(loss.detach() * n, correct, n, 1, ce.detach() * n, latency_loss.detach())


@torch.no_grad()
def batch_stat_accuracy(
    model: torch.nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
) -> float:
    """Accuracy of ``forward`` over ``batches`` with batch statistics and without dropout.

    A supernet path is scored this way: the running statistics of a supernet mix every path
    that ran through each op and describe no one network. They are left untouched (momentum
    0 while scoring); ``model`` is left in training mode.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    for m in norms:
        m.momentum = 0.0
    model.train()
    for m in dropouts:
        m.eval()
    correct = seen = 0
    try:
        for images, labels in batches:
            correct += int((forward(images).argmax(1) == labels).sum())
            seen += len(labels)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        for m in dropouts:
            m.train()
    return correct / max(1, seen)
