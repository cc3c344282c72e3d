"""The search's memory estimate (tfnas.memory) against the peak memory of real search steps.

For each space and batch size, a fresh process builds the supernet, runs one weight step
(bi-sampling) and one architecture step (every op mixed) on random images, and reports its
peak resident memory (CPU) or peak allocated memory (CUDA) next to the estimate the search
checks before it starts. Prints JSON.

Usage: python bench/memory_estimate.py [--device cpu|cuda]
       [--cases tfnas-small:64,...,tfnas-imagenet:16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

from tfnas.memory import OVERHEAD, estimate_search_memory
from tfnas.nn.supernet import Supernet
from tfnas.precision import resolve_precision
from tfnas.search.sampling import sample_paths
from tfnas.search.steps import LatencyPenalty, arch_step, weight_step
from tfnas.space import load_space


class FlatTable:
    """Every block costs 1 ms: the steps' memory does not depend on the table's values."""

    def expected_latency(self, space, op_probs, depth_probs, widths):
        total = sum(p.sum() for stage in op_probs for p in stage)
        return total + sum(d.sum() for d in depth_probs)


def one_case(space_name: str, batch: int, device: str) -> dict:
    """Runs in its own process: the estimate, then the measured peak of real steps."""
    torch.manual_seed(0)
    space = load_space(space_name)
    device = torch.device(device)
    net = Supernet(space, space.classes, None).to(device).to(memory_format=torch.channels_last)
    precision = resolve_precision("auto", device)
    # what the check compares the estimate with is the memory free when it runs: measure
    # from there (the process's resident memory now; on a GPU, what is allocated now)
    base = current_rss() if device.type == "cpu" else torch.cuda.memory_allocated(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    estimate = estimate_search_memory(
        space, batch, net=net, device=device, autocast=precision.autocast
    )
    images = torch.randn(batch, space.input_channels, space.input_size, space.input_size)
    images = images.to(device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, space.classes, (batch,), device=device)
    weight_opt = torch.optim.SGD(net.weight_parameters(), lr=0.01, momentum=0.9)
    arch_opt = torch.optim.Adam(net.arch_parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):  # the second pair runs with the optimizers' state allocated
        paths = sample_paths(net.host_state().alphas, "gumbel-random", generator)
        weight_step(net, weight_opt, images, labels, paths, precision=precision)
        arch_step(
            net, arch_opt, images, labels, FlatTable(), LatencyPenalty(1.0), 5.0, generator,
            precision=precision,
        )  # fmt: skip
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        kind = "peak allocated on the GPU beyond what was allocated before the check"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        kind = "peak resident memory of the process beyond its size before the check"
    measured = peak - base
    return {
        "space": space_name,
        "batch_size": batch,
        "estimate_gib": estimate.total_bytes / 2**30,
        "measured_gib": measured / 2**30,
        "measured_is": kind,
        "estimate_over_measured": estimate.total_bytes / measured,
        "bytes_per_image_mib": estimate.bytes_per_image / 2**20,
        "fixed_mib": estimate.fixed_bytes / 2**20,
        "weights_gib": estimate.weights_bytes / 2**30,
        "before_check_gib": base / 2**30,
    }


def current_rss() -> int:
    """This process's resident memory now, in bytes."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--cases",
        default="tfnas-small:64,tfnas-small:256,tfnas-imagenet:4,tfnas-imagenet:8,"
        "tfnas-imagenet:16",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # SPACE:BATCH, in the child process
    args = parser.parse_args()
    if args.one:
        space, batch = args.one.split(":")
        print(json.dumps(one_case(space, int(batch), args.device)))
        return
    rows = []
    for case in args.cases.split(","):
        done = subprocess.run(
            [sys.executable, __file__, "--device", args.device, "--one", case],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            rows.append({"case": case, "failed": done.stderr[-2000:]})
            continue
        rows.append(json.loads(done.stdout))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(
        json.dumps(
            {
                "command": "python bench/memory_estimate.py " + " ".join(sys.argv[1:]),
                "device": args.device,
                "overhead_factor": OVERHEAD,
                "cases": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
