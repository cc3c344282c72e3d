"""A trained network's accuracy: on a loader of batches (each epoch of a training), and of
weights read from a file (``tfnas eval``, the pipeline's last step)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .arch import load_architecture
from .data import open_dataset
from .distributed import resolve_device
from .errors import TfnasError
from .loader import Batches
from .nn.network import Network
from .options import EVAL_BATCH_SIZE
from .space import SearchSpace


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
    _check_trained_for(path, state, arch_path, arch.to_dict(), space)
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


def _check_trained_for(path: Path, state: Any, arch_path, arch: dict, space: SearchSpace) -> None:
    """Refuse weights whose own record (``best.pt`` keeps the architecture it trained) says
    they belong to another version of the space or another architecture: shapes alone can
    agree where the network differs (an activation, a stride, a changed space file)."""
    saved = state.get("arch") if isinstance(state, dict) else None
    if not isinstance(saved, str):
        return  # weights saved without a record (an older tfnas, or by hand): shapes decide
    try:
        record = json.loads(saved)
        saved_hash, saved_stages = record["space"]["hash"], record["stages"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise TfnasError(f"{path}: its architecture record is unreadable.") from None
    if saved_hash != space.hash:
        raise TfnasError(
            f"{path}: was trained on another version of space '{space.name}' (hash "
            f"{saved_hash}, not {space.hash}); give the space file it was trained on."
        )
    if saved_stages != arch["stages"]:
        raise TfnasError(
            f"{path}: was trained for another architecture than {arch_path}; give the "
            "architecture file of its training run."
        )


def evaluate_weights(
    arch_path: str | Path,
    weights_path: str | Path,
    data: str,
    *,
    space: SearchSpace | str | None = None,
    data_root: str | None = None,
    device: str = "auto",
    batch_size: int = EVAL_BATCH_SIZE,
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
