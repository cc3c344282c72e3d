"""A latency runner for tfnas in one file that imports nothing from tfnas: copy it to the
device, replace :func:`load_model` with what runs a model there, and give tfnas the command.

    python template.py MODEL [MODEL ...] [--threads N] [--rounds R] [--scrub-kib K]
    tfnas lut build --space S --device external --runner 'python template.py {models}' ...

The protocol it keeps (docs/latency-table.md, "The runner protocol"):

- Arguments: the model files, each its own argument (``{models}``), or one (``{model}``).
- Standard output: one JSON line per model, ``{"model": PATH, "ms": 0.42, "threads": 1}``;
  ``model`` is the path exactly as it was given (not resolved), ``ms`` the latency of one
  call in milliseconds (positive and finite), ``threads`` the threads the runtime used
  (tfnas records it). Anything else on standard output is ignored.
- ``TFNAS_TIMING`` in the environment: ``block`` (time it as a block inside a network,
  starting each call with cold near caches) or ``network`` (as a network runs, warm).
- Exit status 0; on any failure a message on standard error naming the model, and status 1.

How it times, the rule tfnas's in-process timers follow (their constants are copied below; a
test holds them equal): warm-up by count and by time; windows of many calls, each call timed
alone after writing a buffer that evicts the near caches (blocks only); the lower quartile
of a window; ``rounds`` windows per model, interleaved across the models of one call so that
a slow spell of the machine touches every model alike; the best window kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

import numpy as np

# tfnas.latency.policy.TimingPolicy's defaults and tfnas.options.DEFAULT_SCRUB_KIB
WARMUP_CALLS = 5
WARMUP_SECONDS = 0.01
MIN_CALLS = 15
MAX_CALLS = 200
MIN_SECONDS = 0.03
ROUNDS = 3
SCRUB_KIB = 4096

Call = Callable[[], object]


def load_model(path: str, threads: int) -> Call:
    """A call that runs the model at ``path`` once on a fixed input: replace this for your
    runtime. This one is ONNX Runtime on the CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {}
    for tensor in session.get_inputs():  # tfnas's models: one float32 input named x
        if not all(isinstance(d, int) for d in tensor.shape):
            raise ValueError(f"input {tensor.name} has no fixed shape ({tensor.shape})")
        feed[tensor.name] = np.random.default_rng(0).standard_normal(tensor.shape, np.float32)
    return lambda: session.run(None, feed)


def window_ms(call: Call, scrub: np.ndarray | None) -> float:
    """The lower quartile of one window's per-call latencies, in ms."""
    started = time.perf_counter()
    for _ in range(WARMUP_CALLS):
        call()
    while time.perf_counter() - started < WARMUP_SECONDS:
        call()
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < MAX_CALLS and (
        len(samples) < MIN_CALLS or time.perf_counter() - started < MIN_SECONDS
    ):
        if scrub is not None:
            scrub.fill(1.0)  # the near caches hold this now, not the model
        begin = time.perf_counter()
        call()
        samples.append((time.perf_counter() - begin) * 1000)
    samples.sort()
    position = (len(samples) - 1) * 0.25
    low = int(position)
    high = min(low + 1, len(samples) - 1)
    return samples[low] + (samples[high] - samples[low]) * (position - low)


def time_models(calls: dict[str, Call], rounds: int, scrub_kib: int) -> dict[str, float]:
    """Every model's best window over ``rounds`` passes over all of them."""
    scrub = np.zeros(scrub_kib * 256, np.float32) if scrub_kib > 0 else None
    best = {path: float("inf") for path in calls}
    for _ in range(rounds):
        for path, call in calls.items():
            best[path] = min(best[path], window_ms(call, scrub))
    return best


def main(
    argv: list[str] | None = None,
    load: Callable[[str, int], Call] = load_model,
    prog: str = "template.py",
) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Time model files for tfnas: one JSON line per model."
    )
    parser.add_argument("models", nargs="+", metavar="MODEL")
    parser.add_argument("--threads", type=int, default=1, help="runtime threads (default 1)")
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help=f"windows per model (default {ROUNDS})"
    )
    network = os.environ.get("TFNAS_TIMING") == "network"
    parser.add_argument(
        "--scrub-kib",
        type=int,
        default=0 if network else SCRUB_KIB,
        help=f"KiB written before every timed call (default {SCRUB_KIB} for blocks, 0 for "
        "networks)",
    )
    args = parser.parse_args(argv)
    calls = {}
    for path in args.models:
        try:
            calls[path] = load(path, args.threads)
        except Exception as exc:  # any failure of the runtime: name the model, stop
            print(f"{path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    try:
        best = time_models(calls, max(1, args.rounds), args.scrub_kib)
    except Exception as exc:
        print(f"{args.models[0]} (or another of its batch): {type(exc).__name__}: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    for path in args.models:
        print(json.dumps({"model": path, "ms": best[path], "threads": args.threads}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
