from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tfnas.data import (
    CATALOGUE,
    open_dataset,
    search_split_indices,
    split_for_search,
)
from tfnas.errors import DataError

from .conftest import assert_user_error


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFNAS_CACHE", str(tmp_path / "cache"))


def write_idx_dataset(folder: Path, n_train: int = 40, n_test: int = 12) -> None:
    """Tiny files in the original Fashion-MNIST format (gzipped idx), made here."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + labels.tobytes())


def write_image_folder(
    root: Path, classes=("cat", "dog", "emu"), per_class: int = 3, size=(40, 30)
) -> list[tuple[str, int]]:
    rng = np.random.default_rng(1)
    listed = []
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(*size[::-1], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
            listed.append((f"{name}/{i}.png", label))
    return listed


def test_fashion_mnist_from_its_original_files(tmp_path):
    write_idx_dataset(tmp_path / "fm")
    for channels in (1, 3):
        train = open_dataset(
            f"fashion-mnist:{tmp_path / 'fm'}", "train", image_size=32, channels=channels
        )
        test = open_dataset(
            f"fashion-mnist:{tmp_path / 'fm'}", "test", image_size=32, channels=channels
        )
        assert (len(train), len(test), train.num_classes) == (40, 12, 10)
        image, label = train.dataset[3]
        assert image.shape == (channels, 32, 32) and image.dtype == torch.float32
        assert label == 3


def test_real_fashion_mnist_when_installed():
    system = Path(CATALOGUE["fashion-mnist"].system_dir)
    if not system.is_dir():
        pytest.skip("the Debian package dataset-fashion-mnist is not installed")
    train = open_dataset("fashion-mnist", "train", image_size=32, channels=1)
    test = open_dataset("fashion-mnist", "test", image_size=32, channels=1)
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.classes[0] == "T-shirt/top"
    labels = train.dataset.targets
    assert torch.bincount(labels).tolist() == [6000] * 10


def test_image_folder_with_and_without_splits(tmp_path):
    write_image_folder(tmp_path / "plain")
    # without train/ and val/: a seeded 10% (here 1 of 9) is held out as the test split
    data = open_dataset(str(tmp_path / "plain"), "train", image_size=32, channels=3)
    held_out = open_dataset(str(tmp_path / "plain"), "test", image_size=32, channels=3)
    assert data.classes == held_out.classes == ("cat", "dog", "emu")
    assert (len(data), len(held_out)) == (8, 1)
    assert not set(data.dataset.samples) & set(held_out.dataset.samples)
    assert data.dataset[0][0].shape == (3, 32, 32)
    write_image_folder(tmp_path / "split" / "train")
    write_image_folder(tmp_path / "split" / "val", per_class=1)
    assert len(open_dataset(str(tmp_path / "split"), "test", image_size=32, channels=1)) == 3
    gray = open_dataset(str(tmp_path / "split"), "train", image_size=64, channels=1)
    assert gray.dataset[0][0].shape == (1, 64, 64)


def test_list_file(tmp_path):
    listed = write_image_folder(tmp_path / "images")
    lines = ["# the paper's format: relative/path label"] + [f"{p} {label}" for p, label in listed]
    list_file = tmp_path / "lists" / "train.txt"
    list_file.parent.mkdir()
    list_file.write_text("\n".join(lines) + "\n")
    data = open_dataset(
        str(list_file), "train", image_size=32, channels=3, root=tmp_path / "images"
    )
    assert len(data) == 8 and data.num_classes == 3  # one of the 9 held out for testing
    rel, label = data.dataset.samples[4]
    image, loaded_label = data.dataset[4]
    assert image.shape == (3, 32, 32) and (rel, label) in listed and loaded_label == label
    with pytest.raises(DataError, match="data root"):
        open_dataset(str(list_file), "train", image_size=32, channels=3)
    list_file.write_text("cat/0.png not-a-label\n")
    with pytest.raises(DataError, match="line 1"):
        open_dataset(str(list_file), "train", image_size=32, channels=3, root=tmp_path / "images")


def test_search_split_is_deterministic_and_disjoint():
    w, a = search_split_indices(1000, 0.2, seed=3)
    assert (len(w), len(a)) == (800, 200)
    assert not set(w) & set(a) and set(w) | set(a) == set(range(1000))
    assert (w, a) == search_split_indices(1000, 0.2, seed=3)
    assert (w, a) != search_split_indices(1000, 0.2, seed=4)
    w, a = search_split_indices(1000, 0.2, seed=3, limit=100)
    assert (len(w), len(a)) == (80, 20)
    with pytest.raises(DataError):
        search_split_indices(10, 1.5)


def test_split_for_search_augments_only_the_weight_part(tmp_path):
    write_idx_dataset(tmp_path / "fm", n_train=50)
    weights, arch = split_for_search(
        f"fashion-mnist:{tmp_path / 'fm'}", image_size=32, channels=1, seed=0
    )
    assert (len(weights), len(arch)) == (40, 10)
    torch.manual_seed(0)
    x1, x2 = arch.dataset[0][0], arch.dataset[0][0]
    assert torch.equal(x1, x2)  # no augmentation on the architecture part


def test_data_errors_via_cli(tmp_path, cli):
    assert_user_error(
        cli("data", "show", str(tmp_path / "nothing-here")), "neither a known dataset"
    )
    assert_user_error(cli("data", "show", f"fashion-mnist:{tmp_path}"), "lacks")


def test_data_show(tmp_path, cli):
    write_idx_dataset(tmp_path / "fm")
    result = cli("data", "show", f"fashion-mnist:{tmp_path / 'fm'}", "--json")
    assert result.code == 0, result.err
    out = result.json()
    assert out["train_images"] == 40 and out["test_images"] == 12
    assert out["search_weight_part"] + out["search_architecture_part"] == 40
    assert out["image_shape"] == [1, 32, 32]
