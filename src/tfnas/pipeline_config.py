"""The settings of a pipeline (table -> search -> retraining -> evaluation -> profile) and
their checks, the steps' own settings checked before any step runs. Torch-free, so that the
command line can build its options from it without loading torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import checks
from .errors import SettingError, TfnasError, named
from .options import TIMING_DEVICES, check_choices, setting, shared_setting
from .search.config import SearchConfig
from .train_config import TrainConfig


@dataclass
class PipelineConfig:
    """What decides a pipeline's result; ``search`` and ``train`` hold settings passed on to
    :class:`~tfnas.search.config.SearchConfig` and :class:`~tfnas.train_config.TrainConfig`."""

    space: str = setting(help="the search space: a built-in name or a YAML file", cli=False)
    lut: str = setting(help="latency table of the space on this device", cli=False)
    target_ms: float | None = setting(None, "latency target in ms", cli=False)
    target_fraction: float | None = setting(
        None, "or: the target at this fraction of the table's feasible range", cli=False
    )
    data: str = shared_setting("data")
    data_root: str | None = shared_setting("data_root")
    seed: int = shared_setting("seed")
    device: str = shared_setting("device")  # search and retraining (latency: the table's)
    lut_device: str = setting(
        "cpu",
        "what times the table the pipeline builds, when it builds one",
        choices=TIMING_DEVICES,
    )
    lut_threads: int = setting(1, "threads that time a table the pipeline builds")
    lut_batch_size: int = setting(1, "batch size at which a table the pipeline builds is timed")
    calibrate_archs: int = setting(
        30, "whole networks measured to calibrate a new table (0: none)", metavar="N"
    )
    search: dict[str, Any] = field(default_factory=dict, metadata={"cli": False})
    train: dict[str, Any] = field(default_factory=dict, metadata={"cli": False})
    arch: str | None = setting(
        None, "an architecture file to use instead of searching one", cli=False
    )

    def validate(self) -> None:
        if self.target_ms is not None and self.target_fraction is not None:
            raise TfnasError(
                f"give the latency target as {named('target_ms')} or {named('target_fraction')}."
            )
        if self.arch is None and self.target_ms is None and self.target_fraction is None:
            raise TfnasError(
                f"give the latency target as {named('target_ms')} or {named('target_fraction')}."
            )
        checks.optional(checks.positive, self.target_ms, "target_ms")
        checks.optional(checks.within, self.target_fraction, "target_fraction", 0, 1)
        if self.calibrate_archs and self.calibrate_archs < 3:
            raise SettingError("calibrate_archs", "must be 0 (no calibration) or at least 3.")
        checks.at_least(self.lut_threads, "lut_threads", 1)
        checks.at_least(self.lut_batch_size, "lut_batch_size", 1)
        check_choices(self)
        self._validate_steps()

    def _validate_steps(self) -> None:
        """The search's and the retraining's settings, checked before any step runs (the
        target is checked on its own); an error names the setting within its step
        (``search.epochs``)."""
        common = dict(data=self.data, data_root=self.data_root, seed=self.seed)
        for part, make in (
            ("search", lambda: SearchConfig(self.space, self.lut, 1.0, **common, **self.search)),
            # (the architecture is the search's result, not there yet: its checks need none)
            ("train", lambda: TrainConfig("", self.space, **common, **self.train)),
        ):
            try:
                make().validate()
            except TypeError as exc:  # an API caller's unknown setting
                raise TfnasError(f"the pipeline's {part} settings: {exc}.") from None
            except SettingError as exc:
                raise exc.within(part) from None


__all__ = ["PipelineConfig"]
