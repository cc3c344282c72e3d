"""Data that would train or evaluate on the wrong thing without a word: list files whose
labels skip classes or list an image twice, folders whose links reach files again, images
wider than 8 bits, and a folder with both val/ and test/. Through the command line."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from tfnas.data import load_image, open_dataset

from .conftest import assert_user_error
from .test_data import write_image_folder


def _list(tmp_path, lines):
    write_image_folder(tmp_path / "img", per_class=4)
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


@pytest.mark.parametrize(
    "lines, fragment",
    [
        ([f"img/cat/{i}.png 7" for i in range(4)], "one class only (label 7)"),
        (
            [f"img/cat/{i}.png 0" for i in range(4)] + [f"img/dog/{i}.png 2" for i in range(4)],
            "never use 1",
        ),
        (["img/cat/0.png 0", "img/dog/0.png 1", "img/cat/0.png 1"], "'img/cat/0.png' twice"),
        (["img/cat/0.png 0", "img/dog/0.png 1", "img/cat/0.png 0"], "'img/cat/0.png' twice"),
    ],
)
def test_a_list_file_whose_labels_mislead_is_refused(tmp_path, cli, lines, fragment):
    listing = _list(tmp_path, lines)
    assert_user_error(cli("data", "show", listing), str(listing), fragment)


def test_links_that_reach_files_again_count_each_file_once(tmp_path, cli):
    write_image_folder(tmp_path / "img", per_class=10)
    os.symlink(tmp_path / "img", tmp_path / "img" / "cat" / "loop")  # a loop through links
    result = cli("data", "show", tmp_path / "img")
    assert result.code == 0, result.err
    assert "counted once" in result.err
    train = open_dataset(str(tmp_path / "img"), "train", image_size=8, channels=1)
    test = open_dataset(str(tmp_path / "img"), "test", image_size=8, channels=1)
    assert len(train) + len(test) == 30
    files = {os.path.realpath(p) for p, _ in train.dataset.samples + test.dataset.samples}
    assert len(files) == 30


@pytest.mark.parametrize("mode, top", [("I;16", 65535), ("I", 65535), ("F", 1.0)])
def test_images_wider_than_8_bits_are_scaled_not_clipped(tmp_path, mode, top):
    ramp = np.linspace(0, top, 64, dtype=np.float64).reshape(8, 8)
    path = tmp_path / ("wide.png" if mode == "I;16" else "wide.tif")
    dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
    image = Image.fromarray(ramp.astype(dtype))
    assert image.mode == mode
    image.save(path)
    pixels = np.asarray(load_image(str(path)))[..., 0]
    assert pixels.min() <= 5 and pixels.max() >= 250 and len(np.unique(pixels)) > 30


def test_both_val_and_test_say_which_is_used(tmp_path, cli):
    for split in ("train", "val", "test"):
        write_image_folder(tmp_path / "d" / split, per_class=2)
    result = cli("data", "show", tmp_path / "d")
    assert result.code == 0, result.err
    assert "both val/ and test/" in result.err and "evaluates on val/" in result.err


@pytest.mark.parametrize("label", ["²", "٣", "-1", "1.0", "0x1"])
def test_a_label_that_is_not_a_plain_number_is_refused(tmp_path, cli, label):
    listing = _list(tmp_path, ["img/cat/0.png 0", f"img/dog/0.png {label}"])
    assert_user_error(cli("data", "show", listing), str(listing), "line 2")
