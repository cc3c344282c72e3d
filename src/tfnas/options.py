"""The choice lists and shared defaults of tfnas's settings, and the declaration of a
config field as a setting, each written once.

A config dataclass declares every field with :func:`setting`: its default, its help text
and (where it has them) its choices. The command line builds its options from those fields
(``tfnas.cli``), and :func:`check_choices` checks the choices, so that no default, choice
list or help text is written twice. This module imports nothing heavy, so that the CLI can
build its parser (and answer ``tfnas --help``) without loading torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from .errors import SettingError

# where searches, trainings and evaluations run ("auto": a GPU when torch sees one)
COMPUTE_DEVICES = ("auto", "cpu", "cuda")
# what times the blocks and networks of a latency table in-process
TIMING_DEVICES = ("cpu", "cuda", "ort-cpu")
# the per-window statistic of a latency measurement
TIMING_STATISTICS = ("p25", "median", "min", "mean")
# CPU blocks start each timed call with their near caches cold (a 4 MiB buffer written
# first), as inside a network: on tfnas-small (2-core EPYC, 1 MiB L2 per core) the raw sum of
# blocks then missed 30 whole networks by less than when timed warm in 7 of 8 paired checks,
# by a median of 7 points (bench/results/lut_cache_state.json). 0 keeps the warm timing.
DEFAULT_SCRUB_KIB = 4096
# images per batch where only throughput is at stake: an evaluation, and the one real
# batch `tfnas info` runs through a network
EVAL_BATCH_SIZE = 256
INFO_BATCH_SIZE = 32
# the largest |exported - torch| on the logits an exported model may show
EXPORT_TOLERANCE = 1e-4
# image channels a network can take (grayscale or RGB)
IN_CHANNELS = (1, 3)
# model files (format -> file suffix): exported networks and a carried plan's models
MODEL_FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
# numeric precision of training steps (tfnas.precision)
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# how a weight step samples its paths (tfnas.search.sampling); gumbel-random is bi-sampling
SAMPLINGS = ("gumbel", "gumbel-random", "gumbel-gumbel", "gumbel-max")
# the latency term of the architecture loss (tfnas.search.steps)
LATENCY_LOSSES = ("two-sided", "one-sided")
# candidate ops share one kernel bank per block, or each has its own (tfnas.nn.supernet);
# the first is the default
OP_WEIGHTS = ("shared", "separate")
# depth search: sink-connecting, a skip op per block, or none (tfnas.nn.supernet)
DEPTH_MODES = ("sink", "skip-op", "fixed")
# width search: elasticity-scaling, or the nominal widths
WIDTH_MODES = ("elastic", "fixed")
# elasticity-scaling to any width, or only to widths the table measured (its knots)
WIDTH_GRIDS = ("any", "knots")


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    choices: Sequence[Any] | None = None,
    metavar: str | None = None,
    flag: str | None = None,
    cli: bool = True,
    low: float | None = None,
    above: float | None = None,
) -> Any:
    """A config field and what its command-line option needs. ``flag``: the option's name
    where it is not the field's (``ema_decay`` is ``--ema``); ``cli=False``: a setting
    given otherwise (a positional argument, or one the command works out itself); ``low``
    and ``above``: the least value it takes, or the value it must exceed, which the command
    line checks as it parses."""
    metadata = {"help": help, "flag": flag, "cli": cli, "metavar": metavar}
    if low is not None or above is not None:
        metadata["bound"] = (low, False) if low is not None else (above, True)
    if choices is not None:
        metadata["choices"] = tuple(choices)
    return dataclasses.field(default=default, metadata=metadata)


def option_name(field: dataclasses.Field) -> str:
    """The field's option without its dashes or a command's prefix: ``weight-lr``."""
    return field.metadata.get("flag") or field.name.replace("_", "-")


def check_choices(config: Any) -> None:
    """Refuse a field of ``config`` whose value is not one of its declared choices (None
    passes where the field's default is None: the setting was left to tfnas)."""
    for field in dataclasses.fields(config):
        allowed = field.metadata.get("choices")
        value = getattr(config, field.name)
        if allowed is None or value in allowed or (value is None and field.default is None):
            continue
        raise SettingError(
            field.name, f"must be one of {', '.join(map(str, allowed))}, got {value!r}."
        )


# Settings that a search and a retraining share, declared once for both configs.
_SHARED: dict[str, dict[str, Any]] = {
    "data": dict(
        default="fashion-mnist",
        help="data source: a built-in name, an image folder or a list file",
        metavar="D",
    ),
    "data_root": dict(default=None, help="image root for a list-file data source", metavar="DIR"),
    "seed": dict(default=0, help="seed of every source of randomness"),
    "in_channels": dict(
        default=None, help="input channels (default: the space's)", choices=IN_CHANNELS
    ),
    "workers": dict(default=0, help="data-loading worker processes"),
    "device": dict(default="auto", help="where the run's steps run", choices=COMPUTE_DEVICES),
    "precision": dict(
        default="auto",
        help="numeric precision of the steps (default auto: bf16 autocast on a GPU that has it, "
        "else fp16; fp32 on the CPU)",
        choices=PRECISIONS,
    ),
    "deterministic": dict(
        default=False,
        help="bit-exact CUDA kernels, so that a resumed run ends exactly as an uninterrupted "
        "one (slower on a GPU; the CPU is exact already)",
    ),
}


def shared_setting(name: str) -> Any:
    """The field of a setting that searches and retrainings share (``data``, ``seed``,
    ``device``, ``precision``, ...), declared once for both."""
    spec = dict(_SHARED[name])
    return setting(spec.pop("default"), spec.pop("help"), **spec)
