"""Retraining a searched architecture, and its checkpoints.

The paper's recipe (docs/method.md section 7) with defaults scaled to the dataset: SGD with
momentum, a linear warm-up then a cosine schedule, label smoothing, dropout before the
classifier, drop-connect scaled by block index, weight decay, gradient clipping; mixed
precision on CUDA; an optional exponential moving average (EMA) of the weights. Every epoch
appends to ``metrics.jsonl`` (and TensorBoard) and writes ``last.pt`` (everything a resume
needs) and, when the test accuracy improves, ``best.pt`` (weights and architecture); all
are plain tensors and strings, loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .arch import architecture_from_dict, load_architecture
from .data import open_dataset, seeded_subset
from .distributed import all_sum, barrier, broadcast_buffers, check_agreement, state_digest
from .engine import RunEngine, Stateful, optimizer_step, run_to_end
from .errors import TfnasError
from .evaluation import evaluate
from .loader import Batches
from .nn.batchnorm import recalibrate_batchnorm
from .nn.network import Network
from .rundir import BEST_WEIGHTS, TRAIN_CHECKPOINT, file_digest, save_state
from .schedules import cosine_lr
from .space import load_space
from .train_config import TrainConfig


@dataclass
class TrainResult:
    """What a training run ended with."""

    best_top1: float  # the best epoch's test top-1 (of the EMA weights when kept)
    epochs: int  # epochs trained, those of earlier runs of a resumed one included
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl's rows
    main_process: bool = True  # False in the other processes under torchrun

    @property
    def last(self) -> dict[str, Any]:
        """The last epoch's metrics (empty before the first)."""
        return self.history[-1] if self.history else {}


