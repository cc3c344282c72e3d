"""What a search and a training do alike around their loops, written once for both: the
process's device and its place in a torchrun group, the activations' memory format, the
random generators' state in a checkpoint, and the end of a run (after a failure, an
unstarted run's files are removed; the process group is always shut down).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import torch

from .distributed import DistContext, process_device, set_deterministic, shutdown
from .rundir import RunDir

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
        del run
        gc.collect()
        shutdown()


__all__ = ["Placement", "place_run", "restore_rng", "rng_state", "run_to_end"]
