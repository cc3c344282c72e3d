"""Schedules of a run's hyperparameters over its epochs: the learning rate's cosine and the
Gumbel-softmax temperature. Plain arithmetic (no torch), so configs can hold them."""

from __future__ import annotations

import math
from dataclasses import dataclass


def cosine_lr(base: float, epoch: float, epochs: float, warmup: float = 0.0) -> float:
    """Linear warm-up over ``warmup`` epochs, then cosine decay to zero at ``epochs``
    (fractional epochs: the schedule can move every step)."""
    if warmup > 0 and epoch < warmup:
        return base * (epoch + 1e-3) / warmup
    span = max(1e-9, epochs - warmup)
    return 0.5 * base * (1 + math.cos(math.pi * min(1.0, (epoch - warmup) / span)))


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
