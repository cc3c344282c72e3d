"""Datasets: Fashion-MNIST and friends, an image folder, or the paper's list files.

A data *source* is a string, as given to ``--data``:

- ``fashion-mnist`` (also ``mnist``, ``cifar10``): torchvision's dataset classes. Fashion-MNIST
  is read from the Debian package ``dataset-fashion-mnist`` when it is installed, else
  downloaded by torchvision when the machine is online. ``NAME:DIR`` reads the dataset's
  original files (``*-idx?-ubyte[.gz]`` for the MNIST family) from ``DIR``.
- a directory: torchvision's ``ImageFolder``. With ``train/`` and ``val/`` (or ``test/``)
  subfolders those are the splits (their class folders must agree); otherwise a seeded
  ``HELD_OUT`` share of the folder's images is held out as the test split, with a note, so
  that a network is never evaluated on the images it trained on.
- a list file: one ``relative/path label`` per line (the paper's format), paths relative to
  ``root`` (default: the list file's folder).

Images become tensors sized from the search space: resized to its input size and converted to
the network's channel count.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision import datasets
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

from .errors import DataError, named
from .options import IN_CHANNELS

SPLITS = ("train", "test")
HELD_OUT = 0.1  # of a plain image folder's or single list file's images: the test split
_noted: set[str] = set()  # notes said once per process
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class _Catalogued:
    """A dataset that torchvision knows how to read and download."""

    cls: type
    system_dir: str | None
    mean: tuple[float, ...]
    std: tuple[float, ...]


CATALOGUE: dict[str, _Catalogued] = {
    "fashion-mnist": _Catalogued(
        datasets.FashionMNIST, "/usr/share/datasets/fashion-mnist", (0.2860,), (0.3530,)
    ),
    "mnist": _Catalogued(datasets.MNIST, None, (0.1307,), (0.3081,)),
    "cifar10": _Catalogued(
        datasets.CIFAR10, None, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    ),
}


@dataclass
class ImageData:
    """A dataset plus what the rest of tfnas needs to know about it."""

    name: str
    split: str
    dataset: Dataset
    classes: tuple[str, ...]
    # builds this data's transform with (True) or without (False) augmentation
    make_transform: Callable[[bool], Callable[[Any], torch.Tensor]] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def with_augmentation(self, augment: bool) -> ImageData:
        """The same images (not read again) behind the other kind of transform."""
        if self.make_transform is None:
            raise ValueError("this data cannot rebuild its transform")
        dataset = copy.copy(self.dataset)
        dataset.transform = self.make_transform(augment)
        return replace(self, dataset=dataset)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


def cache_dir() -> Path:
    """Where tfnas keeps downloads and unpacked copies: $TFNAS_CACHE or ~/.cache/tfnas."""
    if os.environ.get("TFNAS_CACHE"):
        where, named_by = Path(os.environ["TFNAS_CACHE"]), "TFNAS_CACHE"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        where, named_by = Path(base) / "tfnas", "the cache folder"
    for folder in (where, *where.parents):
        if folder.exists() and not folder.is_dir():
            raise DataError(
                f"{named_by} {where}: cannot be a folder, since {folder} is a file; point "
                "TFNAS_CACHE at a folder tfnas may write."
            )
    return where


# -- transforms ---------------------------------------------------------------------------------


class ToChannels(torch.nn.Module):
    """Convert an image tensor to 1 (grayscale) or 3 (RGB) channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels not in IN_CHANNELS:
            raise DataError(f"images can be read with 1 or 3 channels, not {channels}.")
        self.channels = channels

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        have = image.shape[-3]
        if have == self.channels:
            return image
        if self.channels == 3:
            return TF.grayscale_to_rgb(image)
        return TF.rgb_to_grayscale(image[..., :3, :, :], num_output_channels=1)


