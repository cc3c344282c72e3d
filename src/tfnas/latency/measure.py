"""Robust latency timers for the torch CPU, CUDA and ONNX Runtime backends.

On a shared machine a core runs at different speeds from one moment to the next (neighbours
on its caches and memory bandwidth), in spells that last longer than one timing window. The
timers therefore: set the thread count explicitly; run in eval and inference mode; warm up by
count and by time; time many calls one at a time; take a low percentile (the lower quartile)
within a window, since interference only ever adds time; and take the minimum of that
statistic over several *rounds*, separate windows spread out in time, so that one slow spell
does not decide a figure. CUDA calls are timed with events after a synchronisation; ONNX
Runtime times an exported model in its own session.
"""

from __future__ import annotations

import io
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import SettingError, TfnasError
from ..options import TIMING_DEVICES
from .policy import TimingPolicy


def summarise(samples_ms: list[float], statistic: str) -> float:
    if not samples_ms:
        raise ValueError("no samples")
    ordered = sorted(samples_ms)
    if statistic == "min":
        return ordered[0]
    if statistic == "mean":
        return statistics.fmean(ordered)
    if statistic == "median":
        return statistics.median(ordered)
    if statistic == "p25":
        return _percentile(ordered, 0.25)
    raise ValueError(f"unknown statistic {statistic}")


