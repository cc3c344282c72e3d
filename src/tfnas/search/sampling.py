"""Path sampling for weight steps: which op each block runs in a training forward pass.

- ``gumbel``: one path, each block's op drawn by Gumbel-argmax from its alpha (one-path
  sampling, as in FBNet/GDAS);
- ``gumbel-random`` (TF-NAS bi-sampling, the default): the Gumbel path plus a second path whose
  op in every block is drawn uniformly from the ops *other than* the Gumbel path's;
- ``gumbel-gumbel``: the Gumbel path plus an independent second Gumbel path;
- ``gumbel-max``: the Gumbel path plus the argmax path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..options import SAMPLINGS


def gumbel_noise(shape: torch.Size | tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    uniform = torch.rand(shape, generator=generator).clamp_(1e-10, 1 - 1e-10)
    return -torch.log(-torch.log(uniform))


def gumbel_softmax(alpha: torch.Tensor, tau: float, generator: torch.Generator) -> torch.Tensor:
    """Soft Gumbel-softmax sample (``hard=False``) with a seeded generator, so that a
    resumed search draws exactly the noise the uninterrupted one would."""
    noise = gumbel_noise(alpha.shape, generator).to(alpha.device, non_blocking=True)
    return torch.softmax((alpha + noise) / tau, dim=-1)


def gumbel_argmax(alpha: torch.Tensor, generator: torch.Generator) -> int:
    """The Gumbel-argmax choice; ``alpha`` belongs on the host (``Supernet.host_state``),
    else reading the choice back waits for the device."""
    return int((alpha.detach().cpu() + gumbel_noise(alpha.shape, generator)).argmax())


def random_other(n: int, excluded: int, generator: torch.Generator) -> int:
    """Uniform over ``range(n)`` without ``excluded`` (``excluded`` itself when ``n == 1``)."""
    if n == 1:
        return excluded
    pick = int(torch.randint(n - 1, (1,), generator=generator))
    return pick + (pick >= excluded)


def sample_paths(
    alphas: Sequence[Sequence[torch.Tensor]], strategy: str, generator: torch.Generator
) -> list[list[list[int]]]:
    """One or two paths (per stage, per block: an op index) for a weight step."""
    if strategy not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}")
    first = [[gumbel_argmax(a, generator) for a in stage] for stage in alphas]
    if strategy == "gumbel":
        return [first]
    if strategy == "gumbel-random":
        second = [
            [random_other(len(a), op, generator) for a, op in zip(stage, ops, strict=True)]
            for stage, ops in zip(alphas, first, strict=True)
        ]
    elif strategy == "gumbel-gumbel":
        second = [[gumbel_argmax(a, generator) for a in stage] for stage in alphas]
    else:
        second = [[int(a.detach().argmax()) for a in stage] for stage in alphas]
    return [first, second]
