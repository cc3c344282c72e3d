"""A latency runner for Intel's OpenVINO runtime on the CPU (``pip install 'tfnas[openvino]'``).

    python -m tfnas.runners.openvino MODEL.onnx [MODEL.onnx ...] [--threads N] [--rounds R]

The CPU plugin compiles each ONNX model with ``INFERENCE_NUM_THREADS`` and the latency hint,
and one infer request times it by :mod:`tfnas.runners.template`'s rule; the output is that
runner's, one JSON line per model.
"""

from __future__ import annotations

import sys

import numpy as np

from .template import Call, main


def load_openvino(path: str, threads: int) -> Call:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        path,
        "CPU",
        {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1},
    )
    request = compiled.create_infer_request()
    shape = [int(d) for d in compiled.input(0).shape]
    x = np.random.default_rng(0).standard_normal(shape, np.float32)
    return lambda: request.infer({0: x})


if __name__ == "__main__":
    sys.exit(main(load=load_openvino, prog="python -m tfnas.runners.openvino"))
