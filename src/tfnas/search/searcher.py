"""The TF-NAS search loop: warm-up, bi-sampling weight steps, architecture steps under the
latency loss, elasticity-scaling after every epoch, checkpoints and exact resume.

Every source of randomness (data order, augmentation, Gumbel noise, path sampling) is seeded
and its state saved in the checkpoint at each epoch's end, so a search killed at any moment
and resumed with ``resume=True`` ends with the same architecture as an uninterrupted run.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..arch import Architecture, architecture_from_dict
from ..data import split_for_search
from ..distributed import (
    all_reduce_mean,
    all_sum,
    barrier,
    check_agreement,
    same_everywhere,
    text_digest,
)
from ..engine import place_run, restore_rng, rng_state, run_to_end
from ..errors import TfnasError
from ..latency.table import LatencyTable, latency_range, load_table
from ..loader import Batches, Shard
from ..memory import check_search_memory, estimate_search_memory
from ..nn.supernet import Supernet
from ..precision import resolve_precision
from ..rundir import ARCH_FILE, CONFIG_FILE, SEARCH_CHECKPOINT, RunDir, dataclass_defaults
from ..schedules import cosine_lr
from ..space import SearchSpace, load_space
from .config import SearchConfig
from .elastic import elastic_scale
from .path_score import PathScorer
from .projection import project_to_target
from .sampling import sample_paths
from .selection import (
    draw_candidates,
    random_references,
    select_after_scaling,
    standing,
)
from .steps import (
    ArchStepStats,
    LatencyPenalty,
    StepStats,
    arch_step,
    batch_stat_accuracy,
    weight_step,
)

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    arch: Architecture
    predicted_ms: float
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    main_process: bool = True

    @property
    def standing(self) -> dict[str, Any] | None:
        """Where the result stands among random networks at the target, as its supernet
        scores them (:func:`~tfnas.search.selection.standing`); None when not scored."""
        return self.history[-1].get("standing") if self.history else None


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
        self.table.check_entries(self.space, config.lut)
        self.range_ms = check_target(self.space, self.table, config.target_ms)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.on_step = on_step
        self.rundir = RunDir(self.run_dir, "search", SEARCH_CHECKPOINT)
        self.rundir.guard(config.to_dict(), resume, dataclass_defaults(SearchConfig))
        self.weights, self.arch_data = self._open_data()
        place = place_run(config.device, config.deterministic, config.channels_last)
        self.device, self.dist, self.memory_format = place.device, place.dist, place.memory_format
        self.progress = self.progress and self.dist.is_main
        self.net = self._build_supernet()
        self.precision = resolve_precision(config.precision, self.device)
        self._check_memory()
        shard = Shard(self.dist.rank, self.dist.world_size)
        # In-memory images are prepared once, on the search's device; batches drawn there.
        self.weight_batches, self.arch_batches = (
            Batches(
                part, config.batch_size, shard=shard, workers=config.workers, device=self.device
            )
            for part in (self.weights, self.arch_data)
        )
        self.weight_opt, self.arch_opt = self._build_optimizers()
        self.weight_scaler, self.arch_scaler = self.precision.scaler(), self.precision.scaler()
        self.sampler = torch.Generator().manual_seed(config.seed + 1)
        self.schedule = config.temperature()
        self.penalty = LatencyPenalty(config.target_ms, config.lambda_lat, config.latency_loss)
        self.epoch = 0
        self.current: Architecture | None = None  # the latest derived architecture
        self.history: list[dict[str, Any]] = []
        if resume:
            self._load_checkpoint()
        # Written only once everything above has succeeded: a search that could not start
        # leaves no run directory behind to block the next attempt.
        if self.dist.is_main:
            self.rundir.write_config(self.config.to_dict())

    # -- set-up -------------------------------------------------------------------------------
    def _open_data(self):
        """The weight-training and architecture splits, each able to fill one batch."""
        c = self.config
        weights, arch_data = split_for_search(
            c.data,
            image_size=self.space.input_size,
            channels=c.in_channels or self.space.input_channels,
            arch_fraction=c.arch_fraction,
            seed=c.seed,
            limit=c.limit,
            root=c.data_root,
        )
        if min(len(weights), len(arch_data)) < c.batch_size:
            raise TfnasError(
                f"the search split has {len(weights)} weight-training and "
                f"{len(arch_data)} architecture images, and each part needs at least one "
                f"batch of {c.batch_size}; use more data or a smaller --batch-size."
            )
        return weights, arch_data

    def _build_supernet(self) -> Supernet:
        c = self.config
        torch.manual_seed(c.seed)
        net = Supernet(
            self.space,
            self.weights.num_classes,
            c.in_channels,
            depth_mode=c.depth,
            op_weights=c.op_weights,
        )
        return net.to(self.device).to(memory_format=self.memory_format)

    def _check_memory(self) -> None:
        """Refuse a batch size that will not fit in memory, before the run starts
        (:mod:`tfnas.memory`); under torchrun each process checks its own device."""
        estimate = estimate_search_memory(
            self.space,
            self.config.batch_size,
            self.config.in_channels,
            net=self.net,
            device=self.device,
            autocast=self.precision.autocast,
            memory_format=self.memory_format,
        )
        warning = check_search_memory(estimate, self.space.name, self.device)
        if warning and self.dist.is_main:
            print(warning, file=sys.stderr)

    def _build_optimizers(self) -> tuple[torch.optim.SGD, torch.optim.Adam]:
        """SGD for the weights, Adam for the architecture at the rate the search's number of
        architecture steps calls for (:meth:`SearchConfig.resolved_arch_lr`)."""
        c = self.config
        steps = len(self.weight_batches.epoch(0))
        searching = c.epochs - c.resolved_warmup()
        self.arch_lr = c.resolved_arch_lr(searching * (steps // c.arch_every))
        weight_opt = torch.optim.SGD(
            self.net.weight_parameters(),
            lr=c.weight_lr,
            momentum=c.weight_momentum,
            weight_decay=c.weight_decay,
        )
        arch_opt = torch.optim.Adam(
            self.net.arch_parameters(),
            lr=self.arch_lr,
            betas=c.arch_betas,
            weight_decay=c.arch_weight_decay,
        )
        return weight_opt, arch_opt

    # -- run directory ------------------------------------------------------------------------
    def _on_device(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(self.device, memory_format=self.memory_format)

    def _save_checkpoint(self) -> None:
        state = {
            "epoch": self.epoch,
            "net": self.net.state_dict(),
            "weight_opt": self.weight_opt.state_dict(),
            "arch_opt": self.arch_opt.state_dict(),
            "sampler": self.sampler.get_state(),
            **rng_state(self.device),
            "current": json.dumps(self.current.to_dict()) if self.current else "",
        }
        if self.precision.scales_loss:
            state["weight_scaler"] = self.weight_scaler.state_dict()
            state["arch_scaler"] = self.arch_scaler.state_dict()
        self.rundir.save(state, self.history)

    def _load_checkpoint(self) -> None:
        loaded = self.rundir.load(self.device)
        if loaded is None:
            return
        state, self.history = loaded
        self.net.load_state_dict(state["net"])
        self.weight_opt.load_state_dict(state["weight_opt"])
        self.arch_opt.load_state_dict(state["arch_opt"])
        self.sampler.set_state(state["sampler"].cpu())
        restore_rng(state, self.device)
        if self.precision.scales_loss and "weight_scaler" in state:
            self.weight_scaler.load_state_dict(state["weight_scaler"])
            self.arch_scaler.load_state_dict(state["arch_scaler"])
        self.epoch = int(state["epoch"])
        if state.get("current"):
            self.current = architecture_from_dict(json.loads(state["current"]))
        log.info("resuming %s at epoch %d", self.run_dir, self.epoch + 1)

    # -- the loop -----------------------------------------------------------------------------
    def _seed(self, salt: int) -> int:
        return self.config.seed * 1_000_003 + salt

    def _weight_lr(self, epoch: float) -> float:
        c = self.config
        return cosine_lr(c.weight_lr, epoch, c.epochs, c.weight_lr_warmup_epochs)

    def _arch_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        cycle = 0
        while True:
            for images, labels in self.arch_batches.epoch(
                self._seed(2 * (epoch * 1000 + cycle) + 1)
            ):
                yield self._on_device(images), labels.to(self.device, non_blocking=True)
            cycle += 1

    @property
    def tau(self) -> float:
        """The Gumbel temperature of the current epoch."""
        return self.schedule.at(self.epoch)

    def run(self) -> SearchResult:
        c = self.config
        warmup = c.resolved_warmup()
        while self.epoch < c.epochs:
            epoch = self.epoch
            row = self._train_epoch(epoch, searching=epoch >= warmup)
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
        """One epoch of weight steps (an architecture step every ``arch_every``-th once
        searching). Statistics stay on the device until the epoch's end."""
        c = self.config
        net = self.net
        loader = self.weight_batches.epoch(self._seed(2 * epoch))
        arch_batches = self._arch_batches(epoch)
        tau = self.schedule.at(epoch)
        strategy = c.sampling if searching else "gumbel"
        # the weight steps sample paths from a host copy of the architecture, refreshed
        # after every architecture step: no step waits for the device
        host = net.host_state()
        weight_stats, arch_stats = StepStats(), ArchStepStats()
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
            images, labels = self._on_device(images), labels.to(self.device, non_blocking=True)
            for group in self.weight_opt.param_groups:
                group["lr"] = self._weight_lr(epoch + step / steps)
            paths = sample_paths(host.alphas, strategy, self.sampler)
            weight_stats.add(
                weight_step(
                    net,
                    self.weight_opt,
                    images,
                    labels,
                    paths,
                    c.grad_clip,
                    all_reduce_mean,
                    host.depth_weights,
                    self.precision,
                    self.weight_scaler,
                )
            )
            if searching and (step + 1) % c.arch_every == 0:
                arch_images, arch_labels = next(arch_batches)
                arch_stats.add(
                    arch_step(
                        net,
                        self.arch_opt,
                        arch_images,
                        arch_labels,
                        self.table,
                        self.penalty,
                        tau,
                        self.sampler,
                        c.grad_clip,
                        all_reduce_mean,
                        self.precision,
                        self.arch_scaler,
                    )
                )
                host = net.host_state()
            if bar is not None:
                bar.update(1)
            if self.on_step is not None:
                self.on_step(epoch, step)
        if bar is not None:
            bar.close()
        w, a = weight_stats.as_floats(), arch_stats.as_floats()
        totals = all_sum(list(w.values()) + list(a.values()), self.device)
        w = dict(zip(w, totals[: len(w)], strict=True))
        a = dict(zip(a, totals[len(w) :], strict=True))
        seconds = time.perf_counter() - started
        row: dict[str, Any] = {
            "epoch": epoch,
            "phase": "search" if searching else "warmup",
            "lr": self._weight_lr(epoch),
            "arch_lr": self.arch_lr,
            "weight_loss": w["loss"] / max(1, w["seen"]),
            "weight_acc": w["correct"] / max(1, w["seen"]),
            "seconds": seconds,
            "images_per_second": (w["seen"] + a["seen"]) / seconds,
        }
        if a["steps"]:
            seen = max(1, a["seen"])
            row.update(
                arch_loss=a["loss"] / seen,
                arch_ce=a["ce"] / seen,
                latency_loss=a["latency_loss"] / a["steps"],
                arch_acc=a["correct"] / seen,
            )
        return row

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
            arch = elastic_scale(
                self.space, arch, self.table, c.target_ms, on_knots=c.width_grid == "knots"
            ).arch
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
        entropies = [
            [float(-(p * p.clamp_min(1e-12).log()).sum()) for p in stage] for stage in probs
        ]
        flat = [
            (e, p)
            for es, ps in zip(entropies, probs, strict=True)
            for e, p in zip(es, ps, strict=True)
            if len(p) > 1
        ] or [(0.0, torch.ones(2))]
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
            "op_entropy": entropies,
            # 1.0: every block still uniform over its ops; 0.0: every block decided
            "op_entropy_ratio": sum(e / math.log(len(p)) for e, p in flat) / len(flat),
            "top_op_prob": sum(float(p.max()) for _, p in flat) / len(flat),
            "widths": [[choice.width for choice in stage] for stage in arch.stages],
        }
        # scored by the first process alone, on the whole architecture split's first batches
        row["derived_arch_split_acc"] = self._derived_accuracy() if self.dist.is_main else None
        return row

    @torch.no_grad()
    def _derived_accuracy(self) -> float:
        """Accuracy of the derived network's path on (part of) the architecture split, with
        batch statistics (:func:`~tfnas.search.steps.batch_stat_accuracy`)."""
        net = self.net
        path, depth_weights = net.derived_path()
        batches = self.arch_batches.epoch(self._seed(-1), everywhere=True)
        on_device = (
            (self._on_device(images), labels.to(self.device))
            for images, labels in itertools.islice(batches, self.config.eval_batches)
        )
        return batch_stat_accuracy(
            net, lambda x: net(x, path=path, depth_weights=depth_weights), on_device
        )

    def _report(self, row: dict[str, Any]) -> None:
        c = self.config
        acc = f", arch-split acc {row['derived_arch_split_acc']:.3f}"
        print(
            f"epoch {row['epoch'] + 1}/{c.epochs} ({row['phase']}): loss {row['weight_loss']:.3f}, "
            f"path acc {row['weight_acc']:.3f}{acc}, op entropy {row['op_entropy_ratio']:.2f} "
            f"of uniform, tau {row['tau']:.2f}, expected "
            f"{row['expected_latency_ms']:.3f} ms, derived {row['derived_latency_ms']:.3f} ms "
            f"(target {c.target_ms:g}), {row['seconds']:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def _path_scorer(self) -> PathScorer:
        """Scores architectures as supernet paths: batch norms re-estimated on weight-split
        batches, top-1 on the first ``eval_batches`` architecture-split batches (the same
        batches in every process)."""
        c = self.config
        bn = self.weight_batches.epoch(self._seed(-3), everywhere=True)
        held_out = self.arch_batches.epoch(self._seed(-1), everywhere=True)
        return PathScorer(
            self.net,
            list(itertools.islice(bn, c.score_bn_batches)),
            list(itertools.islice(held_out, c.eval_batches)),
            prepare=self._on_device,
        )

    def _select_and_place(self) -> Architecture:
        """The returned architecture: the derived one, or the best-scored candidate after
        scaling (``select_candidates``); and where it stands among random networks at the
        target (``standing_randoms``). Both are kept in the last metrics row, so a finished
        run resumed reads them back instead of scoring again."""
        c = self.config
        last = self.history[-1]
        if "selected_arch" in last:
            return architecture_from_dict(last["selected_arch"])
        arch = self.current
        selecting = c.select_candidates > 0 and c.width == "elastic"
        if not selecting and not c.standing_randoms:
            return arch
        scorer = self._path_scorer()
        if selecting:
            drawn = draw_candidates(
                self.net,
                self.table,
                c.target_ms,
                c.select_candidates,
                self._seed(-5),
                on_knots=c.width_grid == "knots",
            )
            selection = select_after_scaling(scorer, arch, drawn)
            arch = selection.chosen.arch
            last["selection"] = selection.to_dict()
        if c.standing_randoms:
            references = random_references(
                self.space, self.table, c.target_ms, c.standing_randoms, self._seed(-7)
            )
            last["standing"] = standing(scorer, arch, references, c.target_ms)
        last["selected_arch"] = arch.to_dict()
        if self.dist.is_main:
            self.rundir.write_metrics(self.history)
        return arch

    def _standing_meta(self) -> dict[str, Any]:
        last = self.history[-1]
        meta: dict[str, Any] = {}
        if "selection" in last:
            meta["selected"] = last["selection"]["chosen"]
        if "standing" in last:
            meta["supernet_standing"] = {k: last["standing"][k] for k in ("beats", "ties", "of")}
        return meta

    def _finish(self) -> SearchResult:
        arch = self._select_and_place()
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
                        "latency_loss",
                        "data",
                        "limit",
                        "select_candidates",
                    )
                },
            }
            | self._standing_meta(),
        )
        arch_text = json.dumps(arch.to_dict(), sort_keys=True)
        check_agreement("architecture", text_digest(arch_text), self.dist, self.device)
        if self.dist.is_main:
            arch.save(self.run_dir / ARCH_FILE)
        return SearchResult(arch, predicted, self.run_dir, self.history, self.dist.is_main)


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


def search(
    config: SearchConfig, run_dir: str | Path, resume: bool = False, **kwargs: Any
) -> SearchResult:
    """Run (or resume) a search and write ``run_dir/arch.json``."""
    return run_to_end(lambda: Searcher(config, run_dir, resume, **kwargs))
