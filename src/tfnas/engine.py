"""What a search and a training do alike around their loops, written once for both
(:class:`RunEngine`): the process's device and its place in a torchrun group, bit-exact
kernels, precision and the activations' memory format, the run directory's guard, a
checkpoint of every stateful object and random generator, resume, seeded batches, one
progress-bar style, one optimizer step; and the end of a run (after a failure, an unstarted
run's files are removed; the process group is always shut down).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import torch

from .distributed import DistContext, process_device, set_deterministic, shutdown
from .loader import Batches, Shard
from .precision import Precision, resolve_precision
from .rundir import RunDir, dataclass_defaults

T = TypeVar("T")


@dataclass(frozen=True)
class Placement:
    """Where a run's steps run."""

    device: torch.device
    dist: DistContext
    memory_format: torch.memory_format


def place_run(device: str, deterministic: bool, channels_last: bool) -> Placement:
    """This process's device and group (``device``: auto, cpu or cuda), bit-exact kernels
    when ``deterministic``, and NHWC activations when ``channels_last``."""
    where, context = process_device(device)
    if deterministic:
        set_deterministic(where)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return Placement(where, context, layout)


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The global generators' state, for a checkpoint: what dropout, augmentation and
    drop-connect draw from next (the CUDA one too on a GPU)."""
    state = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Put back what :func:`rng_state` saved (a checkpoint without the CUDA state, as
    older ones are, leaves the CUDA generator as it is)."""
    torch.set_rng_state(state["torch_rng"].cpu())
    if "cuda_rng" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)


class Stateful(Protocol):
    """What a checkpoint holds the state of: a module, optimizer, scheduler, scaler."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any], /) -> Any: ...


class GeneratorState:
    """A random generator as a :class:`Stateful` (a generator has get/set_state instead)."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any] | torch.Tensor) -> None:
        # a search checkpointed by an older tfnas holds the generator's state tensor itself
        tensor = state if isinstance(state, torch.Tensor) else state["state"]
        self.generator.set_state(tensor.cpu())


