"""What the search returns, chosen by its supernet among architectures already at the target.

The argmax architecture is picked op by op before its widths are scaled; an SE op, say, then
pays for its latency in width without the search ever seeing that price. Selection after
scaling draws candidates from the learned distribution (and keeps the argmax), scales each
onto the target, scores each as a path of the supernet (:mod:`tfnas.search.path_score`)
and returns the best: every op is charged its real width cost, and the supernet's ranking
decides only between networks of equal latency.

The same scorer places the result among random architectures scaled onto the same target
(:func:`standing`): "as its supernet scores them, the searched network beats N of K random
networks", which tells a user whether the search was worth it on their data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..arch import Architecture, BlockChoice, random_architecture
from ..latency.table import LatencyTable
from ..nn.supernet import Supernet
from ..space import SearchSpace
from .elastic import scale_onto_target
from .path_score import PathScorer

ARGMAX = "argmax"


@dataclass(frozen=True)
class Candidate:
    origin: str  # "argmax", or "draw N" from the learned distribution
    arch: Architecture
    score: float


@dataclass(frozen=True)
class Selection:
    chosen: Candidate
    candidates: tuple[Candidate, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.origin,
            "candidates": [
                {"origin": c.origin, "arch": c.arch.describe(), "score": c.score}
                for c in self.candidates
            ],
        }


def _op_mix(arch: Architecture) -> tuple:
    return tuple(tuple(c.op for c in stage) for stage in arch.stages)


def draw_architecture(net: Supernet, generator: torch.Generator) -> Architecture:
    """One architecture drawn from the supernet's learned distribution: a depth per stage
    from softmax(beta) (when sinking; else the full depth), an op per block from
    softmax(alpha), each at the supernet's current width for it."""
    stages = []
    for s, (stage, spec) in enumerate(zip(net.stages, net.space.stages, strict=True)):
        depth = spec.blocks
        if net.depth_mode == "sink":
            probs = torch.softmax(net.betas[s].detach().cpu(), 0)
            depth = spec.depths[int(torch.multinomial(probs, 1, generator=generator))]
        chosen = []
        for b in range(depth):
            block = stage[b]
            probs = torch.softmax(net.alpha(s, b).detach().cpu(), 0)
            choice = int(torch.multinomial(probs, 1, generator=generator))
            if not block.is_skip(choice):
                chosen.append(BlockChoice(block.specs[choice].op, block.width(choice)))
        stages.append(tuple(chosen))
    return Architecture(net.space.name, net.space.hash, tuple(stages))


def draw_candidates(
    net: Supernet,
    table: LatencyTable,
    target_ms: float,
    count: int,
    seed: int,
    on_knots: bool = False,
) -> list[tuple[str, Architecture]]:
    """Up to ``count`` distinct op-and-depth choices from the learned distribution, each
    scaled onto ``target_ms``; draws its widths cannot bring there, or that repeat an
    earlier choice, are skipped (at most ``8 * count`` draws in all)."""
    generator = torch.Generator().manual_seed(seed)
    seen: set[tuple] = set()
    out: list[tuple[str, Architecture]] = []
    for n in range(8 * count):
        if len(out) >= count:
            break
        arch = draw_architecture(net, generator)
        if _op_mix(arch) in seen:
            continue
        seen.add(_op_mix(arch))
        scaled = scale_onto_target(net.space, arch, table, target_ms, on_knots=on_knots)
        if scaled is not None:
            out.append((f"draw {n + 1}", scaled))
    return out


def select_after_scaling(
    scorer: PathScorer, argmax: Architecture, drawn: Sequence[tuple[str, Architecture]]
) -> Selection:
    """The best-scored of the argmax architecture and the drawn ones (all at the target);
    a tie goes to the argmax, then to the earlier draw. Draws with the argmax's own ops
    and depths are not scored twice."""
    pool = [(ARGMAX, argmax)] + [(o, a) for o, a in drawn if _op_mix(a) != _op_mix(argmax)]
    candidates = tuple(Candidate(o, a, scorer.score(a)) for o, a in pool)
    best = max(candidates, key=lambda c: c.score)  # max keeps the first of equal scores
    return Selection(best, candidates)


def random_references(
    space: SearchSpace, table: LatencyTable, target_ms: float, count: int, seed: int
) -> list[Architecture]:
    """``count`` uniformly random architectures (op per block, depth per stage) scaled onto
    ``target_ms``; draws that cannot reach it are skipped (at most ``20 * count`` draws)."""
    out: list[Architecture] = []
    for n in range(20 * count):
        if len(out) >= count:
            break
        arch = scale_onto_target(space, random_architecture(space, seed + n), table, target_ms)
        if arch is not None:
            out.append(arch)
    return out


def standing(
    scorer: PathScorer, arch: Architecture, references: Sequence[Architecture], target_ms: float
) -> dict[str, Any]:
    """Where ``arch`` stands among ``references`` as the supernet scores them."""
    own = scorer.score(arch)
    scores = scorer.score_all(references)
    beaten = sum(own > s for s in scores)
    return {
        "score": own,
        "reference_scores": scores,
        "beats": beaten,
        "ties": sum(own == s for s in scores),
        "of": len(scores),
        "target_ms": target_ms,
    }


def standing_sentence(result: dict[str, Any]) -> str:
    """The standing as one line for a terminal or a summary."""
    ties = f" (ties {result['ties']})" if result["ties"] else ""
    return (
        f"as its supernet scores them, the searched network beats {result['beats']} of "
        f"{result['of']} random networks at {result['target_ms']:g} ms{ties} "
        f"(path top-1 {result['score']:.1%})"
    )


__all__ = [
    "Candidate",
    "Selection",
    "draw_architecture",
    "draw_candidates",
    "random_references",
    "select_after_scaling",
    "standing",
    "standing_sentence",
]