def build_transform(
    image_size: int, channels: int, train: bool, mean: Sequence[float], std: Sequence[float]
) -> v2.Compose:
    """Resize to the space's input size; light augmentation for training.

    Small inputs (< 64 px, e.g. Fashion-MNIST in ``tfnas-small``) get padded random crops and
    flips; larger ones the ImageNet recipe (random resized crop, flip; resize and centre crop
    for evaluation).
    """
    mean, std = _stats_for(channels, mean, std)
    ops: list[Callable[..., Any]] = [v2.ToImage(), ToChannels(channels)]
    if image_size >= 64:
        if train:
            ops += [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
        else:
            ops += [v2.Resize(round(image_size / 0.875), antialias=True), v2.CenterCrop(image_size)]
    else:
        ops += [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
        if train:
            ops += [
                v2.RandomCrop(image_size, padding=max(1, image_size // 8)),
                v2.RandomHorizontalFlip(),
            ]
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    return v2.Compose(ops)


@dataclass(frozen=True)
class BatchTransform:
    """The small-input recipe of :func:`build_transform` as tensor operations on whole batches.

    :meth:`prepare` does the fixed part once per dataset (channels, resize, centre crop: uint8
    in, uint8 out); :meth:`batch` the random part per batch (padded random crop, horizontal
    flip, scaling to [0, 1], normalisation), drawing from ``generator`` so that a seeded run
    is repeatable. Calling it on one image does both, for a DataLoader.
    """

    image_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool

    @property
    def padding(self) -> int:
        return max(1, self.image_size // 8)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim == 3:
            images = images.unsqueeze(1)
        images = ToChannels(self.channels)(images)
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = TF.resize(images, self.image_size, antialias=True)
            images = TF.center_crop(images, [self.image_size, self.image_size])
        return images.contiguous()

    def batch(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.augment:
            n, size, pad = len(images), self.image_size, self.padding
            padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
            top = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator)
            left = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator)
            flip = torch.rand(n, 1, generator=generator) < 0.5
            steps = torch.arange(size)
            rows = top + steps
            cols = torch.where(flip, left + steps.flip(0), left + steps)
            rows, cols = rows.to(images.device), cols.to(images.device)
            batch = torch.arange(n, device=images.device)[:, None, None]
            # (n, size, size, channels) -> NCHW view with channels-last strides
            images = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        out = images.float().div_(255)
        mean = torch.tensor(self.mean, device=out.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=out.device).view(1, -1, 1, 1)
        return out.sub_(mean).div_(std)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.batch(self.prepare(image.unsqueeze(0)), None)[0]


def batch_transform(
    image_size: int, channels: int, train: bool, mean: Sequence[float], std: Sequence[float]
) -> BatchTransform:
    mean, std = _stats_for(channels, mean, std)
    return BatchTransform(image_size, channels, tuple(mean), tuple(std), train)


def _stats_for(channels: int, mean: Sequence[float], std: Sequence[float]):
    if len(mean) == channels:
        return list(mean), list(std)
    if channels == 3:
        return list(mean) * 3, list(std) * 3
    return [sum(mean) / len(mean)], [sum(std) / len(std)]


# -- datasets -----------------------------------------------------------------------------------


class TensorImageDataset(Dataset):
    """Images held in memory as one uint8 tensor (N, C, H, W): fast for small datasets."""

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if images.ndim == 3:
            images = images.unsqueeze(1)
        self.images = images
        self.targets = targets.long()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])


_LABEL = re.compile(r"[0-9]+")  # ASCII digits: "²" and "٣" are digits to str.isdigit


class ListFileDataset(Dataset):
    """The paper's list files: ``relative/path label`` per line, paths under ``root``."""

    def __init__(
        self,
        list_file: Path,
        root: Path | None = None,
        transform: Callable[[Any], torch.Tensor] | None = None,
    ) -> None:
        self.list_file = list_file
        self.root = root if root is not None else list_file.parent
        self.transform = transform
        self.samples: list[tuple[str, int]] = []
        try:
            lines = list_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{list_file}: cannot be read ({exc}).") from exc
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not _LABEL.fullmatch(parts[1]):
                raise DataError(
                    f"{list_file}: line {number} must be 'relative/path label' with a "
                    f"non-negative integer label, got {line[:60]!r}."
                )
            self.samples.append((parts[0], int(parts[1])))
        if not self.samples:
            raise DataError(f"{list_file}: lists no images.")
        _check_list_labels(list_file, self.samples)
        for rel, _ in (self.samples[0], self.samples[-1]):
            if not (self.root / rel).is_file():
                raise DataError(
                    f"{list_file}: lists {rel!r}, which is not a file under {self.root} "
                    "(is the data root right?)."
                )
        self.num_classes = max(label for _, label in self.samples) + 1

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        rel, label = self.samples[index]
        image = load_image(str(self.root / rel))
        if self.transform is not None:
            image = self.transform(image)
        return image, label


def _check_list_labels(list_file: Path, samples: list[tuple[str, int]]) -> None:
    """A list file's labels are class indices 0..K-1, each used, each image listed once:
    a label that skips classes would size the classifier for classes never seen, and an
    image listed twice (with one label or two) would leak from the training split into
    the held-out one, or contradict itself."""
    seen: dict[str, int] = {}
    for index, (rel, _) in enumerate(samples):
        if rel in seen:
            raise DataError(
                f"{list_file}: lists {rel!r} twice (entries {seen[rel] + 1} and {index + 1}); "
                "list every image once, with one label."
            )
        seen[rel] = index
    used = {label for _, label in samples}
    missing = sorted(set(range(max(used) + 1)) - used)
    if len(used) < 2:
        raise DataError(
            f"{list_file}: lists one class only (label {min(used)}); a classifier needs at "
            "least two."
        )
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise DataError(
            f"{list_file}: its labels run to {max(used)} but never use {shown}; labels are "
            f"class indices 0 to K-1, each used (renumber them)."
        )


def load_image(path: str) -> Any:
    """An image file as an RGB PIL image; a file that cannot be decoded is one sentence
    naming it, not a traceback deep in a DataLoader. Images of more than 8 bits a channel
    (16-bit grayscale PNGs, 32-bit integer or float images) are scaled to 8 bits, not
    clipped: PIL's conversion to RGB would turn all of them white."""
    try:
        with open(path, "rb") as handle:
            image = Image.open(handle)
            image.load()
        if image.mode in ("I", "F") or image.mode.startswith("I;16"):
            image = _eight_bit(image)
        return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"{path}: cannot be read as an image ({exc}); remove or replace it (checking the "
            "data, as `tfnas data show` does, lists every unreadable file)."
        ) from None


def _eight_bit(image: Any) -> Any:
    """A wide grayscale image scaled onto 0-255: 16-bit data by its full range (65535),
    float data in [0, 1] by 255, anything else by its own maximum."""
    values = np.asarray(image, dtype=np.float64)
    top = float(values.max()) if values.size else 0.0
    if image.mode.startswith("I;16") or 255 < top <= 65535:
        scale = 65535.0
    elif image.mode == "F" and top <= 1.0:
        scale = 1.0
    else:
        scale = max(top, 255.0)
    return Image.fromarray(np.clip(values / scale * 255.0 + 0.5, 0, 255).astype(np.uint8))


def image_files(data: ImageData) -> list[str]:
    """The files behind ``data``'s images (none for data held in memory)."""
    dataset = data.dataset
    indices = None
    while isinstance(dataset, Subset):
        indices = dataset.indices if indices is None else [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    if isinstance(dataset, ListFileDataset):
        files = [str(dataset.root / rel) for rel, _ in dataset.samples]
    elif isinstance(dataset, datasets.ImageFolder):
        files = [path for path, _ in dataset.samples]
    else:
        return []
    return files if indices is None else [files[i] for i in indices]


def unreadable_images(
    files: Sequence[str], progress: Callable[[int], None] | None = None
) -> list[tuple[str, str]]:
    """The files among ``files`` that do not decode as images, each with the reason."""
    bad = []
    for path in files:
        try:
            with Image.open(path) as image:
                image.load()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            bad.append((path, str(exc)))
        if progress is not None:
            progress(1)
    return bad


def check_images(source: str, parts: Sequence[ImageData], show_progress: bool = False) -> int:
    """Decode every image file of the data's ``parts``; refuse, naming them, unreadable ones.
    Returns how many files were read (none for data held in memory)."""
    files = sorted({f for part in parts for f in image_files(part)})
    with tqdm(
        total=len(files), desc="reading images", unit="image", disable=not show_progress
    ) as bar:
        bad = unreadable_images(files, bar.update)
    if bad:
        shown = ", ".join(f"{path} ({reason})" for path, reason in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DataError(
            f"{len(bad)} of the {len(files)} image files of {source} cannot be read: "
            f"{shown}{more}; remove or replace them."
        )
    return len(files)


def one_batch_through(net: torch.nn.Module, data: ImageData, batch_size: int) -> dict[str, Any]:
    """One real batch of ``data`` through ``net`` (untrained): proves that the data and the
    network fit together, and what the loss of an untrained network is."""
    images, labels = next(
        iter(torch.utils.data.DataLoader(data.dataset, batch_size=batch_size, shuffle=False))
    )
    net.eval()
    with torch.inference_mode():
        start = time.perf_counter()
        logits = net(images)
        ms = (time.perf_counter() - start) * 1e3
        loss = torch.nn.functional.cross_entropy(logits, labels).item()
    return {
        "size": len(images),
        "input_shape": list(images.shape),
        "logits_shape": list(logits.shape),
        "loss": loss,
        "chance_loss": math.log(data.num_classes),
        "ms": ms,
    }


def open_dataset(
    source: str,
    split: str = "train",
    *,
    image_size: int,
    channels: int,
    train_transform: bool | None = None,
    root: str | Path | None = None,
    download: bool = True,
) -> ImageData:
    """Open ``split`` of a data source, transformed for a space's input size and channels.

    ``train_transform`` defaults to augmentation on the train split only.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}' (choose from {', '.join(SPLITS)}).")
    augment = split == "train" if train_transform is None else train_transform
    name, _, location = source.partition(":")
    if root is not None and not Path(source).is_file():
        raise DataError(
            f"{named('data_root')} {root} is for list-file data, and {source} is not a list "
            f"file; drop {named('data_root')}."
        )
    if name in CATALOGUE:
        return _open_catalogued(
            name, location or None, split, image_size, channels, augment, download
        )
    path = Path(source)
    if path.is_dir():
        return _open_folder(path, split, image_size, channels, augment)
    if path.is_file():
        make = partial(
            build_transform, image_size, channels, mean=IMAGENET_STATS[0], std=IMAGENET_STATS[1]
        )
        ds = ListFileDataset(path, Path(root) if root is not None else None, make(augment))
        classes = tuple(str(i) for i in range(ds.num_classes))
        _hold_out(ds, split, path, "is one list file, not a train and a test list")
        return ImageData(str(path), split, ds, classes, make)
    raise DataError(
        f"data source '{source}' is neither a known dataset ({', '.join(CATALOGUE)}), "
        "an image folder, nor a list file."
    )


def _open_folder(
    path: Path, split: str, image_size: int, channels: int, augment: bool
) -> ImageData:
    folder = path
    held_out = False
    if (path / "train").is_dir():
        names = ("train",) if split == "train" else ("val", "test")
        found = [path / n for n in names if (path / n).is_dir()]
        if not found:
            raise DataError(
                f"{path}: has a train/ folder but no val/ or test/ folder to evaluate on."
            )
        folder = found[0]
        if split == "test":
            _check_same_classes(path / "train", folder)
            if len(found) > 1 and str(path) not in _noted:
                _noted.add(str(path))
                print(
                    f"note: {path} has both val/ and test/: tfnas evaluates on val/; test/ "
                    "is not used (move it aside to evaluate on it).",
                    file=sys.stderr,
                )
    else:
        held_out = True
    make = partial(
        build_transform, image_size, channels, mean=IMAGENET_STATS[0], std=IMAGENET_STATS[1]
    )
    try:
        ds = datasets.ImageFolder(str(folder), transform=make(augment), loader=load_image)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(
            f"{folder}: is not an image folder with one sub-folder per class ({exc})."
        ) from None
    if len(ds.classes) < 2:
        raise DataError(
            f"{folder}: holds one class only ({ds.classes[0]}); a classifier needs at least "
            "two class folders."
        )
    _count_each_file_once(ds, folder)
    if held_out:
        _hold_out(ds, split, path, "has no train/ and val/ folders")
    return ImageData(str(folder), split, ds, tuple(ds.classes), make)


def _count_each_file_once(ds: Any, folder: Path) -> None:
    """Keep one path per image file: links inside the folder (a loop of them most of all)
    reach the same files again and again, which would count them many times over and put
    copies of training images into the held-out split."""
    seen: set[str] = set()
    kept = []
    for sample in ds.samples:
        real = os.path.realpath(sample[0])
        if real not in seen:
            seen.add(real)
            kept.append(sample)
    if len(kept) == len(ds.samples):
        return
    if str(folder) not in _noted:
        _noted.add(str(folder))
        print(
            f"note: {folder}: {len(ds.samples) - len(kept)} of its {len(ds.samples)} image "
            "paths reach a file another path reaches too (through links); each file is "
            "counted once.",
            file=sys.stderr,
        )
    ds.samples = ds.imgs = kept
    ds.targets = [label for _, label in kept]


def _check_same_classes(train: Path, evaluation: Path) -> None:
    """Labels are class-folder indices: folders that differ would mislabel every image."""
    try:
        train_classes = datasets.folder.find_classes(str(train))[0]
        eval_classes = datasets.folder.find_classes(str(evaluation))[0]
    except (FileNotFoundError, RuntimeError):
        return  # ImageFolder names the problem when it opens the folder
    if train_classes != eval_classes:
        only_train = sorted(set(train_classes) - set(eval_classes))
        only_eval = sorted(set(eval_classes) - set(train_classes))
        raise DataError(
            f"{evaluation}: its class folders differ from those of {train} (only in "
            f"{train.name}/: {', '.join(only_train) or 'none'}; only in {evaluation.name}/: "
            f"{', '.join(only_eval) or 'none'}); the labels would not match."
        )


def _hold_out(ds: Dataset, split: str, path: Path, why: str) -> None:
    """Keep the train or the held-out test share of the images of ``ds`` (an ImageFolder or
    a list file's dataset: its ``samples`` list is cut down), seeded by nothing but the
    images' number, so that every command sees the same split."""
    samples = ds.samples  # type: ignore[attr-defined]
    n = len(samples)
    n_test = max(1, round(n * HELD_OUT))
    if n_test >= n:
        raise DataError(f"{path}: holds {n} image(s), too few to hold any out for testing.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist()
    keep = sorted(order[:n_test] if split == "test" else order[n_test:])
    ds.samples = [samples[i] for i in keep]  # type: ignore[attr-defined]
    if isinstance(ds, datasets.ImageFolder):
        ds.imgs = ds.samples
        ds.targets = [label for _, label in ds.samples]
    if str(path) not in _noted:
        _noted.add(str(path))
        print(
            f"note: {path} {why}: {n_test} of its {n} images ({HELD_OUT:.0%}, seeded) are "
            "held out as the test split, the rest train.",
            file=sys.stderr,
        )


def _open_catalogued(
    name: str,
    location: str | None,
    split: str,
    image_size: int,
    channels: int,
    augment: bool,
    download: bool,
) -> ImageData:
    entry = CATALOGUE[name]
    # In-memory images at small sizes get the batched tensor recipe (the same operations).
    recipe = batch_transform if image_size < 64 else build_transform
    make = partial(recipe, image_size, channels, mean=entry.mean, std=entry.std)
    train = split == "train"
    source_dir = location or entry.system_dir
    if (
        source_dir
        and Path(source_dir).is_dir()
        and entry.cls in (datasets.FashionMNIST, datasets.MNIST)
    ):
        root = _unpack_idx_files(entry.cls, Path(source_dir))
        ds = entry.cls(str(root), train=train, download=False)
    elif location:
        raise DataError(f"{location}: no such directory holding the files of {name}.")
    else:
        root = cache_dir() / "downloads"
        try:
            ds = entry.cls(str(root), train=train, download=download)
        except (RuntimeError, OSError) as exc:
            hint = f" or install the Debian package dataset-{name}" if entry.system_dir else ""
            raise DataError(
                f"{name} is not on this machine and could not be downloaded ({exc}); connect "
                f"to the internet{hint}, or pass {name}:DIR with the dataset's files."
            ) from None
    images = torch.as_tensor(ds.data)
    if images.ndim == 4:  # CIFAR: N, H, W, C
        images = images.permute(0, 3, 1, 2).contiguous()
    targets = torch.as_tensor(ds.targets)
    dataset = TensorImageDataset(images, targets, make(augment))
    return ImageData(name, split, dataset, tuple(ds.classes), make)


def _unpack_idx_files(cls: type, source_dir: Path) -> Path:
    """Lay the original idx files out as torchvision expects (ROOT/NAME/raw, uncompressed).

    Copies go to the cache once per source folder; torchvision then reads them itself.
    """
    digest = hashlib.sha1(str(source_dir.resolve()).encode()).hexdigest()[:10]
    root = cache_dir() / "unpacked" / digest
    raw = root / cls.__name__ / "raw"
    for url, _ in cls.resources:
        packed_name = os.path.basename(url)
        plain_name = os.path.splitext(packed_name)[0]
        target = raw / plain_name
        if target.is_file():
            continue
        raw.mkdir(parents=True, exist_ok=True)
        if not (source_dir / plain_name).is_file() and not (source_dir / packed_name).is_file():
            raise DataError(
                f"{source_dir}: lacks {packed_name} (or its unpacked form {plain_name})."
            )
        # A private temporary name per process: processes started together (torchrun) may
        # unpack the same file at once; each renames a complete copy into place.
        fd, tmp = tempfile.mkstemp(prefix=f".{plain_name}.", suffix=".part", dir=raw)
        with os.fdopen(fd, "wb") as dst:
            if (source_dir / plain_name).is_file():
                with open(source_dir / plain_name, "rb") as src:
                    shutil.copyfileobj(src, dst)
            else:
                with gzip.open(source_dir / packed_name, "rb") as src:
                    shutil.copyfileobj(src, dst)
        os.replace(tmp, target)
    return root


# -- the search split ---------------------------------------------------------------------------


def search_split_indices(
    n: int, arch_fraction: float = 0.2, seed: int = 0, limit: int | None = None
) -> tuple[list[int], list[int]]:
    """Deterministic split of ``n`` samples into a weight part and an architecture part.

    With ``limit``, a seeded subset of that many samples is split instead (for quick searches).
    The same (n, fraction, seed, limit) always gives the same split, on any machine.
    """
    if not 0 < arch_fraction < 1:
        raise DataError(
            f"the architecture fraction must lie strictly between 0 and 1, got {arch_fraction}."
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator).tolist()
    if limit is not None:
        if limit < 2:
            raise DataError(f"a search needs at least 2 samples, got a limit of {limit}.")
        order = order[:limit]
    n_arch = max(1, round(len(order) * arch_fraction))
    if n_arch >= len(order):
        raise DataError(f"{len(order)} samples are too few to split {arch_fraction:.0%} off.")
    return sorted(order[n_arch:]), sorted(order[:n_arch])


def seeded_subset(data: ImageData, limit: int | None, seed: int) -> ImageData:
    """``limit`` images of ``data`` drawn with ``seed`` (in their original order); all of
    them when ``limit`` is None."""
    if limit is None:
        return data
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return replace(data, dataset=Subset(data.dataset, sorted(order[:limit].tolist())))


def split_for_search(
    source: str,
    *,
    image_size: int,
    channels: int,
    arch_fraction: float = 0.2,
    seed: int = 0,
    limit: int | None = None,
    root: str | Path | None = None,
    batch_size: int = 1,
) -> tuple[ImageData, ImageData]:
    """The weight part (augmented) and architecture part (not augmented) of the train split,
    each able to fill one batch of ``batch_size``; the images are read once and shared."""
    weight_data = open_dataset(
        source, "train", image_size=image_size, channels=channels, train_transform=True, root=root
    )
    arch_data = weight_data.with_augmentation(False)
    weight_idx, arch_idx = search_split_indices(len(weight_data), arch_fraction, seed, limit)
    if min(len(weight_idx), len(arch_idx)) < batch_size:
        raise DataError(
            f"the search split has {len(weight_idx)} weight-training and {len(arch_idx)} "
            f"architecture images, and each part needs at least one batch of {batch_size}; "
            f"use more data or a smaller {named('batch_size')}."
        )
    return (
        replace(weight_data, split="weights", dataset=Subset(weight_data.dataset, weight_idx)),
        replace(arch_data, split="architecture", dataset=Subset(arch_data.dataset, arch_idx)),
    )
