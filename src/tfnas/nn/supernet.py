"""The supernet: every candidate op of every searchable block, at its maximum width.

Each searchable block is a :class:`MixedOp` over the candidate ops of its position (plus an
explicit "skip" choice in the skip-op depth ablation). Every op is an elastic
:class:`~tfnas.nn.blocks.MBConv` allocated at its op's maximum width, narrowed by a channel
mask: widths change without rebuilding anything, so optimizer state survives. Each stage
sinks the outputs after each of its blocks into its end, weighted over the admissible depths
(sink-connecting). The architecture parameters are ``alpha`` (log-probabilities over the
choices of each block) and ``beta`` (logits over each stage's depths).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..arch import Architecture, BlockChoice
from ..block import BlockSpec
from ..options import DEPTH_MODES, OP_WEIGHTS
from ..space import SearchSpace
from .blocks import KernelBank, MBConv, SharedMBConv
from .network import Head, Network, build_stem

# How the candidate ops of one block hold their weights: each its own ("separate", as the
# paper), or slices of one kernel bank ("shared": centre kernels, first channels).
DEFAULT_OP_WEIGHTS = OP_WEIGHTS[0]

Path = Sequence[Sequence[int]]  # per stage, per block: the index of the chosen op


@dataclass(frozen=True)
class HostArchState:
    """The architecture parameters as host tensors (:meth:`Supernet.host_state`): per stage,
    per block, alpha; per stage, the depth weights."""

    alphas: list[list[torch.Tensor]]
    depth_weights: list[torch.Tensor]


class MixedOp(nn.Module):
    """The candidate ops of one block position (the last choice is 'skip' when allowed)."""

    def __init__(
        self,
        specs: Sequence[BlockSpec],
        allow_skip: bool = False,
        op_weights: str = DEFAULT_OP_WEIGHTS,
    ) -> None:
        super().__init__()
        if op_weights not in OP_WEIGHTS:
            raise ValueError(f"op weights must be one of {OP_WEIGHTS}")
        self.specs = tuple(specs)
        if op_weights == "shared":
            self.bank = KernelBank(specs)
            self.ops = nn.ModuleList(SharedMBConv(spec, self.bank) for spec in specs)
        else:
            self.bank = None
            self.ops = nn.ModuleList(MBConv(spec, spec.max_width, elastic=True) for spec in specs)
        self.allow_skip = allow_skip
        for i, spec in enumerate(self.specs):
            self.set_width(i, spec.nominal_width)

    @property
    def choices(self) -> int:
        return len(self.ops) + int(self.allow_skip)

    def is_skip(self, choice: int) -> bool:
        return choice == len(self.ops)

    def width(self, choice: int) -> int:
        return self.ops[choice].active_width

    def set_width(self, choice: int, width: int) -> None:
        """Keep the ``width`` channels whose depthwise kernels have the largest L1 norms."""
        op = self.ops[choice]
        keep = torch.topk(op.channel_importance(), width).indices.sort().values
        op.set_active_channels(keep)

    def forward(
        self, x: torch.Tensor, choice: int | None = None, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        if choice is not None:
            return x if self.is_skip(choice) else self.ops[choice](x)
        if weights is None:
            raise ValueError("a MixedOp needs a choice or mixture weights")
        out = 0
        for i, w in enumerate(weights):
            out = out + w * (x if self.is_skip(i) else self.ops[i](x))
        return out


class Supernet(nn.Module):
    """All architectures of a space in one network, with their architecture parameters."""

    def __init__(
        self,
        space: SearchSpace,
        num_classes: int | None = None,
        in_channels: int | None = None,
        depth_mode: str = "sink",
        op_weights: str = DEFAULT_OP_WEIGHTS,
    ) -> None:
        super().__init__()
        if depth_mode not in DEPTH_MODES:
            raise ValueError(f"depth mode must be one of {DEPTH_MODES}")
        self.space = space
        self.depth_mode = depth_mode
        self.op_weights = op_weights
        self.num_classes = num_classes or space.classes
        self.in_channels = in_channels or space.input_channels
        self.stem = build_stem(space, self.in_channels)
        self.stages = nn.ModuleList()
        for s, stage in enumerate(space.stages):
            blocks = nn.ModuleList()
            for b in range(stage.blocks):
                allow_skip = depth_mode == "skip-op" and b >= stage.min_depth
                blocks.append(MixedOp(space.candidates(s, b), allow_skip, op_weights))
            self.stages.append(blocks)
        self.head = Head(space, self.num_classes)
        # alpha: uniform log-probabilities; beta: uniform logits over the admissible depths
        self.alphas = nn.ParameterList(
            nn.Parameter(torch.full((block.choices,), -math.log(block.choices)))
            for stage in self.stages
            for block in stage
        )
        self.betas = nn.ParameterList(
            nn.Parameter(torch.zeros(len(stage.depths))) for stage in space.stages
        )
        self._alpha_index = [
            [sum(len(st) for st in self.stages[:s]) + b for b in range(len(self.stages[s]))]
            for s in range(len(self.stages))
        ]

    # -- parameters ---------------------------------------------------------------------------
    def alpha(self, stage: int, block: int) -> nn.Parameter:
        return self.alphas[self._alpha_index[stage][block]]

    def arch_parameters(self) -> list[nn.Parameter]:
        params = list(self.alphas)
        if self.depth_mode == "sink":
            params += list(self.betas)
        return params

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in list(self.alphas) + list(self.betas)}
        return [p for p in self.parameters() if id(p) not in arch]

    @torch.no_grad()
    def renormalise_alphas(self) -> None:
        """Keep each alpha a log-probability vector (docs/method.md section 3)."""
        for alpha in self.alphas:
            alpha.copy_(torch.log_softmax(alpha, dim=0))

    def op_probabilities(self) -> list[list[torch.Tensor]]:
        return [
            [torch.softmax(self.alpha(s, b), 0) for b in range(len(stage))]
            for s, stage in enumerate(self.stages)
        ]

    @torch.no_grad()
    def host_state(self) -> HostArchState:
        """The architecture parameters copied to the host in one transfer (one
        synchronisation), for the weight steps until the next architecture step: sampling
        paths and pruning stages from them then never waits for the device."""
        params = list(self.alphas) + list(self.betas)
        flat = torch.cat([p.detach().reshape(-1) for p in params]).cpu()
        pieces = list(flat.split([p.numel() for p in params]))
        alphas, betas = pieces[: len(self.alphas)], pieces[len(self.alphas) :]
        nested = [[alphas[i] for i in stage] for stage in self._alpha_index]
        return HostArchState(nested, self.depth_weights(betas))

    def depth_weights(self, betas: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Per stage, weights over ``stage.depths``: softmax(beta) when sinking, else all on
        the full depth (skip-op and fixed depth never shorten a stage by sinking)."""
        betas = self.betas if betas is None else betas
        out = []
        for s, stage in enumerate(self.space.stages):
            if self.depth_mode == "sink":
                out.append(torch.softmax(betas[s], 0))
            else:
                w = torch.zeros(len(stage.depths), device=betas[s].device)
                w[-1] = 1
                out.append(w)
        return out

    # -- forward ------------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        path: Path | None = None,
        op_weights: Sequence[Sequence[torch.Tensor]] | None = None,
        depth_weights: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """One path (``path``: a choice per block) or the soft mixture (``op_weights``);
        stage outputs sunk with ``depth_weights`` (default: :meth:`depth_weights`).

        Constant depth weights held on the host (:meth:`host_state`, :meth:`derived_path`)
        also say which blocks can be skipped (those only zero-weighted depths reach); other
        weights (on the device, or learning) are not read back, and every block runs."""
        if depth_weights is None:
            depth_weights = self.depth_weights()
        x = self.stem(x)
        for s, (stage, spec) in enumerate(zip(self.stages, self.space.stages, strict=True)):
            weights = depth_weights[s]
            deepest = spec.depths[-1]
            if weights.device.type == "cpu" and not weights.requires_grad:
                deepest = max(d for d, w in zip(spec.depths, weights.tolist(), strict=True) if w)
                weights = weights.to(x.device, non_blocking=True)
            sink = 0
            for b in range(deepest):
                if path is not None:
                    x = stage[b](x, choice=path[s][b])
                else:
                    x = stage[b](x, weights=op_weights[s][b])
                if b + 1 in spec.depths:
                    sink = sink + weights[spec.depths.index(b + 1)] * x
            x = sink
        return self.head(x)

    # -- widths and latency ---------------------------------------------------------------
    def widths(self) -> list[list[list[int]]]:
        """Current mid width of every op of every block."""
        return [
            [[block.width(i) for i in range(len(block.ops))] for block in stage]
            for stage in self.stages
        ]

    def expected_latency(
        self,
        table,
        op_probs: Sequence[Sequence[torch.Tensor]] | None = None,
        depth_weights: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Differentiable expected latency under the given (default: current) distribution."""
        op_probs = op_probs if op_probs is not None else self.op_probabilities()
        depth_weights = depth_weights if depth_weights is not None else self.depth_weights()
        return table.expected_latency(self.space, op_probs, depth_weights, self.widths())

    # -- deriving an architecture ---------------------------------------------------------
    def derive(self) -> tuple[Architecture, list[list[int]]]:
        """The most likely architecture (argmax op per block, argmax depth per stage) with its
        current widths, and for each derived block the index of its supernet block."""
        stages, sources = [], []
        for s, (stage, spec) in enumerate(zip(self.stages, self.space.stages, strict=True)):
            if self.depth_mode == "sink":
                depth = spec.depths[int(self.betas[s].argmax())]
            else:
                depth = spec.blocks
            chosen, source = [], []
            for b in range(depth):
                block = stage[b]
                choice = int(self.alpha(s, b).argmax())
                if block.is_skip(choice):
                    continue
                chosen.append(BlockChoice(block.specs[choice].op, block.width(choice)))
                source.append(b)
            stages.append(tuple(chosen))
            sources.append(source)
        return Architecture(self.space.name, self.space.hash, tuple(stages)), sources

    def derived_path(self) -> tuple[list[list[int]], list[torch.Tensor]]:
        """The derived architecture as a supernet path with one-hot depth weights."""
        arch, sources = self.derive()
        path, depth_weights = [], []
        for s, stage in enumerate(self.stages):
            spec = self.space.stages[s]
            ops = [int(self.alpha(s, b).argmax()) for b in range(len(stage))]
            path.append(ops)
            depth = spec.blocks if self.depth_mode != "sink" else len(arch.stages[s])
            w = torch.zeros(len(spec.depths))  # host state: forward prunes without a sync
            w[spec.depths.index(depth)] = 1
            depth_weights.append(w)
        return path, depth_weights

    @torch.no_grad()
    def apply_widths(self, arch: Architecture, sources: list[list[int]]) -> None:
        """Give the derived blocks the widths of ``arch`` (after elasticity-scaling)."""
        for s, stage in enumerate(arch.stages):
            for j, choice in enumerate(stage):
                block = self.stages[s][sources[s][j]]
                op = [spec.op for spec in block.specs].index(choice.op)
                if block.width(op) != choice.width:
                    block.set_width(op, choice.width)

    @torch.no_grad()
    def extract(self, arch: Architecture, sources: list[list[int]]) -> Network:
        """The standalone network of a derived architecture, with the supernet's weights."""
        net = Network(self.space, arch, self.num_classes, self.in_channels)
        net.stem.load_state_dict(self.stem.state_dict())
        net.head.load_state_dict(self.head.state_dict())
        for s, stage in enumerate(arch.stages):
            for j, choice in enumerate(stage):
                block = self.stages[s][sources[s][j]]
                op = next(o for o in block.ops if o.spec.op == choice.op)
                net.stages[s][j] = op.narrowed(op.active_channels())
        return net.train(self.training)
