"""Retraining a searched architecture, evaluating it, and its checkpoints.

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
import math
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from .arch import architecture_from_dict, load_architecture
from .data import open_dataset
from .distributed import (
    all_sum,
    barrier,
    broadcast_buffers,
    check_agreement,
    resolve_device,
    state_digest,
)
from .engine import place_run, restore_rng, rng_state, run_to_end
from .errors import TfnasError
from .loader import Batches, Shard
from .nn.batchnorm import recalibrate_batchnorm
from .nn.network import Network
from .options import option_name
from .precision import resolve_precision
from .rundir import BEST_WEIGHTS, TRAIN_CHECKPOINT, RunDir, dataclass_defaults, save_state
from .space import SearchSpace, load_space
from .train_config import TrainConfig


@torch.no_grad()
def evaluate(net: torch.nn.Module, loader: Iterable, device: torch.device) -> dict[str, float]:
    """Top-1, top-5 (or top-k for fewer classes) accuracy and mean cross-entropy."""
    was_training = net.training
    net.eval()
    sums = torch.zeros(3, device=device, dtype=torch.float64)  # loss, top-1, top-5 hits
    seen = 0
    for images, labels in loader:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        logits = net(images).float()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        sums += torch.stack(
            [
                F.cross_entropy(logits, labels, reduction="sum"),
                (top[:, 0] == labels).sum(),
                (top == labels[:, None]).any(dim=1).sum(),
            ]
        ).double()
        seen += len(labels)
    net.train(was_training)
    loss, correct1, correct5 = sums.tolist()  # one read, after the last batch
    seen = max(1, seen)
    return {"top1": correct1 / seen, "top5": correct5 / seen, "loss": loss / seen, "images": seen}


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


class Trainer:
    """One training run in ``run_dir``; call :meth:`run`."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        resume: bool = False,
        progress: bool | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.run_dir = Path(run_dir)
        self.progress = sys.stderr.isatty() if progress is None else progress
        space = load_space(config.space) if config.space else None
        self.arch, self.space = load_architecture(config.arch, space)
        self.rundir = RunDir(self.run_dir, "training run", TRAIN_CHECKPOINT)
        self.rundir.guard(
            asdict(config),
            resume,
            dataclass_defaults(TrainConfig),
            flags={f.name: f"--{option_name(f)}" for f in fields(TrainConfig)}
            | {"arch": "ARCH.json"},
        )
        place = place_run(config.device, config.deterministic, config.channels_last)
        self.device, self.dist, self.memory_format = place.device, place.dist, place.memory_format
        self.progress = self.progress and self.dist.is_main
        channels = config.in_channels or self.space.input_channels
        size = self.space.input_size
        self.train_data = open_dataset(
            config.data, "train", image_size=size, channels=channels, root=config.data_root
        )
        if config.limit is not None:
            order = torch.randperm(
                len(self.train_data), generator=torch.Generator().manual_seed(config.seed)
            )
            self.train_data.dataset = Subset(
                self.train_data.dataset, sorted(order[: config.limit].tolist())
            )
        self.test_data = open_dataset(
            config.data, "test", image_size=size, channels=channels, root=config.data_root
        )
        torch.manual_seed(config.seed)
        self.net = Network(self.space, self.arch, self.train_data.num_classes, channels)
        self.net.set_regularisation(config.dropout, config.drop_connect)
        self.net.to(self.device)
        self.net.to(memory_format=self.memory_format)
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
        self.train_batches = Batches(
            self.train_data,
            config.batch_size,
            drop_last=False,
            shard=Shard(self.dist.rank, self.dist.world_size),
            workers=config.workers,
            device=self.device,
        )
        self.steps_per_epoch = len(self.train_batches.epoch(0))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.precision = resolve_precision(config.precision, self.device)
        self.scaler = self.precision.scaler()
        self.ema = None
        if config.ema_decay is not None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(
                self.net, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True
            )
        self.epoch = 0
        self.best_top1 = -1.0
        self.history: list[dict[str, Any]] = []
        if resume:
            self._load()
        if self.dist.is_main:
            self.rundir.write_config(asdict(config))

    def _lr_factor(self, step: int) -> float:
        warmup = self.config.resolved_warmup() * self.steps_per_epoch
        total = self.config.epochs * self.steps_per_epoch
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    # -- checkpoints ----------------------------------------------------------------------
    def _arch_json(self) -> str:
        return json.dumps(self.arch.to_dict())

    def _save(self, top1: float) -> None:
        state = {
            "model": self.net.state_dict(),
            "arch": self._arch_json(),
            "epoch": self.epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            **rng_state(self.device),
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if top1 >= self.best_top1:
            self.best_top1 = top1
            model = self.ema.module if self.ema is not None else self.net
            best = {
                "model": model.state_dict(),
                "arch": self._arch_json(),
                "epoch": self.epoch,
                "top1": top1,
            }
            save_state(best, self.run_dir / BEST_WEIGHTS)
        state["best_top1"] = self.best_top1
        self.rundir.save(state, self.history)

    def _load(self) -> None:
        loaded = self.rundir.load(self.device)
        if loaded is None:
            return
        state, self.history = loaded
        saved_arch = architecture_from_dict(json.loads(state["arch"]))
        if saved_arch != self.arch:
            raise TfnasError(f"{self.run_dir}: was trained for another architecture.")
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng(state, self.device)
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        self.epoch = int(state["epoch"])
        self.best_top1 = float(state["best_top1"])

    # -- the loop -------------------------------------------------------------------------
    def _train_loader(self) -> Iterable:
        return self.train_batches.epoch(self.config.seed * 1_000_003 + self.epoch)

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
            train = self._train_epoch(self._train_loader())
            self.epoch += 1
            if not main:
                barrier()
                continue
            recalibrated = self._recalibrate_batchnorm()
            test = evaluate(self.net, test_loader, self.device)
            row = {
                "epoch": self.epoch - 1,
                "lr": self.scheduler.get_last_lr()[0],
                **train,
                "bn_recalibrated_batches": recalibrated,
                "test_top1": test["top1"],
                "test_top5": test["top5"],
                "test_loss": test["loss"],
                "processes": self.dist.world_size,
            }
            score = test["top1"]
            if self.ema is not None:
                ema = evaluate(self.ema.module, test_loader, self.device)
                row.update(ema_top1=ema["top1"], ema_top5=ema["top5"], ema_loss=ema["loss"])
                score = ema["top1"]
            row["seconds"] = time.perf_counter() - started
            self.history.append(row)
            self._save(score)
            if writer is not None:
                for key, value in row.items():
                    if key != "epoch" and isinstance(value, int | float):
                        writer.add_scalar(key, value, self.epoch)
                writer.flush()
            print(
                f"epoch {self.epoch}/{c.epochs}: train loss {row['train_loss']:.3f}, acc "
                f"{row['train_acc']:.3f}; test top-1 {row['test_top1']:.4f}"
                + (f" (EMA {row['ema_top1']:.4f})" if self.ema is not None else "")
                + f", {row['seconds']:.0f} s",
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
                self.train_batches.epoch(self.config.seed * 1_000_003 - 1 - self.epoch),
                batches,
                forward=lambda images, net=net: self._forward(net, images),
                prepare=lambda images: images.to(
                    self.device, memory_format=self.memory_format, non_blocking=True
                ),
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
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=len(loader),
                desc=f"epoch {self.epoch + 1}/{c.epochs}",
                leave=False,
                unit="step",
                dynamic_ncols=True,
            )
        for images, labels in loader:
            images = images.to(self.device, memory_format=self.memory_format, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            with self.precision.autocast():
                logits = self.model(images)
                loss = F.cross_entropy(logits, labels, label_smoothing=c.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.net)
            total_loss += loss.detach().float() * len(labels)
            correct += (logits.detach().argmax(1) == labels).sum()
            seen += len(labels)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
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


def trained_network(
    arch_path: str | Path, weights_path: str | Path, space: SearchSpace | str | None = None
) -> tuple[Network, SearchSpace]:
    """The network of an architecture file with trained weights loaded; the number of
    classes and input channels are read off the weights."""
    arch, space = load_architecture(arch_path, space)
    path = Path(weights_path)
    if not path.is_file():
        raise TfnasError(f"{path}: no such weights file.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise TfnasError(f"{path}: is not a tfnas weights file ({type(exc).__name__}).") from None
    weights = state.get("model", state) if isinstance(state, dict) else None
    if not isinstance(weights, dict) or "head.classifier.weight" not in weights:
        raise TfnasError(f"{path}: holds no tfnas network weights.")
    classes = int(weights["head.classifier.weight"].shape[0])
    stem = weights.get("stem.0.0.weight")
    channels = int(stem.shape[1]) if stem is not None else None
    net = Network(space, arch, classes, channels)
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise TfnasError(f"{path}: does not fit {arch_path} ({first}).") from None
    return net.eval(), space


def evaluate_weights(
    arch_path: str | Path,
    weights_path: str | Path,
    data: str,
    *,
    space: SearchSpace | str | None = None,
    data_root: str | None = None,
    device: str = "auto",
    batch_size: int = 256,
) -> dict[str, float]:
    """Top-1, top-5 and loss of trained weights on the test split of ``data``."""
    net, space = trained_network(arch_path, weights_path, space)
    test = open_dataset(
        data, "test", image_size=space.input_size, channels=net.in_channels, root=data_root
    )
    if test.num_classes != net.num_classes:
        raise TfnasError(
            f"{data} has {test.num_classes} classes but {weights_path} predicts "
            f"{net.num_classes}; evaluate on data of the classes it was trained on."
        )
    target = resolve_device(device)
    with torch.inference_mode():
        batches = Batches(test, batch_size, shuffle=False, drop_last=False).epoch(0)
        return evaluate(net.to(target), batches, target)