def optimizer_step(
    loss: torch.Tensor,
    params: Iterable[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    grad_clip: float | None,
    reduce_grads: Callable[[list[torch.Tensor]], None] | None = None,
) -> None:
    """Backward (loss-scaled under fp16; a disabled scaler passes everything straight
    through), gradients averaged across processes by ``reduce_grads`` where no
    DistributedDataParallel does it, clipped to ``grad_clip``, one step."""
    scaler.scale(loss).backward()
    params = [p for p in params if p.grad is not None]
    if reduce_grads is not None:
        reduce_grads([p.grad for p in params])
    scaler.unscale_(optimizer)
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()


class RunEngine:
    """The set-up and bookkeeping a search and a training share; a subclass adds its model,
    data and loop, names what its checkpoint holds (:meth:`stateful`, :meth:`extra_state`)
    and calls :meth:`begin` at the end of its set-up.

    ``config`` is a step's validated config (a :class:`~tfnas.search.config.SearchConfig`
    or :class:`~tfnas.train_config.TrainConfig`): it has ``to_dict``, ``seed``,
    ``device``, ``deterministic``, ``channels_last``, ``precision`` and ``workers``."""

    kind: ClassVar[str]  # what the run directory holds: "search", "training run"
    checkpoint_file: ClassVar[str]

    def __init__(self, config: Any, run_dir: str | Path, resume: bool, progress: bool | None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.rundir = RunDir(self.run_dir, self.kind, self.checkpoint_file)
        self.rundir.guard(config.to_dict(), resume, dataclass_defaults(type(config)))
        place = place_run(config.device, config.deterministic, config.channels_last)
        self.device, self.dist, self.memory_format = place.device, place.dist, place.memory_format
        self.precision: Precision = resolve_precision(config.precision, self.device)
        shown = sys.stderr.isatty() if progress is None else progress
        self.progress = shown and self.dist.is_main
        self.epoch = 0  # epochs finished
        self.history: list[dict[str, Any]] = []  # metrics.jsonl's rows

    # -- what a subclass declares -------------------------------------------------------------
    def stateful(self) -> dict[str, Stateful]:
        """The objects a checkpoint holds the state of, by their key in it."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """Plain values a checkpoint holds besides (tensors, numbers, strings)."""
        return {}

    def inputs(self) -> dict[str, tuple[str, str]]:
        """The files the run's result depends on, by name: (path, content digest); a resume
        refuses any whose content changed."""
        return {}

    def restore_extra(self, state: dict[str, Any]) -> None:
        """Read back :meth:`extra_state`'s values; called before the stateful objects are
        loaded, so it can refuse a checkpoint that does not fit."""

    # -- set-up and checkpoints ---------------------------------------------------------------
    def begin(self) -> None:
        """Resume from the checkpoint when asked to, then record the settings. Written only
        once the whole set-up has succeeded: a run that could not start leaves no run
        directory behind to block the next attempt."""
        if self.dist.is_main:
            self.rundir.acquire()
        try:
            inputs, threads = self.inputs(), torch.get_num_threads()
            if self.resume and self.dist.is_main:
                self.rundir.check_record(inputs, threads)
            if self.resume:
                self.load_checkpoint()
            if self.dist.is_main:
                self.rundir.write_config(self.config.to_dict())
                if not self.rundir.record_file.exists():  # a resume keeps the start's record
                    self.rundir.write_record(inputs, threads)
        except BaseException:
            self.rundir.release()
            raise

    def save_checkpoint(self, path: Path | None = None) -> None:
        state = {name: obj.state_dict() for name, obj in self.stateful().items()}
        state |= {"epoch": self.epoch, **rng_state(self.device), **self.extra_state()}
        self.rundir.save(state, self.history, path)

    def load_checkpoint(self) -> None:
        loaded = self.rundir.load(self.device)
        if loaded is None:
            return
        state, self.history = loaded
        self.restore_extra(state)
        for name, obj in self.stateful().items():
            if name in state:  # a checkpoint of an older tfnas may lack a scaler's state
                obj.load_state_dict(state[name])
        restore_rng(state, self.device)
        self.epoch = int(state["epoch"])

    # -- the loop's helpers -------------------------------------------------------------------
    def seed(self, salt: int) -> int:
        """A seed of its own for each pass (an epoch's data order, a scoring batch)."""
        return self.config.seed * 1_000_003 + salt

    def batches(self, data: Any, batch_size: int, drop_last: bool = True) -> Batches:
        """Seeded batches of ``data``, this process's share of each pass, prepared on the
        run's device."""
        return Batches(
            data,
            batch_size,
            drop_last=drop_last,
            shard=Shard(self.dist.rank, self.dist.world_size),
            workers=self.config.workers,
            device=self.device,
        )

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(self.device, memory_format=self.memory_format, non_blocking=True)

    def on_device(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.prepare(images), labels.to(self.device, non_blocking=True)

    def steps(self, loader: Any, epochs: int) -> Iterator[Any]:
        """``loader``'s batches, with a progress bar of the epoch's steps on a terminal."""
        if not self.progress:
            yield from loader
            return
        from tqdm import tqdm

        with tqdm(
            total=len(loader),
            desc=f"epoch {self.epoch + 1}/{epochs}",
            unit="step",
            leave=False,
            dynamic_ncols=True,
        ) as bar:
            for batch in loader:
                yield batch
                bar.update(1)


class Run(Protocol[T]):
    """A search or a training, set up and ready for :meth:`run`."""

    dist: DistContext
    rundir: RunDir

    def run(self) -> T: ...


def run_to_end(make: Callable[[], Run[T]]) -> T:
    """Set up the run with ``make`` and run it. A failure before its first checkpoint removes
    what it wrote, so that the next attempt is not refused; the process group goes down in
    any case, after the run's objects (DistributedDataParallel's reducer must go before the
    group does: torn down after it, at exit, it can abort)."""
    run = None
    try:
        run = make()
        return run.run()
    except BaseException:
        if run is not None and run.dist.is_main:
            run.rundir.discard_if_unstarted()
        raise
    finally:
        if run is not None:
            run.rundir.release()
        del run
        gc.collect()
        shutdown()


__all__ = [
    "GeneratorState",
    "Placement",
    "RunEngine",
    "Stateful",
    "optimizer_step",
    "place_run",
    "restore_rng",
    "rng_state",
    "run_to_end",
]
