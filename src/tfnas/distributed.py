"""Process groups under torchrun: DistributedDataParallel on nccl (GPUs) or gloo (CPUs).

``torchrun --nproc-per-node N -m tfnas train ...`` starts N processes with ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK`` set; a plain ``tfnas train`` is a world of one and touches no
process group.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import TfnasError, named


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def use_threads(threads: int | None) -> None:
    """Run torch's CPU work on ``threads`` threads (None: torch's default, all cores)."""
    if threads:
        torch.set_num_threads(threads)


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU when torch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def init_distributed(use_cuda: bool) -> DistContext:
    """Join the process group torchrun describes (nccl with CUDA, else gloo), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank)


def set_deterministic(device: torch.device) -> None:
    """Bit-exact steps on CUDA, so that a resumed run ends exactly as an uninterrupted one:
    deterministic kernels (a warning where an op has none), no cuDNN autotuning. Slower on a
    GPU; on the CPU tfnas's steps are deterministic already and nothing changes."""
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def process_device(name: str) -> tuple[torch.device, DistContext]:
    """This process's device (its own GPU under torchrun) and its place in the group.

    NCCL needs a GPU of its own per process: with more processes on this node than GPUs,
    ``auto`` runs every process on the CPU over gloo (saying so once) and ``cuda`` is
    refused with the counts."""
    device = resolve_device(name)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    if device.type == "cuda" and local_world > 1:
        gpus = torch.cuda.device_count()
        if local_world > gpus:
            if name != "auto":
                raise TfnasError(
                    f"{local_world} processes on this node but {gpus} GPU(s): each process "
                    "needs a GPU of its own; start at most that many, or use "
                    f"{named('device')} cpu."
                )
            if os.environ.get("LOCAL_RANK", "0") == "0":
                print(
                    f"tfnas: {local_world} processes on this node but {gpus} GPU(s): all "
                    "run on the CPU (gloo).",
                    file=sys.stderr,
                )
            device = torch.device("cpu")
    context = init_distributed(device.type == "cuda")
    if context.active and device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
    return device, context


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum over all processes (identity in a world of one)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_reduce_mean(tensors: list[torch.Tensor]) -> None:
    """Average tensors (gradients) over all processes, in one flat message."""
    if not (dist.is_available() and dist.is_initialized()) or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def same_everywhere(text: str, device: torch.device) -> bool:
    """Whether every process holds the same ``text`` (a cheap consistency check)."""
    if not (dist.is_available() and dist.is_initialized()):
        return True
    digest = int.from_bytes(hashlib.sha1(text.encode()).digest()[:7], "big")
    values = torch.tensor([digest, -digest], dtype=torch.int64, device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return int(values[0]) == digest and int(-values[1]) == digest


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state (names, parameters and buffers), to compare processes."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every process the first process's buffers (BatchNorm statistics: under DDP each
    process updates its own in its last forward pass)."""
    if dist.is_available() and dist.is_initialized():
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_agreement(what: str, digest: str, context: DistContext, device: torch.device) -> None:
    """Every process states its ``digest`` of ``what`` (one stderr line each) and all must
    agree; a world of one says nothing."""
    if not context.active:
        return
    # one write per line: the processes share stderr, and print() writes the newline apart
    sys.stderr.write(f"process {context.rank} of {context.world_size}: {what} sha256 {digest}\n")
    sys.stderr.flush()
    if not same_everywhere(digest, device):
        raise RuntimeError(f"the processes ended with different {what}; they must agree")


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
