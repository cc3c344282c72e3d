"""What an input holds, as tfnas sees it: a data source (sizes, classes, tensor shape, the
search's split) and an architecture (its network's cost, and one real batch through it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .arch import load_architecture
from .complexity import NetworkCost, network_cost
from .data import check_images, one_batch_through, open_dataset, search_split_indices
from .nn.network import Network
from .options import INFO_BATCH_SIZE
from .search.config import SearchConfig
from .space import SearchSpace


@dataclass(frozen=True)
class DataSummary:
    data: str
    space: str
    train_images: int
    test_images: int
    classes: list[str]
    image_shape: list[int]
    search_weight_part: int
    search_architecture_part: int
    seed: int
    # image files decoded to check them (None: not checked)
    decoded: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("space", "decoded")}

    def report(self) -> str:
        return (
            f"{self.data}: {self.train_images} training images, {self.test_images} test images"
            f", {len(self.classes)} classes ({', '.join(self.classes)})\n"
            f"as seen by {self.space}: tensors of shape {tuple(self.image_shape)}\n"
            f"search split (seed {self.seed}): {self.search_weight_part} images train the "
            f"weights, {self.search_architecture_part} the architecture"
        )


def summarise_data(
    source: str,
    space: SearchSpace,
    *,
    data_root: str | None = None,
    in_channels: int | None = None,
    arch_fraction: float = SearchConfig.arch_fraction,
    seed: int = SearchConfig.seed,
    limit: int | None = None,
    check: bool = False,
    show_progress: bool = False,
) -> DataSummary:
    """The source's train and test parts opened as ``space`` takes them, and the search's
    split of the training part (``arch_fraction``, ``seed``, ``limit`` as a search's);
    ``check`` decodes every image file, refusing unreadable ones by name."""
    channels = in_channels or space.input_channels
    train, test = (
        open_dataset(source, part, image_size=space.input_size, channels=channels, root=data_root)
        for part in ("train", "test")
    )
    weight_idx, arch_idx = search_split_indices(len(train), arch_fraction, seed, limit)
    image, _ = train.dataset[0]
    return DataSummary(
        data=source,
        space=space.name,
        train_images=len(train),
        test_images=len(test),
        classes=list(train.classes),
        image_shape=list(image.shape),
        search_weight_part=len(weight_idx),
        search_architecture_part=len(arch_idx),
        seed=seed,
        decoded=check_images(source, [train, test], show_progress) if check else None,
    )


@dataclass(frozen=True)
class NetworkInfo:
    architecture: str
    space: str
    space_hash: str
    num_classes: int
    in_channels: int
    depths: list[int]
    cost: NetworkCost
    # one real batch through the untrained network (None: no data given)
    batch: dict[str, Any] | None = None
    data: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("architecture", "space", "space_hash",
               "num_classes", "in_channels", "depths")}  # fmt: skip
        out |= self.cost.to_dict()
        return out | ({"batch": self.batch} if self.batch else {})

    def report(self) -> str:
        lines = [
            f"{self.architecture}: space {self.space}, depths {'-'.join(map(str, self.depths))}, "
            f"{self.num_classes} classes, {self.in_channels} input channel(s)",
            self.cost.report(),
        ]
        if self.batch:
            b = self.batch
            lines.append(
                f"real batch of {b['size']} {self.data} test images: logits {b['logits_shape']}, "
                f"cross-entropy {b['loss']:.3f} (untrained: ln {self.num_classes} = "
                f"{b['chance_loss']:.3f}), {b['ms']:.1f} ms forward"
            )
        return "\n".join(lines)


def describe_network(
    arch_file: str,
    space: str | SearchSpace | None = None,
    *,
    classes: int | None = None,
    in_channels: int | None = None,
    data: str | None = None,
    data_root: str | None = None,
    batch_size: int = INFO_BATCH_SIZE,
) -> NetworkInfo:
    """The architecture's network and its cost; with ``data``, one batch of its test images
    through it. Classes default to the data's, then the space's."""
    arch, space = load_architecture(arch_file, space)
    in_channels = in_channels or space.input_channels
    test = None
    if data:
        test = open_dataset(
            data, "test", image_size=space.input_size, channels=in_channels, root=data_root
        )
    num_classes = classes or (test.num_classes if test else space.classes)
    net = Network(space, arch, num_classes, in_channels)
    return NetworkInfo(
        architecture=str(arch_file),
        space=space.name,
        space_hash=space.hash,
        num_classes=num_classes,
        in_channels=in_channels,
        depths=list(arch.depths),
        cost=network_cost(net),
        batch=one_batch_through(net, test, batch_size) if test else None,
        data=test.name if test else None,
    )


__all__ = ["DataSummary", "NetworkInfo", "describe_network", "summarise_data"]
