"""The TF-NAS search loop: warm-up, bi-sampling weight steps, architecture steps under the
latency loss, elasticity-scaling after every epoch, checkpoints and exact resume.

Every source of randomness (data order, augmentation, Gumbel noise, path sampling) is seeded
and its state saved in the checkpoint at each epoch's end, so a search killed at any moment
and resumed with ``resume=True`` ends with the same architecture as an uninterrupted run.
"""

from __future__ import annotations

import io
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..arch import Architecture, architecture_from_dict
from ..data import split_for_search
from ..distributed import (
    all_reduce_mean,
    all_sum,
    barrier,
    check_agreement,
    process_device,
    same_everywhere,
    shutdown,
    text_digest,
)
from ..errors import TfnasError
from ..io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..latency.table import LatencyTable, latency_range, load_table
from ..nn.supernet import DEPTH_MODES, Supernet
from ..space import SearchSpace, load_space
from .elastic import elastic_scale
from .projection import project_to_target
from .sampling import SAMPLINGS, gumbel_softmax, sample_paths

log = logging.getLogger(__name__)
WIDTH_MODES = ("elastic", "fixed")
CHECKPOINT = "checkpoint.pt"


@dataclass
class SearchConfig:
    """Everything that decides a search's result (and is checked again on resume)."""

    space: str
    lut: str
    target_ms: float
    data: str = "fashion-mnist"
    data_root: str | None = None
    epochs: int = 10
    warmup_epochs: int | None = None  # default: a ninth of the epochs (10 of 90 in the paper)
    lambda_lat: float = 0.1
    seed: int = 0
    batch_size: int = 64
    limit: int | None = None  # use this many training images (split 80/20)
    arch_fraction: float = 0.2
    arch_every: int = 2  # one architecture step every this many weight steps
    weight_lr: float = 0.025
    weight_momentum: float = 0.9
    weight_decay: float = 1e-5
    arch_lr: float = 0.01
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 5e-4
    grad_clip: float = 5.0
    tau_start: float = 5.0
    tau_end: float | None = None  # default: the paper's 5.0 x 0.96^80, reached at the end
    sampling: str = "gumbel-random"
    depth: str = "sink"
    width: str = "elastic"
    in_channels: int | None = None
    eval_batches: int | None = 20  # arch-split batches to score the derived network on
    workers: int = 0
    device: str = "auto"
    channels_last: bool = True  # NHWC activations: about 1.8x faster search steps on CPU

    def resolved_warmup(self) -> int:
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        return max(1, round(self.epochs / 9)) if self.epochs > 1 else 0

    def tau_decay(self) -> float:
        """Per-epoch factor taking tau from its start to its end over the search epochs."""
        searching = self.epochs - self.resolved_warmup()
        end = self.tau_end if self.tau_end is not None else self.tau_start * 0.96**80
        return (end / self.tau_start) ** (1 / max(1, searching))

    def validate(self) -> None:
        def bad(msg: str) -> TfnasError:
            return TfnasError(msg)

        if self.device == "cuda" and not torch.cuda.is_available():
            raise bad("--device cuda was asked for, but torch sees no CUDA GPU here.")
        if self.target_ms <= 0:
            raise bad(f"--target-ms must be positive, got {self.target_ms}.")
        if self.epochs < 1:
            raise bad(f"--epochs must be at least 1, got {self.epochs}.")
        if not 0 <= self.resolved_warmup() < self.epochs:
            raise bad(
                f"--warmup-epochs must lie in 0..{self.epochs - 1}, got {self.warmup_epochs}."
            )
        if self.sampling not in SAMPLINGS:
            raise bad(f"--sampling must be one of {', '.join(SAMPLINGS)}.")
        if self.depth not in DEPTH_MODES:
            raise bad(f"--depth must be one of {', '.join(DEPTH_MODES)}.")
        if self.width not in WIDTH_MODES:
            raise bad(f"--width must be one of {', '.join(WIDTH_MODES)}.")
        if self.batch_size < 1 or self.arch_every < 1:
            raise bad("--batch-size and --arch-every must be at least 1.")
        if self.lambda_lat < 0:
            raise bad(f"--lambda-lat must not be negative, got {self.lambda_lat}.")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["arch_betas"] = list(self.arch_betas)
        return out


@dataclass
class SearchResult:
    arch: Architecture
    predicted_ms: float
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    main_process: bool = True