def _percentile(ordered: list[float], q: float) -> float:
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def check_device(device: str) -> None:
    if device not in TIMING_DEVICES:
        raise TfnasError(f"unknown device '{device}' (choose from {', '.join(TIMING_DEVICES)}).")
    if device == "cuda" and not torch.cuda.is_available():
        raise TfnasError("device 'cuda' was asked for, but torch sees no CUDA GPU here.")
    if device == "ort-cpu":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise TfnasError(
                "device 'ort-cpu' needs onnxruntime and onnx: pip install onnx onnxruntime."
            ) from None


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Torch's intra-op thread count set for the timing only, and restored after it, so that
    training or search in the same process keeps its own."""
    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _time_calls(
    call: Callable[[], object], policy: TimingPolicy, clock: Callable[[Callable[[], object]], float]
) -> list[float]:
    """Warm up, then time ``call`` one call at a time until the policy is satisfied."""
    start = time.perf_counter()
    calls = 0
    while calls < policy.warmup_calls or time.perf_counter() - start < policy.warmup_seconds:
        call()
        calls += 1
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < policy.max_calls and (
        len(samples) < policy.min_calls or time.perf_counter() - start < policy.min_seconds
    ):
        samples.append(clock(call))
    return samples


def _cpu_clock(call: Callable[[], object], calls: int = 1) -> float:
    """Mean ms of ``calls`` calls made back to back."""
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        call()
    return (time.perf_counter_ns() - t0) / 1e6 / calls


def cpu_clock(scrub_kib: int = 0, calls: int = 1) -> Callable[[Callable[[], object]], float]:
    """A clock for :func:`_time_calls` on the CPU: the mean ms of ``calls`` calls back to
    back, each sample after writing a buffer of ``scrub_kib`` KiB (0: none), outside the
    timing, so that the call starts with its weights and input evicted from the caches
    nearest the core, as a block inside a network finds them after its predecessors."""
    if scrub_kib <= 0:
        return lambda call: _cpu_clock(call, calls)
    scratch = torch.empty(scrub_kib * 256)  # float32: 256 per KiB

    def clock(call: Callable[[], object]) -> float:
        scratch.fill_(1.0)
        return _cpu_clock(call, calls)

    return clock


def _cuda_clock(call: Callable[[], object], calls: int = 1) -> float:
    """Mean ms of ``calls`` calls enqueued back to back between two CUDA events, after a
    synchronisation (one call: its own latency, launch included)."""
    begin = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    begin.record()
    for _ in range(calls):
        call()
    end.record()
    end.synchronize()
    return begin.elapsed_time(end) / calls


class LatencyMeter:
    """Times modules on one backend with fixed threads, batch size and timing policy."""

    def __init__(
        self,
        device: str = "cpu",
        threads: int = 1,
        batch_size: int = 1,
        policy: TimingPolicy | None = None,
    ) -> None:
        check_device(device)
        if policy is not None and policy.back_to_back < 1:
            raise SettingError("back_to_back", f"must be at least 1, got {policy.back_to_back}.")
        if threads < 1:
            raise SettingError("threads", f"must be at least 1, got {threads}.")
        if batch_size < 1:
            raise SettingError("batch_size", f"must be at least 1, got {batch_size}.")
        self.device = device
        self.threads = threads
        self.batch_size = batch_size
        self.policy = policy or TimingPolicy()

    def runner(self, module: nn.Module, input_shape: tuple[int, ...]) -> Callable[[], object]:
        """A zero-argument call running ``module`` on a batch of ``input_shape`` (no batch
        dim) on this backend; prepared once so that rounds time only the call itself."""
        module = module.eval()
        shape = (self.batch_size, *input_shape)
        if self.device == "ort-cpu":
            return self._ort_runner(module, shape)
        target = torch.device("cuda" if self.device == "cuda" else "cpu")
        module = module.to(target)
        x = torch.randn(shape, device=target)

        def call() -> object:
            with torch.inference_mode():
                return module(x)

        return call

    def window(self, call: Callable[[], object], scrub_kib: int = 0) -> list[float]:
        """One timing window: warm-up, then per-call latencies in ms.

        ``scrub_kib`` (CPU): before every timed call, write a buffer of that size, outside
        the timing, so the call starts with its weights and input evicted from the caches
        nearest the core, as a block inside a network finds them after its predecessors."""
        calls = self.policy.back_to_back
        if self.device == "cuda":

            def clock(call: Callable[[], object]) -> float:
                return _cuda_clock(call, calls)

            return _time_calls(call, self.policy, clock)
        # ONNX Runtime too, as a precaution: torch's worker threads, woken by the export,
        # must not compete with the timed calls (bench/ort_in_process.py: inconclusive here)
        with torch_threads(self.threads):
            return _time_calls(call, self.policy, cpu_clock(scrub_kib, calls))

    def window_statistic(self, call: Callable[[], object], scrub_kib: int = 0) -> float:
        return summarise(self.window(call, scrub_kib), self.policy.statistic)

    def samples(self, module: nn.Module, input_shape: tuple[int, ...]) -> list[float]:
        """Per-call latencies in ms over all rounds (for reporting spread)."""
        call = self.runner(module, input_shape)
        return [ms for _ in range(self.policy.rounds) for ms in self.window(call)]

    def measure(self, module: nn.Module, input_shape: tuple[int, ...]) -> float:
        """Minimum over rounds of the per-window statistic, in ms."""
        call = self.runner(module, input_shape)
        return min(self.window_statistic(call) for _ in range(self.policy.rounds))

    def measure_spread(
        self,
        module: nn.Module,
        input_shape: tuple[int, ...],
        rounds: int = 20,
        gap_seconds: float = 0.5,
    ) -> tuple[float, list[list[float]]]:
        """One module's latency: the best per-window statistic of ``rounds`` windows spaced
        ``gap_seconds`` apart, and the windows' per-call times.

        A lone module has nothing to interleave its rounds with, and back-to-back rounds fall
        into the same slow spell (on a shared 2-core machine, windows of one network a
        fraction of a second apart differ by up to 1.7x); waiting between more rounds
        spreads them over a few seconds instead.
        """
        return self.measure_spread_many([(module, input_shape)], rounds, gap_seconds)[0]

    def measure_spread_many(
        self,
        items: list[tuple[nn.Module, tuple[int, ...]]],
        rounds: int = 20,
        gap_seconds: float = 0.5,
    ) -> list[tuple[float, list[list[float]]]]:
        """:meth:`measure_spread` for several modules, one window of each per round, back to
        back: a slow spell then weighs on all of them alike (what a ratio between them needs,
        such as a network's latency against a reference network's)."""
        if rounds < 1:
            raise SettingError("rounds", f"must be at least 1, got {rounds}.")
        calls = [self.runner(module, shape) for module, shape in items]
        windows: list[list[list[float]]] = [[] for _ in calls]
        for r in range(rounds):
            if r:
                time.sleep(gap_seconds)
            for i, call in enumerate(calls):
                windows[i].append(self.window(call))
        return [(min(summarise(w, self.policy.statistic) for w in ws), ws) for ws in windows]

    def measure_interleaved(
        self,
        items: list[tuple[nn.Module, tuple[int, ...]]],
        progress: Callable[[int], None] | None = None,
    ) -> list[float]:
        """Like :meth:`measure` for several modules, taking round ``r`` of every module before
        round ``r + 1`` of any: a slow spell then costs each module at most one round."""
        calls = [self.runner(module, shape) for module, shape in items]
        best = [float("inf")] * len(calls)
        for _ in range(self.policy.rounds):
            for i, call in enumerate(calls):
                best[i] = min(best[i], self.window_statistic(call))
                if progress is not None:
                    progress(1)
        return best

    def _ort_runner(self, module: nn.Module, shape: tuple[int, ...]) -> Callable[[], object]:
        import onnxruntime as ort

        x = torch.randn(shape)
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch_threads(self.threads):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, (x,), buffer, input_names=["x"], output_names=["y"], dynamo=False
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(
            buffer.getvalue(), options, providers=["CPUExecutionProvider"]
        )
        feed = {"x": x.numpy()}
        return lambda: session.run(None, feed)

    def fingerprint(self) -> dict[str, object]:
        """What the numbers depend on: hardware, software versions, threads, batch size."""
        info: dict[str, object] = {
            "device": self.device,
            "cpu": cpu_model(),
            "machine": platform.machine(),
            "torch": torch.__version__,
            "threads": self.threads,
            "batch_size": self.batch_size,
        }
        if self.device == "cuda":
            info["gpu"] = torch.cuda.get_device_name()
            info["cuda"] = torch.version.cuda
            info["cudnn"] = torch.backends.cudnn.version()
        if self.device == "ort-cpu":
            import onnxruntime

            info["onnxruntime"] = onnxruntime.__version__
        return info


# what makes two latency measurements incomparable (software versions only shift them)
_IDENTITY = ("device", "cpu", "gpu", "machine", "threads", "batch_size")


def fingerprint_differences(recorded: dict[str, object], here: dict[str, object]) -> list[str]:
    """How the device a table was measured on differs from this one, as short phrases
    ("cpu 'A' there, 'B' here"); empty when they agree (fields missing on either side, as
    in imported tables, are not compared)."""
    return [
        f"{key} {recorded[key]!r} there, {here[key]!r} here"
        for key in _IDENTITY
        if key in recorded and key in here and recorded[key] != here[key]
    ]


def say_other_device(source: str, differences: list[str]) -> None:
    print(
        f"note: {source} was measured on another device ({'; '.join(differences)}): its "
        "predictions describe that device, so errors against this one's measurements are "
        "expected.",
        file=sys.stderr,
    )


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or os.name
