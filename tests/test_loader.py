"""The batched tensor data path: same images as the per-image transforms, seeded, sharded."""

from __future__ import annotations

import torch
from torch.utils.data import Subset

from tfnas.data import ImageData, TensorImageDataset, batch_transform, build_transform
from tfnas.loader import Batches, Shard

MEAN, STD = (0.3,), (0.4,)


def images(n: int = 40, size: int = 28, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


def data(augment: bool, n: int = 40) -> ImageData:
    ds = TensorImageDataset(
        images(n), torch.arange(n) % 10, batch_transform(32, 1, augment, MEAN, STD)
    )
    return ImageData("test", "train", ds, tuple(str(i) for i in range(10)))


def test_unaugmented_batches_equal_the_per_image_transform():
    reference = build_transform(32, 1, False, MEAN, STD)
    raw = images()
    d = data(False)
    got = torch.cat([x for x, _ in Batches(d, 16, shuffle=False, drop_last=False).epoch(0)])
    want = torch.stack([reference(img.unsqueeze(0)) for img in raw])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # the dataset's own per-image path gives the same
    torch.testing.assert_close(d.dataset[3][0], want[3], atol=1e-5, rtol=0)


def test_augmented_batches_are_padded_crops_or_their_mirror_images():
    d = data(True)
    plain = Batches(data(False), 40, shuffle=False).epoch(0)
    ((base, _),) = list(plain)
    ((aug, labels),) = list(Batches(d, 40, shuffle=False).epoch(7))
    assert aug.shape == (40, 1, 32, 32)
    pad = 4
    low = (0 - MEAN[0]) / STD[0]  # a zero pixel of the padding, normalised
    padded = torch.nn.functional.pad(base, (pad,) * 4, value=low)
    for i in range(40):
        windows = [
            w
            for top in range(2 * pad + 1)
            for left in range(2 * pad + 1)
            for w in (padded[i, :, top : top + 32, left : left + 32],)
        ]
        assert any(torch.allclose(aug[i], w) or torch.allclose(aug[i], w.flip(-1)) for w in windows)
    again, _ = next(iter(Batches(d, 40, shuffle=False).epoch(7)))
    assert torch.equal(aug, again)  # the same seed draws the same augmentation
    other, _ = next(iter(Batches(d, 40, shuffle=False).epoch(8)))
    assert not torch.equal(aug, other)


def test_seeded_order_subsets_and_shards():
    d = data(False)
    d.dataset = Subset(d.dataset, list(range(10, 40)))
    first = [y.tolist() for _, y in Batches(d, 8).epoch(5)]
    assert first == [y.tolist() for _, y in Batches(d, 8).epoch(5)]
    assert len(first) == 3  # 30 images, whole batches only
    labels = sorted(sum(first, []))
    assert all(label in [i % 10 for i in range(10, 40)] for label in labels)
    shares = [
        torch.cat([y for _, y in Batches(d, 5, shard=Shard(r, 2)).epoch(5)]) for r in range(2)
    ]
    assert len(shares[0]) == len(shares[1]) == 15
    everywhere = Batches(d, 5, shard=Shard(1, 2)).epoch(5, everywhere=True)
    assert len(everywhere) == 6
