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
from ..engine import GeneratorState, RunEngine, Stateful, run_to_end
from ..errors import TargetMissed, TfnasError, named
from ..io import read_json
from ..latency.table import LatencyTable, check_target, load_table
from ..memory import check_search_memory, estimate_search_memory
from ..nn.supernet import Supernet
from ..rundir import (
    ARCH_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    SEARCH_CHECKPOINT,
    file_digest,
    refuse_other_settings,
)
from ..schedules import cosine_lr
from ..space import SearchSpace, load_space
from .config import SearchConfig
from .derive import derive_for_target, distribution_row, epoch_line
from .path_score import PathScorer
from .sampling import sample_paths
from .selection import (
    draw_candidates,
    random_references,
    select_after_scaling,
    standing,
    standing_sentence,
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

    def miss(self, target_ms: float) -> float:
        """How far the predicted latency misses ``target_ms``: a signed fraction of it."""
        return (self.predicted_ms - target_ms) / target_ms

    def require_target_met(self, config: SearchConfig) -> None:
        """Raise :class:`TargetMissed` where the network misses the target by more than the
        search's tolerance: with elastic widths, every architecture the search could reach
        from what it learned lies farther off (the target falls in a gap between depths or
        ops)."""
        target_ms, tolerance = config.target_ms, config.target_tolerance
        elastic = config.width == "elastic"
        miss = self.miss(target_ms)
        if abs(miss) <= tolerance:
            return
        why = (
            "no architecture near what the search learned reaches it (a block or an op more or "
            "less jumps past it)"
            if elastic
            else "with fixed widths nothing takes up the difference"
        )
        raise TargetMissed(
            f"the searched network misses the target {target_ms:g} ms by {miss:+.1%} "
            f"(predicted {self.predicted_ms:.4f} ms, {named('target_tolerance')} {tolerance:g}): "
            f"{why}; {self.run_dir / ARCH_FILE} is written: choose a target nearer "
            f"{self.predicted_ms:.4g} ms, or allow the miss with a larger "
            f"{named('target_tolerance')}."
        )

    def report(self, target_ms: float) -> str:
        """What the search wrote and how close it lands, for a terminal."""
        error = (self.predicted_ms - target_ms) / target_ms * 100
        lines = [
            f"wrote {self.run_dir / ARCH_FILE}: {self.arch.describe()}",
            f"target {target_ms:g} ms, predicted {self.predicted_ms:.4f} ms ({error:+.3f}%), "
            f"depths {'-'.join(map(str, self.arch.depths))}; metrics in "
            f"{self.run_dir / METRICS_FILE}",
        ]
        if self.standing is not None:
            lines.append(standing_sentence(self.standing))
        return "\n".join(lines)


class Searcher(RunEngine):
    """One search run in ``run_dir``; call :meth:`run`. ``space`` and ``table`` may be given
    loaded (the pipeline loads each file once); else they are read from the config's paths."""

    kind = "search"
    checkpoint_file = SEARCH_CHECKPOINT

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
        self.space = space or load_space(config.space)
        self.table = table or load_table(config.lut, self.space)
        self.table.check_space(self.space)
        self.table.check_entries(self.space, config.lut)
        self.range_ms = check_target(self.space, self.table, config.target_ms)
        super().__init__(config, run_dir, resume, progress)
        self.on_step = on_step
        self.weights, self.arch_data = split_for_search(
            config.data,
            image_size=self.space.input_size,
            channels=config.in_channels or self.space.input_channels,
            arch_fraction=config.arch_fraction,
            seed=config.seed,
            limit=config.limit,
            root=config.data_root,
            batch_size=config.batch_size,
        )
        torch.manual_seed(config.seed)
        self.net = Supernet(
            self.space, self.weights.num_classes, config.in_channels, config.depth,
            config.op_weights,
        ).to(self.device).to(memory_format=self.memory_format)  # fmt: skip
        self._check_memory()
        # In-memory images are prepared once, on the search's device; batches drawn there.
        self.weight_batches = self.batches(self.weights, config.batch_size)
        self.arch_batches = self.batches(self.arch_data, config.batch_size)
        self.steps_per_epoch = len(self.weight_batches.epoch(0))
        searching = config.epochs - config.resolved_warmup()
        self.arch_lr = config.resolved_arch_lr(
            searching * (self.steps_per_epoch // config.arch_every)
        )
        self.weight_opt = torch.optim.SGD(
            self.net.weight_parameters(),
            lr=config.weight_lr,
            momentum=config.weight_momentum,
            weight_decay=config.weight_decay,
        )
        self.arch_opt = torch.optim.Adam(
            self.net.arch_parameters(),
            lr=self.arch_lr,
            betas=config.arch_betas,
            weight_decay=config.arch_weight_decay,
        )
        self.weight_scaler, self.arch_scaler = self.precision.scaler(), self.precision.scaler()
        self.sampler = torch.Generator().manual_seed(config.seed + 1)
        self.schedule = config.temperature()
        self.penalty = LatencyPenalty(config.target_ms, config.lambda_lat, config.latency_loss)
        self.current: Architecture | None = None  # the latest derived architecture
        self.begin()

    def inputs(self) -> dict[str, tuple[str, str]]:
        return {
            "latency table": (self.config.lut, file_digest(self.config.lut)),
            "search space": (self.config.space, self.space.hash),
        }

    def _check_memory(self) -> None:
        """Refuse a batch size that will not fit in memory, before the run starts
        (:mod:`tfnas.memory`); under torchrun each process checks its own device."""
        c = self.config
        estimate = estimate_search_memory(
            self.space, c.batch_size, c.in_channels, net=self.net, device=self.device,
            autocast=self.precision.autocast, memory_format=self.memory_format,
        )  # fmt: skip
        warning = check_search_memory(estimate, self.space.name, self.device)
        if warning and self.dist.is_main:
            print(warning, file=sys.stderr)

    # -- the checkpoint -----------------------------------------------------------------------
    def stateful(self) -> dict[str, Stateful]:
        return {
            "net": self.net,
            "weight_opt": self.weight_opt,
            "arch_opt": self.arch_opt,
            "weight_scaler": self.weight_scaler,
            "arch_scaler": self.arch_scaler,
            "sampler": GeneratorState(self.sampler),
        }

    def extra_state(self) -> dict[str, Any]:
        return {"current": json.dumps(self.current.to_dict()) if self.current else ""}

    def restore_extra(self, state: dict[str, Any]) -> None:
        if state.get("current"):
            self.current = architecture_from_dict(json.loads(state["current"]))
        log.info("resuming %s at epoch %d", self.run_dir, int(state["epoch"]) + 1)

    # -- the loop -----------------------------------------------------------------------------
    def _weight_lr(self, epoch: float) -> float:
        c = self.config
        unit = 1 / self.steps_per_epoch
        return cosine_lr(c.weight_lr, epoch, c.epochs, c.weight_lr_warmup_epochs, unit)

    def _arch_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for cycle in itertools.count():
            for batch in self.arch_batches.epoch(self.seed(2 * (epoch * 1000 + cycle) + 1)):
                yield self.on_device(*batch)

    @property
    def tau(self) -> float:
        """The Gumbel temperature of the current epoch."""
        return self.schedule.at(self.epoch)

    def run(self) -> SearchResult:
        c = self.config
        while self.epoch < c.epochs:
            searching = self.epoch >= c.resolved_warmup()
            row = self._train_epoch(self.epoch, searching) | self._end_of_epoch(searching)
            if not same_everywhere(row["arch"], self.device):
                raise RuntimeError("processes derived different architectures; they must agree")
            self.history.append(row)
            self.epoch += 1
            if self.dist.is_main:
                self.save_checkpoint()
                print(epoch_line(row, c.epochs), file=sys.stderr, flush=True)
            barrier()
        return self._finish()

    def _train_epoch(self, epoch: int, searching: bool) -> dict[str, Any]:
        """One epoch of weight steps (an architecture step every ``arch_every``-th once
        searching). Statistics stay on the device until the epoch's end."""
        c = self.config
        net = self.net
        loader = self.weight_batches.epoch(self.seed(2 * epoch))
        arch_batches = self._arch_batches(epoch)
        tau = self.schedule.at(epoch)
        strategy = c.sampling if searching else "gumbel"
        # the weight steps sample paths from a host copy of the architecture, refreshed
        # after every architecture step: no step waits for the device
        host = net.host_state()
        weight_stats, arch_stats = StepStats(), ArchStepStats()
        started = time.perf_counter()
        for step, batch in enumerate(self.steps(loader, c.epochs)):
            images, labels = self.on_device(*batch)
            for group in self.weight_opt.param_groups:
                group["lr"] = self._weight_lr(epoch + step / self.steps_per_epoch)
            paths = sample_paths(host.alphas, strategy, self.sampler)
            weight_stats.add(
                weight_step(
                    net, self.weight_opt, images, labels, paths, c.grad_clip, all_reduce_mean,
                    host.depth_weights, self.precision, self.weight_scaler,
                )
            )  # fmt: skip
            if searching and (step + 1) % c.arch_every == 0:
                arch_images, arch_labels = next(arch_batches)
                arch_stats.add(
                    arch_step(
                        net, self.arch_opt, arch_images, arch_labels, self.table, self.penalty,
                        tau, self.sampler, c.grad_clip, all_reduce_mean, self.precision,
                        self.arch_scaler,
                    )
                )  # fmt: skip
                host = net.host_state()
            if self.on_step is not None:
                self.on_step(epoch, step)
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

    def derive_for_target(self) -> tuple[Architecture, list[list[int]], list[str]]:
        """:func:`~tfnas.search.derive.derive_for_target` of this search's supernet."""
        return derive_for_target(self.net, self.space, self.table, self.config)

    @torch.no_grad()
    def _end_of_epoch(self, searching: bool) -> dict[str, Any]:
        arch, _ = self.net.derive()
        row: dict[str, Any] = {
            "tau": self.tau,
            "argmax_latency_ms": self.table.predict(self.space, arch),
            "projection_changes": [],
            "target_ms": self.config.target_ms,
        }
        if searching:
            arch, _, row["projection_changes"] = self.derive_for_target()
            self.current = arch
        row |= distribution_row(self.net, self.space, self.table, arch)
        # scored by the first process alone, on the whole architecture split's first batches
        row["derived_arch_split_acc"] = self._derived_accuracy() if self.dist.is_main else None
        return row

    @torch.no_grad()
    def _derived_accuracy(self) -> float:
        """Accuracy of the derived network's path on (part of) the architecture split, with
        batch statistics (:func:`~tfnas.search.steps.batch_stat_accuracy`)."""
        net = self.net
        path, depth_weights = net.derived_path()
        batches = self.arch_batches.epoch(self.seed(-1), everywhere=True)
        on_device = (
            self.on_device(*b) for b in itertools.islice(batches, self.config.eval_batches)
        )
        return batch_stat_accuracy(
            net, lambda x: net(x, path=path, depth_weights=depth_weights), on_device
        )

    def _path_scorer(self) -> PathScorer:
        """Scores architectures as supernet paths: batch norms re-estimated on weight-split
        batches, top-1 on the first ``eval_batches`` architecture-split batches (the same
        batches in every process)."""
        c = self.config
        bn = self.weight_batches.epoch(self.seed(-3), everywhere=True)
        held_out = self.arch_batches.epoch(self.seed(-1), everywhere=True)
        return PathScorer(
            self.net,
            list(itertools.islice(bn, c.score_bn_batches)),
            list(itertools.islice(held_out, c.eval_batches)),
            prepare=self.prepare,
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
            on_knots = c.width_grid == "knots"
            drawn = draw_candidates(
                self.net, self.table, c.target_ms, c.select_candidates, self.seed(-5), on_knots
            )
            selection = select_after_scaling(scorer, arch, drawn)
            arch = selection.chosen.arch
            last["selection"] = selection.to_dict()
        if c.standing_randoms:
            references = random_references(
                self.space, self.table, c.target_ms, c.standing_randoms, self.seed(-7)
            )
            last["standing"] = standing(scorer, arch, references, c.target_ms)
        last["selected_arch"] = arch.to_dict()
        if self.dist.is_main:
            self.rundir.write_metrics(self.history)
        return arch

    def _finish(self) -> SearchResult:
        arch = self._select_and_place()
        predicted = self.table.predict(self.space, arch)
        c = self.config
        last = self.history[-1]
        meta: dict[str, Any] = {
            "origin": "tfnas search",
            "target_ms": c.target_ms,
            "predicted_ms": predicted,
            "lut": c.lut,
            "feasible_range_ms": list(self.range_ms),
            "search": c.summary(),
        }
        if "selection" in last:
            meta["selected"] = last["selection"]["chosen"]
        if "standing" in last:
            meta["supernet_standing"] = {k: last["standing"][k] for k in ("beats", "ties", "of")}
        arch = Architecture(arch.space_name, arch.space_hash, arch.stages, meta)
        arch_text = json.dumps(arch.to_dict(), sort_keys=True)
        check_agreement("architecture", text_digest(arch_text), self.dist, self.device)
        if self.dist.is_main:
            arch.save(self.run_dir / ARCH_FILE)
        return SearchResult(arch, predicted, self.run_dir, self.history, self.dist.is_main)


def search(
    config: SearchConfig, run_dir: str | Path, resume: bool = False, **kwargs: Any
) -> SearchResult:
    """Run (or resume) a search and write ``run_dir/arch.json``."""
    return run_to_end(lambda: Searcher(config, run_dir, resume, **kwargs))


def saved_search_config(run_dir: str | Path, given: dict[str, Any] | None = None) -> SearchConfig:
    """The settings of the search in ``run_dir``, to resume it with; ``given`` settings
    that would change them are refused, naming them (``out``: where the run is)."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise TfnasError(f"{run_dir}: holds no search to resume (no {CONFIG_FILE}).")
    saved = read_json(path, "search configuration", TfnasError)
    try:
        config = SearchConfig.from_dict(saved)
    except (TypeError, KeyError, AttributeError) as exc:
        raise TfnasError(f"{path}: is not a tfnas search configuration ({exc}).") from None
    given = dict(given or {})
    if "out" in given:
        given["out"] = str(Path(given["out"]).resolve())
    refuse_other_settings(run_dir, config.to_dict() | {"out": str(run_dir.resolve())}, given)
    return config
