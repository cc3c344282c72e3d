"""The settings of a retraining: everything that decides its result (and is checked again
on resume), with their defaults and checks. Torch-free, so that the command line can build
its options from it without loading torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from . import checks
from .errors import SettingError
from .options import (
    check_choices,
    setting,
    shared_setting,
)

BN_AUTO_BATCHES = 50
BN_AUTO_BELOW_STEPS = 1000


@dataclass
class TrainConfig:
    """Everything that decides a training run (checked again on resume)."""

    arch: str = setting(help="the architecture file to train", cli=False)
    space: str | None = setting(
        None, "the architecture's space, when not built in", metavar="NAME|FILE"
    )
    data: str = shared_setting("data")
    data_root: str | None = shared_setting("data_root")
    epochs: int = setting(10, "training epochs")
    batch_size: int = setting(128, "images per step")
    lr: float | None = setting(
        None, "peak learning rate (default: the paper's 0.2 at batch 512, scaled linearly)"
    )
    momentum: float = setting(0.9, "SGD momentum")
    weight_decay: float = setting(1e-5, "L2 weight decay (SGD)")
    warmup_epochs: float | None = setting(
        None, "linear warm-up (default: 2% of the epochs, 5 of 250, at least 0.5)"
    )
    label_smoothing: float = setting(0.1, "of the cross-entropy, in [0, 1)")
    dropout: float | None = setting(None, "before the classifier (default: the space's)")
    drop_connect: float = setting(
        0.2, "drop-connect rate of the last block (scaled down towards the first)"
    )
    grad_clip: float = setting(5.0, "gradient norm clip")
    ema_decay: float | None = setting(
        None, "keep an EMA of the weights with this decay (e.g. 0.999)", flag="ema", metavar="DECAY"
    )
    bn_batches: int | None = setting(
        None,
        "training batches that re-estimate the batch-norm statistics before every evaluation "
        f"(default: {BN_AUTO_BATCHES} for runs of under {BN_AUTO_BELOW_STEPS:,} steps, whose "
        "running statistics have not settled, else 0)",
        metavar="N",
    )
    precision: str = shared_setting("precision")
    deterministic: bool = shared_setting("deterministic")
    seed: int = shared_setting("seed")
    limit: int | None = setting(None, "train on a seeded subset of this many images")
    in_channels: int | None = shared_setting("in_channels")
    workers: int = shared_setting("workers")
    device: str = shared_setting("device")
    channels_last: bool = setting(True, "NHWC activations (1.2-1.7x faster training steps on CPU)")

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else 0.2 * self.batch_size / 512

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolved_bn_batches(self, steps_per_epoch: int) -> int:
        if self.bn_batches is not None:
            return self.bn_batches
        return BN_AUTO_BATCHES if self.epochs * steps_per_epoch < BN_AUTO_BELOW_STEPS else 0

    def resolved_warmup(self) -> float:
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        return min(self.epochs / 2, max(0.5, 0.02 * self.epochs))

    def validate(self) -> None:
        """Refuse a setting no training can run with, naming it."""
        import torch  # late: the CLI builds its options from this class without torch

        checks.at_least(self.epochs, "epochs", 1)
        checks.at_least(self.batch_size, "batch_size", 1)
        checks.at_least(self.workers, "workers", 0)
        checks.optional(checks.at_least, self.limit, "limit", 1)
        checks.optional(checks.positive, self.lr, "lr")
        checks.within(self.momentum, "momentum", 0, 1, high_open=True)
        checks.non_negative(self.weight_decay, "weight_decay")
        checks.optional(checks.non_negative, self.warmup_epochs, "warmup_epochs")
        checks.within(self.label_smoothing, "label_smoothing", 0, 1, high_open=True)
        checks.optional(checks.within, self.dropout, "dropout", 0, 1, high_open=True)
        checks.within(self.drop_connect, "drop_connect", 0, 1, high_open=True)
        checks.positive(self.grad_clip, "grad_clip")
        checks.optional(
            checks.within, self.ema_decay, "ema_decay", 0, 1, low_open=True, high_open=True
        )
        checks.optional(checks.at_least, self.bn_batches, "bn_batches", 0)
        check_choices(self)
        if self.device == "cuda" and not torch.cuda.is_available():
            raise SettingError("device", "cuda was asked for, but torch sees no CUDA GPU here.")


__all__ = ["BN_AUTO_BATCHES", "BN_AUTO_BELOW_STEPS", "TrainConfig"]
