"""Search-step speed and memory: the paper's official TF-NAS supernet against tfnas's.

Usage: python bench/official_vs_tfnas.py [--device cpu|cuda] [--batch-size 64]
       [--resolution 224] [--classes 100] [--steps 15] [--warmup 3]
       [--precision auto|bf16|fp16|fp32] [--op-weights separate|shared]
       [--channels-last|--no-channels-last] [--cudnn-benchmark] [--threads N]
       [--reference DIR] [--out FILE]

Why: tfnas reimplements the search of TF-NAS (ECCV 2020) on modern PyTorch. Claims that it
searches faster (or slower) than the paper's code are worth only as much as a like-for-like
measurement, so this bench builds the official supernet (``Network(num_classes,
mc_num_dddict, lat_lookup)`` of ``models/model_search.py``, imported at run time from the
MIT-licensed reference checkout, never copied) and tfnas's supernet of the same space
(``tfnas-imagenet``) and times both on the same random batch, resolution, number of classes,
device, precision and memory layout:

- the weight step: bi-sampling, the Gumbel path plus a random other path, their summed
  cross-entropy, one backward, gradient clipping at 5, one SGD step (lr 0.025, momentum
  0.9, weight decay 1e-5), as ``train_w_arch`` of the official ``train_search.py`` does it;
- the architecture step: every op of every block mixed with Gumbel-softmax weights
  (temperature 5), loss = CE + 0.1 * |LAT / target - 1|, gradient clipping at 5, one Adam
  step (lr 0.01, betas (0.5, 0.999), weight decay 5e-4), then the alphas renormalised.

Each implementation runs in a fresh subprocess, so its peak memory is its own: on CUDA
``torch.cuda.max_memory_allocated`` per step kind, on the CPU the growth of the peak resident
set size over the process's size after imports (a high-water mark, coarse but per
implementation). Medians over ``--steps`` steps after ``--warmup`` steps; on CUDA timings
are bracketed by ``torch.cuda.synchronize()``. Both supernets run at the ops' nominal mid
widths (expansion x input channels), where the official search starts each epoch.

Both sides read the paper's published latency tables (``../shared/data/tfnas-official-luts``:
the GPU table on CUDA, the CPU table on the CPU); the target is the midpoint of the space's
reachable latency range. The values only shape the loss, not the cost of a step.

The official code targets PyTorch 1.1; it is adapted at run time only (see ``_build_official``):
it is built on the CPU and moved to the device, not wrapped in ``DataParallel`` (one device),
and at resolutions other than 224 its latency lookup maps keys to the 224 entries. Prints
JSON (and writes it to ``--out``). Exits 2, with one sentence, when the official supernet
cannot be built.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tfnas.errors import TfnasError
from tfnas.io import atomic_write_json
from tfnas.options import PRECISIONS
from tfnas.precision import Precision, resolve_precision

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference" / "tfnas-official"
DEFAULT_LUTS = ROOT.parent / "shared" / "data" / "tfnas-official-luts"
IMPLEMENTATIONS = ("official", "tfnas")
BUILD_FAILED = 2  # exit status of a worker (and of the bench) that cannot build the official net

# The paper's search hyper-parameters (official train_search.py), used on both sides.
W_LR, W_MOMENTUM, W_WD = 0.025, 0.9, 1e-5
A_LR, A_BETAS, A_WD = 0.01, (0.5, 0.999), 5e-4
GRAD_CLIP, TAU, LAMBDA_LAT = 5.0, 5.0, 0.1


class OfficialBuildError(RuntimeError):
    """The official supernet could not be imported or constructed."""


# -- shared helpers -------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(
    fn: Callable[[], None], steps: int, warmup: int, device: torch.device
) -> tuple[list[float], float | None]:
    """Seconds of each of ``steps`` calls after ``warmup`` untimed ones, and on CUDA the peak
    memory allocated (MiB) over all of them: the peak counter is reset first, so each step
    kind gets its own."""
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return times, peak


def _backward_and_step(
    loss: torch.Tensor,
    params: list[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> None:
    """Backward, clip at GRAD_CLIP, step: loss-scaled under fp16 exactly as tfnas does, so the
    official side pays the same scaler cost."""
    if scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        optimizer.step()


def _lut_path(device: torch.device, luts: Path) -> Path:
    return luts / ("latency_gpu.json" if device.type == "cuda" else "latency_cpu.json")


def _target_ms(lut: Path) -> float:
    """Midpoint of the reachable latency range of tfnas-imagenet under the table: the same
    target on both sides."""
    from tfnas.latency.official import import_tfnas_table
    from tfnas.latency.table import latency_range
    from tfnas.space import load_space

    space = load_space("tfnas-imagenet")
    r = latency_range(space, import_tfnas_table(lut, space))
    return (r.fastest_ms + r.slowest_ms) / 2


def _batches(
    batch: int, resolution: int, classes: int, device: torch.device, memory_format
) -> tuple[torch.Tensor, ...]:
    """A weight batch and an architecture batch of random images: identical on both sides."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(2):
        x = torch.randn(batch, 3, resolution, resolution, generator=g)
        y = torch.randint(classes, (batch,), generator=g)
        out += [x.to(device, memory_format=memory_format), y.to(device)]
    return tuple(out)