def check_target(space: SearchSpace, table: LatencyTable, target_ms: float) -> tuple[float, float]:
    """Refuse a target outside the space's feasible range on this table, naming the range."""
    r = latency_range(space, table)
    if not r.fastest_ms <= target_ms <= r.slowest_ms:
        raise TfnasError(
            f"target {target_ms:g} ms is outside the feasible latency range of space "
            f"'{space.name}' on this table, {r.fastest_ms:.3f} to {r.slowest_ms:.3f} ms; "
            "choose a target within it."
        )
    return r.fastest_ms, r.slowest_ms


class Searcher:
    """One search run in ``run_dir``; call :meth:`run`."""

    def __init__(
        self,
        config: SearchConfig,
        run_dir: str | Path,
        resume: bool = False,
        space: SearchSpace | None = None,
        table: LatencyTable | None = None,
        progress: bool | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.run_dir = Path(run_dir)
        self.space = space or load_space(config.space)
        self.table = table or load_table(config.lut, self.space)
        self.table.check_space(self.space)
        self.range_ms = check_target(self.space, self.table, config.target_ms)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.on_step = on_step
        self._prepare_run_dir(resume)
        self.weights, self.arch_data = split_for_search(
            config.data,
            image_size=self.space.input_size,
            channels=config.in_channels or self.space.input_channels,
            arch_fraction=config.arch_fraction,
            seed=config.seed,
            limit=config.limit,
            root=config.data_root,
        )
        smallest = min(len(self.weights), len(self.arch_data))
        if smallest < config.batch_size:
            raise TfnasError(
                f"the search split has {len(self.weights)} weight-training and "
                f"{len(self.arch_data)} architecture images, and each part needs at least one "
                f"batch of {config.batch_size}; use more data or a smaller --batch-size."
            )
        self.device, self.dist = process_device(config.device)
        self.progress = self.progress and self.dist.is_main
        torch.manual_seed(config.seed)
        self.net = Supernet(
            self.space, self.weights.num_classes, config.in_channels, depth_mode=config.depth
        ).to(self.device)
        self.memory_format = (
            torch.channels_last if config.channels_last else torch.contiguous_format
        )
        self.net.to(memory_format=self.memory_format)
        self.weight_opt = torch.optim.SGD(
            self.net.weight_parameters(),
            lr=config.weight_lr,
            momentum=config.weight_momentum,
            weight_decay=config.weight_decay,
        )
        self.arch_opt = torch.optim.Adam(
            self.net.arch_parameters(),
            lr=config.arch_lr,
            betas=config.arch_betas,
            weight_decay=config.arch_weight_decay,
        )
        self.sampler = torch.Generator().manual_seed(config.seed + 1)
        self.tau = config.tau_start
        self.epoch = 0
        self.current: Architecture | None = None  # the latest derived architecture
        self.history: list[dict[str, Any]] = []
        if resume and (self.run_dir / CHECKPOINT).exists():
            self._load_checkpoint()
        # Written only once everything above has succeeded: a search that could not start
        # leaves no run directory behind to block the next attempt.
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.run_dir / "config.json", self.config.to_dict())

    # -- run directory ------------------------------------------------------------------------
    def _on_device(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(self.device, memory_format=self.memory_format)

    def _prepare_run_dir(self, resume: bool) -> None:
        config_path = self.run_dir / "config.json"
        if (self.run_dir / CHECKPOINT).exists() or config_path.exists():
            if not resume:
                raise TfnasError(
                    f"{self.run_dir}: holds a search already; pass --resume to continue it, or "
                    "choose another --out."
                )
            saved = json.loads(config_path.read_text()) if config_path.exists() else None
            if saved is not None and saved != self.config.to_dict():
                changed = sorted(k for k in saved if saved.get(k) != self.config.to_dict().get(k))
                raise TfnasError(
                    f"{self.run_dir}: was started with other settings ({', '.join(changed)}); "
                    "resume it with the same ones."
                )

    def _save_checkpoint(self) -> None:
        state = {
            "epoch": self.epoch,
            "tau": self.tau,
            "net": self.net.state_dict(),
            "weight_opt": self.weight_opt.state_dict(),
            "arch_opt": self.arch_opt.state_dict(),
            "sampler": self.sampler.get_state(),
            "torch_rng": torch.get_rng_state(),
            "current": json.dumps(self.current.to_dict()) if self.current else "",
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.run_dir / CHECKPOINT, buffer.getvalue())
        lines = "".join(json.dumps(row) + "\n" for row in self.history)
        atomic_write_text(self.run_dir / "metrics.jsonl", lines)

    def _load_checkpoint(self) -> None:
        state = torch.load(self.run_dir / CHECKPOINT, map_location=self.device, weights_only=True)
        self.net.load_state_dict(state["net"])
        self.weight_opt.load_state_dict(state["weight_opt"])
        self.arch_opt.load_state_dict(state["arch_opt"])
        self.sampler.set_state(state["sampler"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        self.epoch = int(state["epoch"])
        self.tau = float(state["tau"])
        if state.get("current"):
            self.current = architecture_from_dict(json.loads(state["current"]))
        metrics = self.run_dir / "metrics.jsonl"
        if metrics.exists():
            rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            self.history = [r for r in rows if r["epoch"] < self.epoch]
        log.info("resuming %s at epoch %d", self.run_dir, self.epoch + 1)

    # -- the loop -----------------------------------------------------------------------------
    def _loader(self, data, salt: int, everywhere: bool = False) -> DataLoader:
        """A seeded, shuffled loader; under torchrun each process gets its own share
        (``everywhere``: the whole data on every process)."""
        seed = self.config.seed * 1_000_003 + salt
        c = self.config
        if self.dist.active and not everywhere:
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(
                data.dataset,
                self.dist.world_size,
                self.dist.rank,
                shuffle=True,
                seed=seed,
                drop_last=True,
            )
            return DataLoader(
                data.dataset,
                batch_size=c.batch_size,
                sampler=sampler,
                drop_last=True,
                num_workers=c.workers,
            )
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(
            data.dataset,
            batch_size=c.batch_size,
            shuffle=True,
            drop_last=True,
            generator=generator,
            num_workers=c.workers,
        )

    def _weight_lr(self, epoch: int) -> float:
        c = self.config
        return 0.5 * c.weight_lr * (1 + math.cos(math.pi * epoch / c.epochs))

    def _arch_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        cycle = 0
        while True:
            yield from self._loader(self.arch_data, 2 * (epoch * 1000 + cycle) + 1)
            cycle += 1

    def run(self) -> SearchResult:
        c = self.config
        warmup = c.resolved_warmup()
        while self.epoch < c.epochs:
            epoch = self.epoch
            for group in self.weight_opt.param_groups:
                group["lr"] = self._weight_lr(epoch)
            row = self._train_epoch(epoch, searching=epoch >= warmup)
            if epoch >= warmup:
                self.tau *= c.tau_decay()
            row.update(self._end_of_epoch(epoch, searching=epoch >= warmup))
            if not same_everywhere(row["arch"], self.device):
                raise RuntimeError("processes derived different architectures; they must agree")
            self.history.append(row)
            self.epoch += 1
            if self.dist.is_main:
                self._save_checkpoint()
                self._report(row)
            barrier()
        return self._finish()

    def _train_epoch(self, epoch: int, searching: bool) -> dict[str, Any]:
        c = self.config
        net = self.net
        net.train()
        loader = self._loader(self.weights, 2 * epoch)
        arch_batches = self._arch_batches(epoch)
        sums = {
            "weight_loss": 0.0,
            "weight_correct": 0,
            "weight_seen": 0,
            "arch_loss": 0.0,
            "arch_ce": 0.0,
            "latency_loss": 0.0,
            "arch_correct": 0,
            "arch_seen": 0,
            "arch_steps": 0,
        }
        started = time.perf_counter()
        steps = len(loader)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=steps,
                desc=f"epoch {epoch + 1}/{c.epochs}",
                unit="step",
                leave=False,
                dynamic_ncols=True,
            )
        for step, (images, labels) in enumerate(loader):
            images, labels = self._on_device(images), labels.to(self.device)
            alphas = [
                [net.alpha(s, b) for b in range(len(stage))] for s, stage in enumerate(net.stages)
            ]
            strategy = c.sampling if searching else "gumbel"
            paths = sample_paths(alphas, strategy, self.sampler)
            self.weight_opt.zero_grad(set_to_none=True)
            loss = 0.0
            for path in paths:
                logits = net(images, path=path)
                loss = loss + F.cross_entropy(logits, labels)
                if path is paths[0]:
                    sums["weight_correct"] += int((logits.detach().argmax(1) == labels).sum())
            loss.backward()
            # Every process ran the same paths, so the same parameters hold gradients.
            all_reduce_mean([p.grad for p in net.weight_parameters() if p.grad is not None])
            torch.nn.utils.clip_grad_norm_(net.weight_parameters(), c.grad_clip)
            self.weight_opt.step()
            sums["weight_loss"] += float(loss.detach()) / len(paths) * len(labels)
            sums["weight_seen"] += len(labels)
            if searching and (step + 1) % c.arch_every == 0:
                arch_images, arch_labels = next(arch_batches)
                self._arch_step(self._on_device(arch_images), arch_labels.to(self.device), sums)
            if bar is not None:
                bar.update(1)
            if self.on_step is not None:
                self.on_step(epoch, step)
        if bar is not None:
            bar.close()
        totals = all_sum([float(v) for v in sums.values()], self.device)
        sums = dict(zip(sums, totals, strict=True))
        seconds = time.perf_counter() - started
        seen, arch_seen = max(1, sums["weight_seen"]), max(1, sums["arch_seen"])
        row: dict[str, Any] = {
            "epoch": epoch,
            "phase": "search" if searching else "warmup",
            "lr": self._weight_lr(epoch),
            "weight_loss": sums["weight_loss"] / seen,
            "weight_acc": sums["weight_correct"] / seen,
            "seconds": seconds,
            "images_per_second": (sums["weight_seen"] + sums["arch_seen"]) / seconds,
        }
        if sums["arch_steps"]:
            n = sums["arch_steps"]
            row.update(
                arch_loss=sums["arch_loss"] / n,
                arch_ce=sums["arch_ce"] / n,
                latency_loss=sums["latency_loss"] / n,
                arch_acc=sums["arch_correct"] / arch_seen,
            )
        return row

    def _arch_step(self, images: torch.Tensor, labels: torch.Tensor, sums: dict[str, Any]) -> None:
        c = self.config
        net = self.net
        op_weights = [
            [gumbel_softmax(net.alpha(s, b), self.tau, self.sampler) for b in range(len(stage))]
            for s, stage in enumerate(net.stages)
        ]
        depth_weights = net.depth_weights()
        self.arch_opt.zero_grad(set_to_none=True)
        weights = net.weight_parameters()
        # Architecture steps update alpha and beta only: with the weights frozen, autograd
        # skips their gradients, which halves the cost of this (all-ops) step.
        for p in weights:
            p.requires_grad_(False)
        try:
            logits = net(images, op_weights=op_weights, depth_weights=depth_weights)
            ce = F.cross_entropy(logits, labels)
            expected = net.expected_latency(self.table, op_weights, depth_weights)
            latency_loss = (expected / c.target_ms - 1).abs()
            loss = ce + c.lambda_lat * latency_loss
            loss.backward()
        finally:
            for p in weights:
                p.requires_grad_(True)
        all_reduce_mean([p.grad for p in net.arch_parameters() if p.grad is not None])
        torch.nn.utils.clip_grad_norm_(net.arch_parameters(), c.grad_clip)
        self.arch_opt.step()
        net.renormalise_alphas()
        sums["arch_loss"] += float(loss.detach())
        sums["arch_ce"] += float(ce.detach())
        sums["latency_loss"] += float(latency_loss.detach())
        sums["arch_correct"] += int((logits.detach().argmax(1) == labels).sum())
        sums["arch_seen"] += len(labels)
        sums["arch_steps"] += 1

    @torch.no_grad()
    def derive_for_target(self) -> tuple[Architecture, list[list[int]], list[str]]:
        """The derived architecture, made able to meet the target (projection) and scaled
        onto it (elasticity-scaling, unless widths are fixed); widths applied to the supernet."""
        c = self.config
        net = self.net
        arch, sources = net.derive()
        op_log_probs = [
            [torch.log_softmax(net.alpha(s, b), 0).tolist() for b in range(len(stage))]
            for s, stage in enumerate(net.stages)
        ]
        depth_log_probs = (
            [torch.log_softmax(beta, 0).tolist() for beta in net.betas]
            if c.depth == "sink"
            else None
        )
        projection = project_to_target(
            self.space,
            self.table,
            arch,
            sources,
            c.target_ms,
            op_log_probs,
            depth_log_probs,
            c.width == "elastic",
        )
        arch, sources = projection.arch, projection.sources
        if c.width == "elastic":
            arch = elastic_scale(self.space, arch, self.table, c.target_ms).arch
            net.apply_widths(arch, sources)
        return arch, sources, projection.changes

    @torch.no_grad()
    def _end_of_epoch(self, epoch: int, searching: bool) -> dict[str, Any]:
        c = self.config
        net = self.net
        arch, _ = net.derive()
        before = self.table.predict(self.space, arch)
        changes: list[str] = []
        if searching:
            arch, _, changes = self.derive_for_target()
            self.current = arch
        probs = net.op_probabilities()
        row: dict[str, Any] = {
            "tau": self.tau,
            "expected_latency_ms": float(net.expected_latency(self.table)),
            "argmax_latency_ms": before,
            "projection_changes": changes,
            "derived_latency_ms": self.table.predict(self.space, arch),
            "target_ms": c.target_ms,
            "arch": arch.describe(),
            "depths": list(arch.depths),
            "depth_probs": [w.tolist() for w in net.depth_weights()],
            "op_probs": [[p.tolist() for p in stage] for stage in probs],
            "op_entropy": [
                [float(-(p * p.clamp_min(1e-12).log()).sum()) for p in stage] for stage in probs
            ],
            "widths": [[choice.width for choice in stage] for stage in arch.stages],
        }
        # scored by the first process alone, on the whole architecture split's first batches
        row["derived_arch_split_acc"] = self._derived_accuracy() if self.dist.is_main else None
        return row

    @torch.no_grad()
    def _derived_accuracy(self) -> float:
        """Accuracy of the derived network's path on (part of) the architecture split.

        Scored with batch statistics, as during training: a supernet's running statistics
        mix every path that ran through each op and do not describe any one network. The
        running statistics are left untouched (momentum 0) and dropout is off.
        """
        net = self.net
        path, depth_weights = net.derived_path()
        norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.momentum = 0.0
        net.train()
        net.head.dropout.eval()
        correct = seen = 0
        try:
            for i, (images, labels) in enumerate(self._loader(self.arch_data, -1, True)):
                images, labels = self._on_device(images), labels.to(self.device)
                if self.config.eval_batches is not None and i >= self.config.eval_batches:
                    break
                logits = net(images, path=path, depth_weights=depth_weights)
                correct += int((logits.argmax(1) == labels).sum())
                seen += len(labels)
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
        return correct / max(1, seen)

    def _report(self, row: dict[str, Any]) -> None:
        c = self.config
        acc = f", arch-split acc {row['derived_arch_split_acc']:.3f}"
        print(
            f"epoch {row['epoch'] + 1}/{c.epochs} ({row['phase']}): loss {row['weight_loss']:.3f}, "
            f"train acc {row['weight_acc']:.3f}{acc}, tau {row['tau']:.2f}, expected "
            f"{row['expected_latency_ms']:.3f} ms, derived {row['derived_latency_ms']:.3f} ms "
            f"(target {c.target_ms:g}), {row['seconds']:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def _finish(self) -> SearchResult:
        arch = self.current
        predicted = self.table.predict(self.space, arch)
        c = self.config
        arch = Architecture(
            arch.space_name,
            arch.space_hash,
            arch.stages,
            {
                "origin": "tfnas search",
                "target_ms": c.target_ms,
                "predicted_ms": predicted,
                "lut": c.lut,
                "feasible_range_ms": list(self.range_ms),
                "search": {
                    k: v
                    for k, v in c.to_dict().items()
                    if k
                    in (
                        "epochs",
                        "seed",
                        "sampling",
                        "depth",
                        "width",
                        "lambda_lat",
                        "data",
                        "limit",
                    )
                },
            },
        )
        arch_text = json.dumps(arch.to_dict(), sort_keys=True)
        check_agreement("architecture", text_digest(arch_text), self.dist, self.device)
        if self.dist.is_main:
            arch.save(self.run_dir / "arch.json")
        return SearchResult(arch, predicted, self.run_dir, self.history, self.dist.is_main)


def search(
    config: SearchConfig, run_dir: str | Path, resume: bool = False, **kwargs: Any
) -> SearchResult:
    """Run (or resume) a search and write ``run_dir/arch.json``."""
    try:
        return Searcher(config, run_dir, resume, **kwargs).run()
    finally:
        shutdown()
