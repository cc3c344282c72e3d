"""The settings of a search: everything that decides its result (and is checked again on
resume), with their defaults and checks. Torch-free, so that the command line can build its
options from it without loading torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .. import checks
from ..errors import TfnasError
from ..options import (
    COMPUTE_DEVICES,
    DEPTH_MODES,
    IN_CHANNELS,
    LATENCY_LOSSES,
    OP_WEIGHTS,
    PRECISIONS,
    SAMPLINGS,
    WIDTH_GRIDS,
    WIDTH_MODES,
)
from ..schedules import TemperatureSchedule


@dataclass
class SearchConfig:
    """Everything that decides a search's result (and is checked again on resume)."""

    space: str
    lut: str
    target_ms: float
    data: str = "fashion-mnist"
    data_root: str | None = None
    epochs: int = 10
    warmup_epochs: int | None = None  # default: a ninth of the epochs (10 of 90 in the paper)
    lambda_lat: float = 0.1
    latency_loss: str = "two-sided"  # or one-sided: only latency above the target is charged
    seed: int = 0
    batch_size: int = 64
    limit: int | None = None  # use this many training images (split 80/20)
    arch_fraction: float = 0.2
    arch_every: int = 2  # one architecture step every this many weight steps
    # the paper's 0.025 (cosine): at 200 steps it trained the shared-op supernet as well as
    # 0.1 did, or slightly better (bench/supernet_learning.py, seeds 0 and 1)
    weight_lr: float = 0.025
    weight_lr_warmup_epochs: float = 0.0  # linear warm-up of the weight lr, then cosine
    weight_momentum: float = 0.9
    weight_decay: float = 1e-5
    arch_lr: float | None = None  # default: resolved_arch_lr()
    arch_betas: tuple[float, float] = (0.5, 0.999)
    # 0, not the paper's 5e-4: on log-probability alphas (about -2) its L2 gradient is ten
    # times the cross-entropy's and swamps Adam's normalisation (docs/search.md)
    arch_weight_decay: float = 0.0
    grad_clip: float = 5.0
    tau_start: float = 5.0
    tau_end: float | None = None  # default: the paper's 5.0 x 0.96^80, reached at the end
    sampling: str = "gumbel-random"
    op_weights: str = OP_WEIGHTS[0]
    depth: str = "sink"
    width: str = "elastic"
    # elasticity-scaling to any width, or only to widths the table measured (its knots)
    width_grid: str = "any"
    in_channels: int | None = None
    eval_batches: int | None = 20  # arch-split batches to score the derived network on
    # selection after scaling (tfnas.search.selection): this many candidates drawn from the
    # learned distribution besides the argmax, each scaled onto the target and scored as a
    # supernet path on the architecture split; the best is returned. 0: the argmax alone
    select_candidates: int = 0
    # random architectures at the target the result is scored against in the supernet
    # ("beats N of K"); 0: none
    standing_randoms: int = 32
    score_bn_batches: int = 20  # weight-split batches that re-estimate a scored path's BN
    workers: int = 0
    device: str = "auto"
    channels_last: bool = True  # NHWC activations: about 1.8x faster search steps on CPU
    precision: str = "auto"  # bf16 autocast on a GPU, fp32 on the CPU (tfnas.precision)
    deterministic: bool = False  # bit-exact CUDA kernels (exact resume on a GPU; slower)

    def resolved_warmup(self) -> int:
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        return max(1, round(self.epochs / 9)) if self.epochs > 1 else 0

    def resolved_arch_lr(self, arch_steps: int) -> float:
        """The architecture learning rate: as given, else 7.5 / the number of architecture
        steps of the search, within the paper's 0.01 and 0.1.

        Per step the alphas' gradient is mostly batch noise (mean / standard deviation about
        0.3 per element, measured), so how far the op distribution moves grows with
        lr x steps: a short search needs a larger rate to decide anything (75 steps: entropy
        0.99 of uniform at 0.01, 0.62 at 0.1), a long one the paper's 0.01.
        """
        if self.arch_lr is not None:
            return self.arch_lr
        return min(0.1, max(0.01, 7.5 / max(1, arch_steps)))

    def temperature(self) -> TemperatureSchedule:
        """tau from its start to its end over the search epochs."""
        warmup = self.resolved_warmup()
        end = self.tau_end if self.tau_end is not None else self.tau_start * 0.96**80
        return TemperatureSchedule.spanning(self.tau_start, end, self.epochs - warmup, warmup)

    def validate(self) -> None:
        """Refuse a setting no search can run with, naming its flag."""
        import torch  # late: the CLI builds its options from this class without torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise TfnasError("--device cuda was asked for, but torch sees no CUDA GPU here.")
        checks.positive(self.target_ms, "--target-ms")
        checks.at_least(self.epochs, "--epochs", 1)
        checks.at_least(self.batch_size, "--batch-size", 1)
        checks.at_least(self.arch_every, "--arch-every", 1)
        checks.at_least(self.workers, "--workers", 0)
        checks.optional(checks.at_least, self.limit, "--limit", 2)
        checks.optional(checks.at_least, self.warmup_epochs, "--warmup-epochs", 0)
        if not 0 <= self.resolved_warmup() < self.epochs:
            raise TfnasError(
                f"--warmup-epochs must lie in 0..{self.epochs - 1}, got {self.warmup_epochs}."
            )
        checks.positive(self.weight_lr, "--weight-lr")
        checks.optional(checks.positive, self.arch_lr, "--arch-lr")
        checks.non_negative(self.arch_weight_decay, "--arch-weight-decay")
        checks.non_negative(self.weight_decay, "weight_decay")
        checks.non_negative(self.lambda_lat, "--lambda-lat")
        checks.within(self.arch_fraction, "arch_fraction", 0, 1, low_open=True, high_open=True)
        checks.positive(self.tau_start, "tau_start")
        checks.optional(checks.positive, self.tau_end, "tau_end")
        checks.positive(self.grad_clip, "grad_clip")
        checks.optional(checks.at_least, self.eval_batches, "eval_batches", 1)
        checks.at_least(self.select_candidates, "--select-candidates", 0)
        checks.at_least(self.standing_randoms, "--standing-randoms", 0)
        checks.at_least(self.score_bn_batches, "score_bn_batches", 1)
        for flag, value, allowed in (
            ("--sampling", self.sampling, SAMPLINGS),
            ("--latency-loss", self.latency_loss, LATENCY_LOSSES),
            ("--op-weights", self.op_weights, OP_WEIGHTS),
            ("--depth", self.depth, DEPTH_MODES),
            ("--precision", self.precision, PRECISIONS),
            ("--width-grid", self.width_grid, WIDTH_GRIDS),
            ("--width", self.width, WIDTH_MODES),
            ("--device", self.device, COMPUTE_DEVICES),
        ):
            if value not in allowed:
                raise TfnasError(f"{flag} must be one of {', '.join(allowed)}, got {value!r}.")
        if self.in_channels not in (None, *IN_CHANNELS):
            raise TfnasError(f"--in-channels must be 1 or 3, got {self.in_channels}.")

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> SearchConfig:
        """The settings a run saved (``config.json``); settings this tfnas no longer has
        are left out, and a missing one takes its default (what the older run used)."""
        known = {k: v for k, v in saved.items() if k in cls.__dataclass_fields__}
        if "arch_betas" in known:
            known["arch_betas"] = tuple(known["arch_betas"])
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["arch_betas"] = list(self.arch_betas)
        return out