# -- the official side ----------------------------------------------------------------------
class _AnyResolution(dict):
    """The official latency lookup, answering keys at any input resolution.

    ``MixedOP.get_lookup_latency`` builds its key from the block's actual input size, and the
    published tables hold 224x224 keys only; a key at another size is answered with the entry
    that agrees on everything but the size (channels, SE, kernel, stride and activation name
    each block position uniquely). Only used when ``--resolution`` is not 224."""

    def __missing__(self, key: str) -> Any:
        parts = key.split("_")
        rest = "_".join(parts[:1] + parts[2:])
        for k, v in self.items():
            if k != "base" and "_".join(k.split("_")[:1] + k.split("_")[2:]) == rest:
                self[key] = v
                return v
        raise KeyError(key)


def _build_official(reference: Path, classes: int, lut: Path, resolution: int):
    """The official search supernet at its nominal widths, on the CPU, in training mode.

    Shims (run time only, the reference files are untouched): the reference root goes on
    ``sys.path`` (its modules import ``models.*`` and ``tools.*`` as top-level packages); the
    lookup is the published JSON with integer widths, as the official pickle holds them;
    widths come from the official ``tools.config.mc_mask_dddict`` through the official
    ``get_mc_num_dddict`` rule (ones in each mask), as ``train_search.py`` rebuilds the net
    every epoch. ``parsing_model`` is not imported for that rule: importing it sets
    ``cudnn.benchmark`` globally, which this bench decides for both sides alike."""
    if not (reference / "models" / "model_search.py").is_file():
        raise OfficialBuildError(f"{reference} holds no models/model_search.py")
    sys.path.insert(0, str(reference))
    try:
        from models.model_search import Network
        from tools.config import mc_mask_dddict
    except Exception as exc:
        raise OfficialBuildError(f"importing it failed ({type(exc).__name__}: {exc})") from exc
    data = json.loads(lut.read_text(encoding="utf-8"))
    lookup: dict[str, Any] = _AnyResolution() if resolution != 224 else {}
    lookup["base"] = float(data.pop("base"))
    for key, widths in data.items():
        lookup[key] = {int(w): float(ms) for w, ms in widths.items()}
    mc_num_dddict = {
        stage: {
            block: {op: int(mask.sum().item()) for op, mask in ops.items()}
            for block, ops in blocks.items()
        }
        for stage, blocks in mc_mask_dddict.items()
    }
    try:
        net = Network(classes, mc_num_dddict, lookup)
    except Exception as exc:
        raise OfficialBuildError(f"Network() raised {type(exc).__name__}: {exc}") from exc
    net.set_temperature(TAU)
    return net.train()


