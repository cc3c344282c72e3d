"""The choice lists and shared defaults of tfnas's settings, declared once.

The modules that act on a setting and the command line that offers it both read its
choices from here. This module imports nothing, so that the CLI can build its parser (and
answer ``tfnas --help``) without loading torch.
"""

from __future__ import annotations

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
