"""Batches for search and training: one helper, whatever holds the images.

Data held in memory as one uint8 tensor (Fashion-MNIST, MNIST, CIFAR) whose transform can work
on whole batches (:class:`~tfnas.data.BatchTransform`) is decoded and resized once; every batch
is then cropped, flipped and normalised with a few tensor operations, seeded by a generator, so
that a resumed run draws exactly the batches an uninterrupted one would. No per-image Python
work, no worker processes. Any other data (image folders, list files) goes through a
:class:`~torch.utils.data.DataLoader` with the same seeding rules.

Under torchrun each process takes its own share of one seeded permutation (every process
draws the same permutation), unless ``everywhere`` asks for the whole data on each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from .data import BatchTransform, ImageData, TensorImageDataset


@dataclass
class Shard:
    """This process's share of the data: ``rank`` of ``world`` (1 process: the whole)."""

    rank: int = 0
    world: int = 1


def _tensor_source(dataset: Dataset) -> tuple[TensorImageDataset, torch.Tensor] | None:
    """The in-memory dataset under ``dataset`` (through Subsets) and the indices used."""
    indices: torch.Tensor | None = None
    while isinstance(dataset, Subset):
        sub = torch.as_tensor(dataset.indices, dtype=torch.long)
        indices = sub if indices is None else sub[indices]
        dataset = dataset.dataset
    if not isinstance(dataset, TensorImageDataset) or not isinstance(
        dataset.transform, BatchTransform
    ):
        return None
    if indices is None:
        indices = torch.arange(len(dataset))
    return dataset, indices


class TensorBatches:
    """Seeded batches of an in-memory image tensor, augmented batch-wise.

    The images are prepared (resized, converted to the channels asked for) once, on
    ``device``; each iteration draws a permutation and the augmentation from one generator
    seeded with ``seed``.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        transform: BatchTransform,
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        drop_last: bool = True,
        shard: Shard | None = None,
        everywhere: bool = False,
    ) -> None:
        self.images, self.labels = images, labels
        self.transform = transform
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.shard = shard if shard is not None and not everywhere else Shard()

    def _per_process(self) -> int:
        """Images per process: as DistributedSampler, the tail dropped or wrapped around."""
        n, world = len(self.labels), self.shard.world
        return n // world if self.drop_last else -(-n // world)

    def _order(self, generator: torch.Generator) -> torch.Tensor:
        n = len(self.labels)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        if self.shard.world > 1:
            total = self._per_process() * self.shard.world
            order = torch.cat([order, order[: max(0, total - n)]])[:total]
            order = order[self.shard.rank :: self.shard.world]
        return order

    def __len__(self) -> int:
        n = self._per_process()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed)
        order = self._order(generator)
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            batch = self.transform.batch(self.images[index.to(self.images.device)], generator)
            yield batch, self.labels[index.to(self.labels.device)]


def prepare_tensors(
    data: ImageData, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, BatchTransform] | None:
    """Prepared uint8 images, labels and the batch transform of in-memory data, on
    ``device``; ``None`` when the data needs a DataLoader."""
    found = _tensor_source(data.dataset)
    if found is None:
        return None
    dataset, indices = found
    transform: BatchTransform = dataset.transform
    images = transform.prepare(dataset.images[indices]).to(device)
    return images, dataset.targets[indices].to(device), transform


class Batches:
    """Seeded batches of one data part, made the fastest way its data allows.

    Build it once per data part (in-memory images are prepared here, once); call
    :meth:`epoch` for each pass with its own seed.
    """

    def __init__(
        self,
        data: ImageData,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
        shard: Shard | None = None,
        workers: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.shard = shard or Shard()
        self.workers = workers
        self.tensors = prepare_tensors(data, device)

    def epoch(self, seed: int, everywhere: bool = False):
        """The batches of one pass, shuffled and augmented from ``seed``."""
        if self.tensors is not None:
            images, labels, transform = self.tensors
            return TensorBatches(
                images,
                labels,
                transform,
                self.batch_size,
                seed,
                self.shuffle,
                self.drop_last,
                self.shard,
                everywhere,
            )
        if self.shard.world > 1 and not everywhere:
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(
                self.data.dataset,
                self.shard.world,
                self.shard.rank,
                shuffle=self.shuffle,
                seed=seed,
                drop_last=self.drop_last,
            )
            return DataLoader(
                self.data.dataset,
                batch_size=self.batch_size,
                sampler=sampler,
                drop_last=self.drop_last,
                num_workers=self.workers,
                pin_memory=torch.cuda.is_available(),
            )
        return DataLoader(
            self.data.dataset,
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            drop_last=self.drop_last,
            generator=torch.Generator().manual_seed(seed),
            num_workers=self.workers,
            pin_memory=torch.cuda.is_available(),
        )