def _official_steps(
    net, data: tuple[torch.Tensor, ...], target_ms: float, precision: Precision
) -> tuple[Callable[[], None], Callable[[], None]]:
    """The official weight and architecture steps (``train_w_arch``), minus the data loading
    and the per-step logging reads (``loss.item()``, accuracy) that are no part of a step."""
    x_w, y_w, x_a, y_a = data
    weights, arch = net.weight_parameters(), net.arch_parameters()
    opt_w = torch.optim.SGD(weights, lr=W_LR, momentum=W_MOMENTUM, weight_decay=W_WD)
    opt_a = torch.optim.Adam(arch, lr=A_LR, betas=A_BETAS, weight_decay=A_WD)
    scaler_w, scaler_a = precision.scaler(), precision.scaler()

    def weight() -> None:
        for p in weights:
            p.requires_grad = True
        for p in arch:
            p.requires_grad = False
        with precision.autocast():
            logits_gumbel, _ = net(x_w, sampling=True, mode="gumbel")
            loss_gumbel = F.cross_entropy(logits_gumbel, y_w)
            logits_random, _ = net(x_w, sampling=True, mode="random")
            loss = loss_gumbel + F.cross_entropy(logits_random, y_w)
        opt_w.zero_grad()
        _backward_and_step(loss, weights, opt_w, scaler_w)

    def architecture() -> None:
        for p in weights:
            p.requires_grad = False
        for p in arch:
            p.requires_grad = True
        with precision.autocast():
            logits, lat = net(x_a, sampling=False)
            loss_a = F.cross_entropy(logits, y_a)
        loss = loss_a + torch.abs(lat / target_ms - 1.0) * LAMBDA_LAT
        opt_a.zero_grad()
        _backward_and_step(loss, arch, opt_a, scaler_a)
        for p in arch:  # "ensure log_alphas to be a log probability distribution"
            p.data = F.log_softmax(p.detach().data, dim=-1)

    return weight, architecture


# -- the tfnas side -------------------------------------------------------------------------
def _tfnas_steps(
    net,
    data: tuple[torch.Tensor, ...],
    lut: Path,
    target_ms: float,
    precision: Precision,
) -> tuple[Callable[[], None], Callable[[], None]]:
    """tfnas's own step functions, as its searcher calls them. Each timed weight step also
    copies the architecture state to the host and samples its two paths (the official
    samples inside its forward pass), which the searcher does once per architecture step:
    this errs against tfnas."""
    from tfnas.latency.official import import_tfnas_table
    from tfnas.search.sampling import sample_paths
    from tfnas.search.steps import LatencyPenalty, arch_step, weight_step

    x_w, y_w, x_a, y_a = data
    table = import_tfnas_table(lut, net.space)
    opt_w = torch.optim.SGD(
        net.weight_parameters(), lr=W_LR, momentum=W_MOMENTUM, weight_decay=W_WD
    )
    opt_a = torch.optim.Adam(net.arch_parameters(), lr=A_LR, betas=A_BETAS, weight_decay=A_WD)
    scaler_w, scaler_a = precision.scaler(), precision.scaler()
    penalty = LatencyPenalty(target_ms, LAMBDA_LAT)
    generator = torch.Generator().manual_seed(1)

    def weight() -> None:
        host = net.host_state()
        paths = sample_paths(host.alphas, "gumbel-random", generator)
        weight_step(
            net,
            opt_w,
            x_w,
            y_w,
            paths,
            grad_clip=GRAD_CLIP,
            depth_weights=host.depth_weights,
            precision=precision,
            scaler=scaler_w,
        )

    def architecture() -> None:
        arch_step(
            net,
            opt_a,
            x_a,
            y_a,
            table,
            penalty,
            TAU,
            generator,
            grad_clip=GRAD_CLIP,
            precision=precision,
            scaler=scaler_a,
        )

    return weight, architecture


