"""The reference latency runner: ONNX Runtime in its own process.

    python -m tfnas.runners.ort MODEL.onnx [MODEL.onnx ...] [--threads N]

For each model it prints one JSON line, ``{"model": "MODEL.onnx", "ms": 0.123}``, the latency
of one call in milliseconds, timed by the rule tfnas's in-process timers use (warm-up by
count and time, many calls timed one at a time each after a write that evicts the near
caches, the lower quartile per window, the best of several windows). It is what the tests
of the external-runner protocol run, and the template to copy for a device of your own:
whatever runs the model there, print the same line. A model that cannot be loaded or run
ends the program with a message on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from ..latency.measure import _time_calls, cpu_clock, summarise
from ..latency.policy import TimingPolicy
from ..options import DEFAULT_SCRUB_KIB


def time_model(path: str, threads: int, policy: TimingPolicy, scrub_kib: int = 0) -> float:
    """Milliseconds per call of the ONNX model at ``path`` on the CPU with ``threads``, each
    timed call after a write of ``scrub_kib`` KiB (cold near caches, as ``lut build``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {}
    for tensor in session.get_inputs():
        if not all(isinstance(d, int) for d in tensor.shape):
            raise ValueError(f"input {tensor.name} has no fixed shape ({tensor.shape})")
        feed[tensor.name] = np.random.default_rng(0).standard_normal(tensor.shape, np.float32)

    def call() -> object:
        return session.run(None, feed)

    clock = cpu_clock(scrub_kib)
    return min(
        summarise(_time_calls(call, policy, clock), policy.statistic) for _ in range(policy.rounds)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tfnas.runners.ort",
        description="Time ONNX models with ONNX Runtime; one JSON line per model.",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL.onnx")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    # tfnas says what it asks for (TFNAS_TIMING): blocks with cold near caches, as lut build
    # times them in-process; whole networks as they run
    network = os.environ.get("TFNAS_TIMING") == "network"
    parser.add_argument(
        "--scrub-kib",
        type=int,
        default=0 if network else DEFAULT_SCRUB_KIB,
        help="KiB written before every timed call, so that it starts with cold near caches "
        f"(default {DEFAULT_SCRUB_KIB} for blocks, 0 when TFNAS_TIMING=network)",
    )
    args = parser.parse_args(argv)
    policy = TimingPolicy()
    for path in args.models:
        try:
            ms = time_model(path, args.threads, policy, args.scrub_kib)
        except Exception as exc:  # any failure of the runtime: name the model, stop
            print(f"{path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        print(json.dumps({"model": path, "ms": ms}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
