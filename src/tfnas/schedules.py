"""Schedules of a run's hyperparameters over its epochs: the learning rate's cosine and the
Gumbel-softmax temperature. Plain arithmetic (no torch), so configs can hold them."""

from __future__ import annotations

import math
from dataclasses import dataclass


def cosine_lr(
    base: float, done: float, total: float, warmup: float = 0.0, unit: float = 1.0
) -> float:
    """Linear warm-up over ``warmup``, then cosine decay to zero at ``total``: the one
    learning-rate schedule of search and training. ``done``, ``total`` and ``warmup`` are in
    one unit (steps, or fractional epochs so that the rate moves every step); ``unit`` is
    one step in it, so the first warm-up step already trains at ``base * unit / warmup``."""
    if done < warmup:
        return base * (done + unit) / warmup
    span = max(unit, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(done - warmup, span) / span))


@dataclass(frozen=True)
class TemperatureSchedule:
    """Gumbel-softmax temperature: ``start`` through the warm-up, then multiplied by ``decay``
    after every search epoch."""

    start: float
    decay: float
    warmup_epochs: int = 0

    @classmethod
    def spanning(
        cls, start: float, end: float, search_epochs: int, warmup_epochs: int = 0
    ) -> TemperatureSchedule:
        """The schedule that falls from ``start`` to ``end`` over ``search_epochs``."""
        return cls(start, (end / start) ** (1 / max(1, search_epochs)), warmup_epochs)

    def at(self, epoch: int) -> float:
        """The temperature used during ``epoch`` (0-based)."""
        return self.start * self.decay ** max(0, epoch - self.warmup_epochs)
