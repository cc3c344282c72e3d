"""Batch-norm statistics re-estimated on training batches ("precise BN").

A BatchNorm layer's running statistics are an exponential average with momentum 0.1 of the
batches it has seen while the weights moved. After a few dozen steps they still describe the
first steps' activations, far from those of the current weights, and the error compounds
layer by layer: a short run then scores chance at evaluation although it trains well
(measured on tfnas-small, 30 steps: running variances 1.35x off in the first block, 280x at
the head; 10% test top-1 with them, about 60% after re-estimation). Re-estimating them as
plain averages over some training batches with the current weights removes that gap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice

import torch


@torch.no_grad()
def recalibrate_batchnorm(
    module: torch.nn.Module,
    batches: Iterable,
    max_batches: int,
    forward: Callable[[torch.Tensor], object] | None = None,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> int:
    """Replace the running statistics of every BatchNorm in ``module`` by their average over
    at most ``max_batches`` of ``batches``; returns the number of batches used.

    ``forward`` runs one batch (default: ``module``); ``prepare`` moves it to the device.
    The module's mode and the layers' momenta are restored; a module without BatchNorm, or
    no batches, is left as it was.
    """
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or max_batches < 1:
        return 0
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average of every batch seen
    was_training = module.training
    module.train()
    used = 0
    try:
        for images, _ in islice(batches, max_batches):
            images = prepare(images) if prepare is not None else images
            (forward or module)(images)
            used += 1
    finally:
        module.train(was_training)
        for m, (mean, var, momentum) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if used == 0:
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
    return used
