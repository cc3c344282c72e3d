"""The settings of a search: everything that decides its result (and is checked again on
resume), with their defaults and checks. Torch-free, so that the command line can build its
options from it without loading torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .. import checks
from ..errors import SettingError
from ..options import (
    DEPTH_MODES,
    LATENCY_LOSSES,
    OP_WEIGHTS,
    SAMPLINGS,
    WIDTH_GRIDS,
    WIDTH_MODES,
    check_choices,
    setting,
    shared_setting,
)
from ..schedules import TemperatureSchedule


@dataclass
class SearchConfig:
    """Everything that decides a search's result (and is checked again on resume)."""

    space: str = setting(help="the search space: a built-in name or a YAML file", cli=False)
    lut: str = setting(help="latency table of the space on the device", cli=False)
    target_ms: float = setting(help="latency target in ms", cli=False)
    data: str = shared_setting("data")
    data_root: str | None = shared_setting("data_root")
    epochs: int = setting(10, "search epochs")
    warmup_epochs: int | None = setting(
        None, "weight-only epochs first (default: a ninth of the epochs, 10 of 90 in the paper)"
    )
    lambda_lat: float = setting(0.1, "weight of the latency loss")
    latency_loss: str = setting(
        "two-sided",
        "|LAT/T - 1| (two-sided, the paper's) or max(0, LAT/T - 1) (one-sided: no push towards "
        "the target from below)",
        choices=LATENCY_LOSSES,
    )
    seed: int = shared_setting("seed")
    batch_size: int = setting(
        64, "images per step (checked against the memory available before the start)"
    )
    limit: int | None = setting(None, "search on a seeded subset of this many images (split 80/20)")
    arch_fraction: float = setting(0.2, "share of the images that train the architecture")
    arch_every: int = setting(2, "one architecture step every this many weight steps")
    # the paper's 0.025 (cosine): at 200 steps it trained the shared-op supernet as well as
    # 0.1 did, or slightly better (bench/supernet_learning.py, seeds 0 and 1)
    weight_lr: float = setting(
        0.025, "peak learning rate of the supernet's weights (cosine over the search)"
    )
    weight_lr_warmup_epochs: float = setting(
        0.0, "epochs of linear warm-up of the weights' learning rate before the cosine"
    )
    weight_momentum: float = setting(0.9, "SGD momentum of the supernet's weights")
    weight_decay: float = setting(1e-5, "L2 weight decay of the supernet's weights")
    arch_lr: float | None = setting(
        None,
        "Adam learning rate of the architecture parameters (default: 7.5 / the number of "
        "architecture steps, within 0.01-0.1)",
    )
    arch_betas: tuple[float, float] = setting(
        (0.5, 0.999), "Adam betas of the architecture parameters"
    )
    # 0, not the paper's 5e-4: on log-probability alphas (about -2) its L2 gradient is ten
    # times the cross-entropy's and swamps Adam's normalisation (docs/search.md)
    arch_weight_decay: float = setting(0.0, "L2 weight decay of the architecture parameters (Adam)")
    grad_clip: float = setting(5.0, "gradient norm clip of the supernet's weights")
    tau_start: float = setting(5.0, "Gumbel-softmax temperature at the start")
    tau_end: float | None = setting(
        None, "temperature at the end (default: the paper's 5.0 x 0.96^80)"
    )
    sampling: str = setting(
        "gumbel-random",
        "how a weight step samples its paths (gumbel-random: the paper's bi-sampling)",
        choices=SAMPLINGS,
    )
    op_weights: str = setting(
        OP_WEIGHTS[0],
        "candidate ops share one kernel bank per block, or each has its own (the paper)",
        choices=OP_WEIGHTS,
    )
    depth: str = setting(
        "sink", "depth search (sink: the paper's sink-connecting)", choices=DEPTH_MODES
    )
    width: str = setting(
        "elastic", "width search (elastic: the paper's elasticity-scaling)", choices=WIDTH_MODES
    )
    width_grid: str = setting(
        "any",
        "elasticity-scaling to any width, or only to widths the table measured (its knots)",
        choices=WIDTH_GRIDS,
    )
    in_channels: int | None = shared_setting("in_channels")
    eval_batches: int | None = setting(
        20, "architecture-split batches the derived network is scored on after each epoch"
    )
    select_candidates: int = setting(
        0,
        "selection after scaling: K candidates drawn from the learned distribution besides the "
        "argmax, each scaled onto the target and scored in the supernet; the best is returned "
        "(0: the argmax)",
        metavar="K",
    )
    target_tolerance: float = setting(
        0.01,
        "how far (a fraction of the target) the searched network's predicted latency may miss "
        "the target; a search that misses it by more ends with exit status 3",
        metavar="FRACTION",
    )
    standing_randoms: int = setting(
        32,
        "random networks at the target the result is scored against in the supernet, for the "
        "'beats N of K' line (0: none)",
        metavar="K",
    )
    score_bn_batches: int = setting(
        20, "weight-split batches that re-estimate a scored path's batch-norm statistics"
    )
    workers: int = shared_setting("workers")
    device: str = shared_setting("device")
    channels_last: bool = setting(True, "NHWC activations (about 1.8x faster search steps on CPU)")
    precision: str = shared_setting("precision")
    deterministic: bool = shared_setting("deterministic")

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
        """Refuse a setting no search can run with, naming it."""
        import torch  # late: the CLI builds its options from this class without torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise SettingError("device", "cuda was asked for, but torch sees no CUDA GPU here.")
        checks.positive(self.target_ms, "target_ms")
        checks.at_least(self.epochs, "epochs", 1)
        checks.at_least(self.batch_size, "batch_size", 1)
        checks.at_least(self.arch_every, "arch_every", 1)
        checks.at_least(self.workers, "workers", 0)
        checks.optional(checks.at_least, self.limit, "limit", 2)
        checks.optional(checks.at_least, self.warmup_epochs, "warmup_epochs", 0)
        if not 0 <= self.resolved_warmup() < self.epochs:
            raise SettingError(
                "warmup_epochs", f"must lie in 0..{self.epochs - 1}, got {self.warmup_epochs}."
            )
        checks.positive(self.weight_lr, "weight_lr")
        checks.optional(checks.positive, self.arch_lr, "arch_lr")
        checks.non_negative(self.arch_weight_decay, "arch_weight_decay")
        checks.non_negative(self.weight_decay, "weight_decay")
        checks.non_negative(self.weight_lr_warmup_epochs, "weight_lr_warmup_epochs")
        checks.within(self.weight_momentum, "weight_momentum", 0, 1, high_open=True)
        if len(self.arch_betas) != 2:
            raise SettingError("arch_betas", f"must be two numbers, got {self.arch_betas!r}.")
        for beta in self.arch_betas:
            checks.within(beta, "arch_betas", 0, 1, high_open=True)
        checks.non_negative(self.lambda_lat, "lambda_lat")
        checks.within(self.arch_fraction, "arch_fraction", 0, 1, low_open=True, high_open=True)
        checks.positive(self.tau_start, "tau_start")
        checks.optional(checks.positive, self.tau_end, "tau_end")
        checks.positive(self.grad_clip, "grad_clip")
        checks.optional(checks.at_least, self.eval_batches, "eval_batches", 1)
        checks.at_least(self.select_candidates, "select_candidates", 0)
        # (0 would ask for an exact hit, which no width grid gives)
        checks.within(self.target_tolerance, "target_tolerance", 0, 1, low_open=True)
        checks.at_least(self.standing_randoms, "standing_randoms", 0)
        checks.at_least(self.score_bn_batches, "score_bn_batches", 1)
        check_choices(self)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> SearchConfig:
        """The settings a run saved (``config.json``); settings this tfnas no longer has
        are left out, and a missing one takes its default (what the older run used)."""
        known = {k: v for k, v in saved.items() if k in cls.__dataclass_fields__}
        if "arch_betas" in known:
            known["arch_betas"] = tuple(known["arch_betas"])
        return cls(**known)

    def summary(self) -> dict[str, Any]:
        """The settings an architecture file records of the search that found it."""
        kept = ("epochs", "seed", "sampling", "depth", "width", "lambda_lat", "latency_loss",
                "data", "limit", "select_candidates")  # fmt: skip
        return {k: v for k, v in self.to_dict().items() if k in kept}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["arch_betas"] = list(self.arch_betas)
        return out
