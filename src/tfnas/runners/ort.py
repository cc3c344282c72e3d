"""The reference latency runner: ONNX Runtime on this CPU, in its own process.

    python -m tfnas.runners.ort MODEL.onnx [MODEL.onnx ...] [--threads N] [--rounds R]

It is :mod:`tfnas.runners.template` as it ships (that file, which imports nothing from
tfnas, is the one to copy for a device of your own): one JSON line per model,
``{"model": "MODEL.onnx", "ms": 0.123, "threads": 1}``, timed by the rule of tfnas's
in-process timers.
"""

from __future__ import annotations

import sys

from .template import load_model, main

if __name__ == "__main__":
    sys.exit(main(load=load_model, prog="python -m tfnas.runners.ort"))