class Trainer(RunEngine):
    """One training run in ``run_dir``; call :meth:`run`."""

    kind = "training run"
    checkpoint_file = TRAIN_CHECKPOINT

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        resume: bool = False,
        progress: bool | None = None,
    ) -> None:
        config.validate()
        space = load_space(config.space) if config.space else None
        self.arch, self.space = load_architecture(config.arch, space)
        super().__init__(config, run_dir, resume, progress)
        channels = config.in_channels or self.space.input_channels
        opened = {
            split: open_dataset(
                config.data, split, image_size=self.space.input_size, channels=channels,
                root=config.data_root,
            )
            for split in ("train", "test")
        }  # fmt: skip
        self.train_data = seeded_subset(opened["train"], config.limit, config.seed)
        self.test_data = opened["test"]
        torch.manual_seed(config.seed)
        self.net = Network(self.space, self.arch, self.train_data.num_classes, channels)
        self.net.set_regularisation(config.dropout, config.drop_connect)
        self.net.to(self.device).to(memory_format=self.memory_format)
        self.model: torch.nn.Module = self.net
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.dist.local_rank] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.net, device_ids=ids)
            # every process augments and drops out differently, from the same seed
            torch.manual_seed(config.seed + self.dist.rank)
        self.optimizer = torch.optim.SGD(
            self.net.parameters(),
            lr=config.resolved_lr(),
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        # each process its share of every epoch's seeded order, whole epochs (last batch kept)
        self.train_batches = self.batches(self.train_data, config.batch_size, drop_last=False)
        self.steps_per_epoch = len(self.train_batches.epoch(0))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.scaler = self.precision.scaler()
        self.ema = None
        if config.ema_decay is not None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(
                self.net, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True
            )
        self.best_top1 = -1.0
        self.begin()

    def inputs(self) -> dict[str, tuple[str, str]]:
        return {
            "architecture": (self.config.arch, file_digest(self.config.arch)),
            "search space": (self.config.space or self.space.name, self.space.hash),
        }

    def _lr_factor(self, step: int) -> float:
        steps, c = self.steps_per_epoch, self.config
        return cosine_lr(1.0, step, c.epochs * steps, c.resolved_warmup() * steps)

    # -- checkpoints ----------------------------------------------------------------------
    def stateful(self) -> dict[str, Stateful]:
        state: dict[str, Stateful] = {
            "model": self.net,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "scaler": self.scaler,
        }
        if self.ema is not None:
            state["ema"] = self.ema
        return state

    def extra_state(self) -> dict[str, Any]:
        return {"arch": json.dumps(self.arch.to_dict()), "best_top1": self.best_top1}

    def restore_extra(self, state: dict[str, Any]) -> None:
        if architecture_from_dict(json.loads(state["arch"])) != self.arch:
            raise TfnasError(f"{self.run_dir}: was trained for another architecture.")
        self.best_top1 = float(state["best_top1"])

    def _save(self, top1: float) -> None:
        if top1 >= self.best_top1:
            self.best_top1 = top1
            model = self.ema.module if self.ema is not None else self.net
            best = {
                "model": model.state_dict(),
                "arch": json.dumps(self.arch.to_dict()),
                "epoch": self.epoch,
                "top1": top1,
            }
            save_state(best, self.run_dir / BEST_WEIGHTS)
        self.save_checkpoint()

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> TrainResult:
        """Train the remaining epochs. Under torchrun the first process evaluates, writes
        checkpoints and metrics and reports; the others wait for it after every epoch."""
        c = self.config
        main = self.dist.is_main
        writer = _tensorboard(self.run_dir) if main else None
        test_loader = Batches(
            self.test_data, 256, shuffle=False, drop_last=False, device=self.device
        ).epoch(0)
        while self.epoch < c.epochs:
            started = time.perf_counter()
            train = self._train_epoch(self.train_batches.epoch(self.seed(self.epoch)))
            self.epoch += 1
            if not main:
                barrier()
                continue
            row = {
                "epoch": self.epoch - 1,
                "lr": self.scheduler.get_last_lr()[0],
                **train,
                "bn_recalibrated_batches": self._recalibrate_batchnorm(),
            }
            test = evaluate(self.net, test_loader, self.device)
            row |= {f"test_{k}": test[k] for k in ("top1", "top5", "loss")}
            row["processes"] = self.dist.world_size
            if self.ema is not None:
                ema = evaluate(self.ema.module, test_loader, self.device)
                row |= {f"ema_{k}": ema[k] for k in ("top1", "top5", "loss")}
            row["seconds"] = time.perf_counter() - started
            self.history.append(row)
            self._save(row["ema_top1" if self.ema is not None else "test_top1"])
            if writer is not None:
                for key, value in row.items():
                    if key != "epoch" and isinstance(value, int | float):
                        writer.add_scalar(key, value, self.epoch)
                writer.flush()
            ema = f" (EMA {row['ema_top1']:.4f})" if self.ema is not None else ""
            print(
                f"epoch {self.epoch}/{c.epochs}: train loss {row['train_loss']:.3f}, acc "
                f"{row['train_acc']:.3f}; test top-1 {row['test_top1']:.4f}{ema}, "
                f"{row['seconds']:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            barrier()
        if writer is not None:
            writer.close()
        if self.dist.active:  # DDP keeps the parameters in step; show that they ended so
            broadcast_buffers(self.net)
            check_agreement("weights", state_digest(self.net), self.dist, self.device)
        return TrainResult(
            self.best_top1, self.epoch, self.run_dir, self.history, self.dist.is_main
        )

    def _recalibrate_batchnorm(self) -> int:
        """Re-estimate the batch-norm statistics (of the EMA too) on training batches, when
        the settings ask for it; returns the number of batches used."""
        batches = self.config.resolved_bn_batches(self.steps_per_epoch)
        if batches == 0:
            return 0
        used = 0
        for net in [self.net] + ([self.ema.module] if self.ema is not None else []):
            used = recalibrate_batchnorm(
                net,
                self.train_batches.epoch(self.seed(-1 - self.epoch)),
                batches,
                forward=lambda images, net=net: self._forward(net, images),
                prepare=self.prepare,
            )
        return used

    def _forward(self, net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return net(images)

    def _train_epoch(self, loader: Iterable) -> dict[str, float]:
        c = self.config
        self.net.train()
        # summed on the device and read once at the epoch's end: no step waits for the GPU
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        started = time.perf_counter()
        for batch in self.steps(loader, c.epochs):
            images, labels = self.on_device(*batch)
            with self.precision.autocast():
                logits = self.model(images)
                loss = F.cross_entropy(logits, labels, label_smoothing=c.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            optimizer_step(loss, self.net.parameters(), self.optimizer, self.scaler, c.grad_clip)
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.net)
            total_loss += loss.detach().float() * len(labels)
            correct += (logits.detach().argmax(1) == labels).sum()
            seen += len(labels)
        total_loss, correct, seen = all_sum([float(total_loss), int(correct), seen], self.device)
        return {
            "train_loss": total_loss / max(1, seen),
            "train_acc": correct / max(1, seen),
            "train_images": int(seen),
            "train_seconds": time.perf_counter() - started,  # the training steps alone
        }


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: metrics.jsonl still has everything
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def train(
    config: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool | None = None
) -> TrainResult:
    """Train ``config.arch`` and write checkpoints and metrics to ``run_dir``."""
    return run_to_end(lambda: Trainer(config, run_dir, resume, progress))
