"""Architectures scored as paths of a trained supernet: the supernet's ranking, made usable.

A trained supernet holds every architecture of its space. Any one of them (its ops, depths
and widths) runs as a path through it; after the path's batch-norm statistics are
re-estimated on training batches (the supernet's own running statistics mix every path that
ran and describe no single network), its accuracy on held-out images is the supernet's
estimate of how good that architecture is. Selection after scaling, the search's "beats N
of K random networks" line and the ground-truth benches all score architectures this way.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..arch import Architecture
from ..errors import TfnasError
from ..nn.batchnorm import recalibrate_batchnorm
from ..nn.supernet import Supernet
from ..rundir import CONFIG_FILE, SEARCH_CHECKPOINT
from ..space import load_space
from .config import SearchConfig

Batch = tuple[torch.Tensor, torch.Tensor]


def supernet_path(
    net: Supernet, arch: Architecture
) -> tuple[list[list[int]], list[torch.Tensor], list[list[int]]]:
    """``arch`` as a path of ``net``: per stage its ops in the first blocks (the rest padded
    with op 0, never run), one-hot depth weights on the host (so the forward pass prunes the
    blocks past the depth), and the supernet block of every chosen block."""
    path, depth_weights, sources = [], [], []
    for s, (stage, chosen) in enumerate(zip(net.stages, arch.stages, strict=True)):
        depths = net.space.stages[s].depths
        ops = [
            [spec.op for spec in block.specs].index(c.op)
            for block, c in zip(stage[: len(chosen)], chosen, strict=True)
        ]
        path.append(ops + [0] * (len(stage) - len(ops)))
        weights = torch.zeros(len(depths))
        weights[depths.index(len(chosen))] = 1
        depth_weights.append(weights)
        sources.append(list(range(len(chosen))))
    return path, depth_weights, sources


@dataclass
class PathScorer:
    """Scores architectures in a private copy of a trained supernet (the caller's supernet,
    its widths and statistics are never touched).

    ``bn_batches`` are training batches that re-estimate the path's batch-norm statistics,
    ``eval_batches`` held-out ones it is scored on; ``prepare`` moves images to the
    supernet's device and memory format. The same batches score every architecture, so
    differences between two scores are not batch noise of their own.
    """

    net: Supernet
    bn_batches: Sequence[Batch]
    eval_batches: Sequence[Batch]
    prepare: Callable[[torch.Tensor], torch.Tensor] = lambda images: images

    def __post_init__(self) -> None:
        self.net = copy.deepcopy(self.net)
        self.net.requires_grad_(False)

    @torch.no_grad()
    def score(self, arch: Architecture) -> float:
        """Top-1 of ``arch`` as a path, after its batch norms are re-estimated."""
        net = self.net
        path, depth_weights, sources = supernet_path(net, arch)
        # Every path block gets its channels chosen afresh (the largest L1 norms now): a
        # mask left from whatever set that op's width before would make a score depend on
        # the order architectures are scored in.
        for s, stage in enumerate(arch.stages):
            for j, choice in enumerate(stage):
                net.stages[s][sources[s][j]].set_width(path[s][j], choice.width)

        def forward(images: torch.Tensor) -> torch.Tensor:
            return net(images, path=path, depth_weights=depth_weights)

        recalibrate_batchnorm(
            net, self.bn_batches, len(self.bn_batches), forward=forward, prepare=self.prepare
        )
        net.eval()
        correct = seen = 0
        for images, labels in self.eval_batches:
            logits = forward(self.prepare(images))
            correct += int((logits.argmax(1) == labels.to(logits.device)).sum())
            seen += len(labels)
        return correct / max(1, seen)

    def score_all(self, archs: Sequence[Architecture]) -> list[float]:
        return [self.score(arch) for arch in archs]


def ranking_quality(
    scores: Sequence[float], truth: Sequence[float], top: int = 5
) -> dict[str, float]:
    """How well ``scores`` rank what ``truth`` measured (higher is better in both): Kendall's
    tau, Spearman's rho, and the share of the ``top`` best-scored that are among the ``top``
    best in truth."""
    from scipy import stats

    if len(scores) != len(truth) or len(scores) < 2:
        raise ValueError("ranking_quality needs two equally long lists of at least 2 values")
    tau, tau_p = stats.kendalltau(scores, truth)
    rho, rho_p = stats.spearmanr(scores, truth)
    k = min(top, len(scores))
    best_scored = set(sorted(range(len(scores)), key=lambda i: -scores[i])[:k])
    best_true = set(sorted(range(len(truth)), key=lambda i: -truth[i])[:k])
    return {
        "kendall_tau": float(tau),
        "kendall_p": float(tau_p),
        "spearman_rho": float(rho),
        "spearman_p": float(rho_p),
        "top_k": k,
        "top_k_precision": len(best_scored & best_true) / k,
    }


__all__ = ["PathScorer", "ranking_quality", "supernet_path"]


def trained_supernet(run_dir: str | Path) -> tuple[Supernet, SearchConfig]:
    """The supernet of a search run (its last checkpoint, on the CPU) and the run's settings:
    for scoring architectures as its paths after the search (:mod:`tfnas.search.path_score`)."""
    run_dir = Path(run_dir)
    for name in (CONFIG_FILE, SEARCH_CHECKPOINT):
        if not (run_dir / name).is_file():
            raise TfnasError(f"{run_dir}: is not a search run (no {name}).")
    config = SearchConfig.from_dict(json.loads((run_dir / CONFIG_FILE).read_text()))
    space = load_space(config.space)
    state = torch.load(run_dir / SEARCH_CHECKPOINT, map_location="cpu", weights_only=True)
    classes = int(state["net"]["head.classifier.weight"].shape[0])
    net = Supernet(space, classes, config.in_channels, config.depth, config.op_weights)
    net.load_state_dict(state["net"])
    return net, config
