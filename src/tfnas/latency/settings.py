"""The settings of the latency-table commands, each declared once: what times the models,
which models a table's plan covers, what a check and a profile measure. Torch-free, so that
the command line builds its options from these fields without loading torch; the library's
functions take their defaults from them."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import IN_CHANNELS, MODEL_FORMATS, TIMING_DEVICES, WIDTH_GRIDS, setting

# what times a table's blocks and networks: in-process, or the user's program (a runner)
METER_DEVICES = (*TIMING_DEVICES, "external")


@dataclass(frozen=True)
class MeterSettings:
    """Where and how wide the timed calls run."""

    device: str = setting(
        "cpu",
        "what times the networks: torch on the CPU or a CUDA GPU, ONNX Runtime, or an external "
        "runner",
        choices=METER_DEVICES,
    )
    threads: int = setting(1, "CPU threads", low=1)
    batch_size: int = setting(1, "images per timed call", low=1)


@dataclass(frozen=True)
class RunnerSettings:
    """The user's program that times model files on a device tfnas cannot run on."""

    runner: str | None = setting(
        None,
        "time models with this command (device external; docs/latency-table.md): {model} is "
        'replaced by a model file, or {models} by several; it prints {"ms": ...} per model',
        metavar="'CMD ... {model}'",
    )
    runner_timeout: float = setting(
        120.0, "seconds a runner may take per model", above=0, metavar="S"
    )


@dataclass(frozen=True)
class PlanSettings:
    """Which models a latency table is measured from: the widths of every block, the
    classifier and input of the networks, the file format an external runner is given."""

    width_step: int = setting(8, "measure every K mid channels plus the bounds", low=1, metavar="K")
    classes: int | None = setting(None, "classifier size (default: the space's)", low=2)
    in_channels: int | None = setting(
        None, "input channels of the networks (default: the space's)", choices=IN_CHANNELS
    )
    fmt: str = setting(
        "onnx",
        "model files for an external runner and for a plan",
        choices=tuple(MODEL_FORMATS),
        flag="format",
    )


@dataclass(frozen=True)
class CheckSettings:
    """A table's check against whole random networks."""

    archs: int = setting(30, "random networks to measure", low=1, metavar="N")
    seed: int = setting(1000, "seed of the first random network")
    calibrate: bool = setting(False, "fit measured = a * predicted + b and store it in the table")
    width_grid: str = setting(
        "any",
        "random networks at any width, or at the widths the table measured (what a search "
        "with width_grid knots produces)",
        choices=WIDTH_GRIDS,
    )


@dataclass(frozen=True)
class ProfileSettings:
    """A whole network's measurement."""

    rounds: int = setting(20, "timing windows", low=1)
    gap_seconds: float = setting(0.5, "seconds between windows", low=0, flag="gap")
    classes: int | None = setting(
        None, "classifier size (default: the table's, else the space's)", low=2
    )
    in_channels: int | None = setting(
        None, "input channels (default: the table's, else the space's)", choices=IN_CHANNELS
    )


__all__ = [
    "METER_DEVICES",
    "CheckSettings",
    "MeterSettings",
    "PlanSettings",
    "ProfileSettings",
    "RunnerSettings",
]
