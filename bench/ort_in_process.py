"""ONNX Runtime timed inside a process that has just run torch (as the in-process ort-cpu
meter does after exporting each module) against the reference runner's own process: 60
models of a plan, each timed after a burst of torch work on torch's default threads, then
with torch held to 1 thread, then by ``python -m tfnas.runners.ort``. Prints JSON: the
median ratios to the runner.

Usage: python bench/ort_in_process.py PLAN_DIR   (a plan from tfnas lut plan)
"""

import json
import random
import statistics
import subprocess
import sys

import torch

from tfnas.latency.measure import torch_threads
from tfnas.latency.plan import load_manifest
from tfnas.latency.policy import TimingPolicy
from tfnas.runners.ort import time_model

manifest = load_manifest(sys.argv[1], check_files=False)
rng = random.Random(0)
entries = rng.sample(manifest.entries, 60)
policy = TimingPolicy()
files = [str(manifest.model_path(e)) for e in entries]


def burst():
    """Torch work on its default threads, as an export is."""
    x = torch.randn(256, 256)
    for _ in range(20):
        x = torch.tanh(x @ x)


a = []  # after the burst, torch at its default threads
for f in files:
    burst()
    a.append(time_model(f, 1, policy))
b = []  # the same with torch held to 1 thread
with torch_threads(1):
    for f in files:
        burst()
        b.append(time_model(f, 1, policy))
out = subprocess.run(  # the runner, in its own process
    [sys.executable, "-m", "tfnas.runners.ort", *files, "--threads", "1"],
    capture_output=True,
    text=True,
    check=True,
)
c = [json.loads(line)["ms"] for line in out.stdout.splitlines()]


def median_ratio(mine: list[float]) -> float:
    return statistics.median(x / z for x, z in zip(mine, c, strict=True))


result = {
    "command": "python bench/ort_in_process.py " + " ".join(sys.argv[1:]),
    "models": len(files),
    "torch_default_threads_over_runner": median_ratio(a),
    "torch_1_thread_over_runner": median_ratio(b),
    "torch_threads_default": torch.get_num_threads(),
}
print(json.dumps(result, indent=2))
