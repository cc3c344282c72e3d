"""Search throughput on tfnas-small: images per second of the weight and architecture steps,
and the time of one search epoch.

Usage: python bench/search_throughput.py --lut LUT.json [--images 10000] [--batch-size 64]
       [--steps 10] [--threads N] [--no-epoch] [--no-channels-last]
       [--op-weights shared|separate] [--device cpu|cuda] [--precision auto|bf16|fp16|fp32]
       [--data SOURCE] [--deterministic]

Times ``steps`` bi-sampling weight steps (two paths, one backward, one SGD step) and
``steps`` architecture steps (soft mixture over all ops, latency loss, Adam step) of the real
search code, quoting medians, then one whole search epoch (weight steps on 80% of
``images``, an architecture step every 2nd weight step, elasticity-scaling) unless
``--no-epoch``, and the peak resident memory (and on CUDA the peak GPU memory). On CUDA
every timing ends with a synchronisation. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time

import torch

from tfnas.latency.table import latency_range, load_table
from tfnas.options import OP_WEIGHTS, PRECISIONS
from tfnas.search.config import SearchConfig
from tfnas.search.sampling import sample_paths
from tfnas.search.searcher import Searcher
from tfnas.search.steps import arch_step, weight_step
from tfnas.space import load_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", required=True)
    parser.add_argument("--space", default="tfnas-small")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-epoch", action="store_true")
    parser.add_argument(
        "--no-channels-last", action="store_true", help="NCHW activations (the old layout)"
    )
    parser.add_argument("--op-weights", default=SearchConfig.op_weights, choices=OP_WEIGHTS)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default=SearchConfig.precision, choices=PRECISIONS)
    parser.add_argument("--data", default=SearchConfig.data)
    parser.add_argument("--deterministic", action="store_true", help="bit-exact CUDA kernels")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    space = load_space(args.space)
    table = load_table(args.lut, space)
    r = latency_range(space, table)
    config = SearchConfig(
        space=args.space,
        lut=args.lut,
        target_ms=(r.fastest_ms + r.slowest_ms) / 2,
        limit=args.images,
        epochs=2,
        warmup_epochs=1,
        batch_size=args.batch_size,
        channels_last=not args.no_channels_last,
        op_weights=args.op_weights,
        device=args.device,
        precision=args.precision,
        data=args.data,
        deterministic=args.deterministic,
    )
    with tempfile.TemporaryDirectory() as run_dir:
        searcher = Searcher(config, run_dir, progress=False)
        net = searcher.net
        net.train()
        images, labels = next(iter(searcher.weight_batches.epoch(0)))
        arch_images, arch_labels = next(iter(searcher.arch_batches.epoch(1)))
        images = searcher.prepare(images)
        arch_images = searcher.prepare(arch_images)
        labels, arch_labels = labels.to(searcher.device), arch_labels.to(searcher.device)
        host = net.host_state()
        cuda = searcher.device.type == "cuda"

        def one_weight_step() -> None:
            paths = sample_paths(host.alphas, "gumbel-random", searcher.sampler)
            weight_step(
                net,
                searcher.weight_opt,
                images,
                labels,
                paths,
                depth_weights=host.depth_weights,
                precision=searcher.precision,
                scaler=searcher.weight_scaler,
            )

        def one_arch_step() -> None:
            arch_step(
                net,
                searcher.arch_opt,
                arch_images,
                arch_labels,
                searcher.table,
                searcher.penalty,
                searcher.tau,
                searcher.sampler,
                precision=searcher.precision,
                scaler=searcher.arch_scaler,
            )

        def timed(fn) -> list[float]:
            fn()  # warm-up
            out = []
            for _ in range(args.steps):
                if cuda:
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                fn()
                if cuda:
                    torch.cuda.synchronize()
                out.append(time.perf_counter() - t0)
            return out

        weight_s = statistics.median(timed(one_weight_step))
        arch_s = statistics.median(timed(one_arch_step))
        result = {
            "space": space.name,
            "batch_size": args.batch_size,
            "channels_last": not args.no_channels_last,
            "op_weights": args.op_weights,
            "threads": torch.get_num_threads(),
            "device": str(searcher.device),
            "precision": searcher.precision.name,
            "deterministic": args.deterministic,
            "weight_step": {
                "median_seconds": weight_s,
                "images_per_second": args.batch_size / weight_s,
                "paths": 2,
            },
            "arch_step": {"median_seconds": arch_s, "images_per_second": args.batch_size / arch_s},
            "weight_images": len(searcher.weights),
            "arch_images": len(searcher.arch_data),
        }
        if not args.no_epoch:
            t0 = time.perf_counter()
            row = searcher._train_epoch(1, searching=True)
            row.update(searcher._end_of_epoch(1, searching=True))
            result["search_epoch"] = {
                "seconds": time.perf_counter() - t0,
                "train_seconds": row["seconds"],
                "images_per_second": row["images_per_second"],
            }
    # peak resident memory of this process (Linux reports KiB)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.device == "cuda":
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