# -- one implementation in this process -----------------------------------------------------
def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Build one implementation's supernet and time its two steps (in a fresh process)."""
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    precision = resolve_precision(args.precision, device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    lut = _lut_path(device, Path(args.luts))
    target = _target_ms(lut)
    load_before = os.getloadavg()[0]
    baseline_rss = _max_rss_mib()
    torch.manual_seed(0)
    random.seed(0)  # the official 'random' path draws from Python's random module
    if args.impl == "official":
        net = _build_official(Path(args.reference), args.classes, lut, args.resolution)
    else:
        from tfnas.nn.supernet import Supernet
        from tfnas.space import load_space

        net = Supernet(load_space("tfnas-imagenet"), args.classes, op_weights=args.op_weights)
    net = net.to(device).to(memory_format=memory_format).train()
    data = _batches(args.batch_size, args.resolution, args.classes, device, memory_format)
    if args.impl == "official":
        weight, architecture = _official_steps(net, data, target, precision)
    else:
        weight, architecture = _tfnas_steps(net, data, lut, target, precision)
    w_times, w_peak = _timed(weight, args.steps, args.warmup, device)
    a_times, a_peak = _timed(architecture, args.steps, args.warmup, device)
    w_s, a_s = statistics.median(w_times), statistics.median(a_times)
    out: dict[str, Any] = {
        "parameters": sum(p.numel() for p in net.parameters()),
        "weight_step": {
            "median_seconds": w_s,
            "images_per_second": args.batch_size / w_s,
            "seconds": w_times,
        },
        "arch_step": {
            "median_seconds": a_s,
            "images_per_second": args.batch_size / a_s,
            "seconds": a_times,
        },
        "target_ms": target,
        # other work on the machine skews CPU timings: the 1-minute load before and after
        "load_average_1min": [load_before, os.getloadavg()[0]],
    }
    if device.type == "cuda":
        out["weight_step"]["peak_memory_mib"] = w_peak
        out["arch_step"]["peak_memory_mib"] = a_peak
        out["peak_memory_mib"] = max(w_peak, a_peak)
    else:
        peak = _max_rss_mib()
        out["peak_rss_mib"] = peak
        out["peak_rss_growth_mib"] = peak - baseline_rss
    return out


# -- the comparison -------------------------------------------------------------------------
# options a worker receives as given to the bench
_FORWARDED = (
    *("device", "batch_size", "resolution", "classes", "steps", "warmup"),
    *("precision", "op_weights", "reference", "luts"),
)


def _run_subprocess(args: argparse.Namespace, impl: str) -> dict[str, Any]:
    """One implementation in a fresh Python process; its JSON result, or exit 2 with one
    sentence when the official supernet cannot be built."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", impl]
        cmd += ["--_result", str(result)]
        for flag in _FORWARDED:
            cmd += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
        cmd.append("--channels-last" if args.channels_last else "--no-channels-last")
        if args.cudnn_benchmark:
            cmd.append("--cudnn-benchmark")
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        if proc.returncode == BUILD_FAILED and impl == "official":
            lines = proc.stderr.strip().splitlines()
            print(lines[-1] if lines else "The official TF-NAS supernet could not be built.")
            sys.exit(BUILD_FAILED)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"the {impl} run failed (exit status {proc.returncode}).")
        return json.loads(result.read_text(encoding="utf-8"))


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def compare(args: argparse.Namespace, command: str) -> dict[str, Any]:
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)
    runs = {impl: _run_subprocess(args, impl) for impl in IMPLEMENTATIONS}
    off, tf = runs["official"], runs["tfnas"]
    target = off.pop("target_ms")
    tf.pop("target_ms")
    result: dict[str, Any] = {
        "command": command,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "threads": args.threads or torch.get_num_threads(),
        "batch_size": args.batch_size,
        "resolution": args.resolution,
        "classes": args.classes,
        "precision": precision.name,
        "channels_last": args.channels_last,
        "cudnn_benchmark": args.cudnn_benchmark,
        "tfnas_op_weights": args.op_weights,
        "steps": args.steps,
        "warmup": args.warmup,
        "target_ms": target,
        "lut": _lut_path(device, Path(args.luts)).name,
        "official": off,
        "tfnas": tf,
        "ratios_official_over_tfnas": {
            "weight_step_seconds": _ratio(
                off["weight_step"]["median_seconds"], tf["weight_step"]["median_seconds"]
            ),
            "arch_step_seconds": _ratio(
                off["arch_step"]["median_seconds"], tf["arch_step"]["median_seconds"]
            ),
        },
        "memory": (
            "torch.cuda.max_memory_allocated per step kind, each implementation in its own process"
            if device.type == "cuda"
            else "CPU: peak resident set size of each implementation's own process, and its "
            "growth over the size after imports (a high-water mark: the arch step's figure "
            "is not separable from the weight step's; coarse, compare with care)"
        ),
        "notes": [
            "Official side: models/model_search.py Network at the nominal widths of "
            "tools/config.py mc_mask_dddict, built on the CPU and moved to the device, no "
            "DataParallel; steps as train_w_arch of train_search.py without data loading "
            "and logging reads.",
            "The official gumbel sampling reads each block's choice back with .item() (18 "
            "host synchronisations per weight step on CUDA); that is the official code's cost.",
            "The official supernet's batch norms have affine=False and no running statistics;"
            " tfnas's keep both (slightly more work per step on the tfnas side).",
            "tfnas allocates every op at its maximum mid width (4/3 of nominal) and computes "
            "with the active channels only (hence its larger parameter count); the official "
            "search net is rebuilt each epoch at the current widths.",
        ],
    }
    if args.op_weights == "separate":
        result["notes"].append(
            "op weights 'separate': one weight set per op, the official layout (like for like)."
        )
    else:
        result["notes"].append(
            "op weights 'shared': tfnas shares one kernel bank per block, which the official "
            "code does not do: not like for like."
        )
    if device.type == "cuda":
        result["ratios_official_over_tfnas"]["peak_memory"] = _ratio(
            off["peak_memory_mib"], tf["peak_memory_mib"]
        )
    else:
        result["ratios_official_over_tfnas"]["peak_rss_growth"] = _ratio(
            off["peak_rss_growth_mib"], tf["peak_rss_growth_mib"]
        )
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from tfnas.options import OP_WEIGHTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument(
        "--op-weights",
        default="separate",
        choices=OP_WEIGHTS,
        help="tfnas's op weight layout; 'separate' is the official one (like for like)",
    )
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="NHWC model and inputs on both sides (tfnas's default)",
    )
    parser.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="cudnn.benchmark on both sides (the official search sets it; tfnas does not)",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads on both sides")
    parser.add_argument("--reference", default=str(DEFAULT_REFERENCE))
    parser.add_argument("--luts", default=str(DEFAULT_LUTS))
    parser.add_argument("--out")
    parser.add_argument("--_worker", choices=IMPLEMENTATIONS, dest="impl", help=argparse.SUPPRESS)
    parser.add_argument("--_result", dest="result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error("--steps and --batch-size must be positive, --warmup not negative")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is available here (use --device cpu)")
    try:
        resolve_precision(args.precision, torch.device(args.device))
    except TfnasError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.impl is not None:  # a worker: one implementation, result to a file
        try:
            out = run_worker(args)
        except OfficialBuildError as exc:
            print(f"The official TF-NAS supernet could not be built: {exc}.", file=sys.stderr)
            sys.exit(BUILD_FAILED)
        atomic_write_json(args.result, out)
        return
    raw = sys.argv[1:] if argv is None else argv
    command = " ".join(["python", "bench/official_vs_tfnas.py", *raw])
    result = compare(args, command)
    if args.out:
        atomic_write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
