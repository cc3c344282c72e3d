"""The commands that inspect inputs: spaces, space show, arch random, info, data show."""

from __future__ import annotations

import argparse
import sys

from ..io import check_output
from ..options import IN_CHANNELS
from .arguments import whole_number
from .output import print_json, text_table


def cmd_spaces(args: argparse.Namespace) -> int:
    from ..space import builtin_space_names, load_space

    spaces = [load_space(name) for name in builtin_space_names()]
    if args.json:
        print_json([{"name": s.name, "hash": s.hash, "description": s.description} for s in spaces])
        return 0
    rows = [
        (
            s.name,
            f"{s.input_size}px x{s.input_channels}",
            len(s.stages),
            sum(st.blocks for st in s.stages),
            len(s.stages[0].ops),
            s.hash,
        )
        for s in spaces
    ]
    print(text_table(rows, ("space", "input", "stages", "blocks", "ops", "hash")))
    for s in spaces:
        print(f"\n{s.name}: {s.description}")
    print("\nA YAML file of your own works wherever a space name does (tfnas space show FILE).")
    return 0


def cmd_space_show(args: argparse.Namespace) -> int:
    from ..space import load_space

    space = load_space(args.space)
    if args.json:
        print_json({**space.to_dict(), "hash": space.hash})
        return 0
    print(space.summary())
    return 0


def cmd_arch_random(args: argparse.Namespace) -> int:
    from ..arch import random_architecture
    from ..space import load_space

    check_output(args.out, "out", "file")

    space = load_space(args.space)
    arch = random_architecture(space, args.seed)
    arch.save(args.out)
    print(f"wrote {args.out}: {arch.describe()}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..arch import load_architecture
    from ..complexity import network_cost
    from ..data import one_batch_through, open_dataset
    from ..nn.network import Network

    arch, space = load_architecture(args.arch, args.space)
    in_channels = args.in_channels or space.input_channels
    data = None
    if args.data:
        data = open_dataset(
            args.data,
            "test",
            image_size=space.input_size,
            channels=in_channels,
            root=args.data_root,
        )
    num_classes = args.classes or (data.num_classes if data else space.classes)
    net = Network(space, arch, num_classes, in_channels)
    cost = network_cost(net)
    batch = one_batch_through(net, data, args.batch_size) if data else None
    if args.json:
        out = {
            "architecture": str(args.arch),
            "space": space.name,
            "space_hash": space.hash,
            "num_classes": num_classes,
            "in_channels": in_channels,
            "depths": list(arch.depths),
            **cost.to_dict(),
        }
        if batch:
            out["batch"] = batch
        print_json(out)
        return 0
    print(
        f"{args.arch}: space {space.name}, depths {'-'.join(map(str, arch.depths))}, "
        f"{num_classes} classes, {in_channels} input channel(s)"
    )
    print(cost.report())
    if batch:
        print(
            f"real batch of {batch['size']} {data.name} test images: "
            f"logits {batch['logits_shape']}, "
            f"cross-entropy {batch['loss']:.3f} (untrained: ln {num_classes} = "
            f"{batch['chance_loss']:.3f}), {batch['ms']:.1f} ms forward"
        )
    return 0


def cmd_data_show(args: argparse.Namespace) -> int:
    from ..data import open_dataset, search_split_indices
    from ..space import load_space

    space = load_space(args.space)
    channels = args.in_channels or space.input_channels
    train = open_dataset(
        args.data, "train", image_size=space.input_size, channels=channels, root=args.data_root
    )
    weight_idx, arch_idx = search_split_indices(
        len(train), args.arch_fraction, args.seed, args.limit
    )
    image, _ = train.dataset[0]
    out = {
        "data": args.data,
        "train_images": len(train),
        "classes": list(train.classes),
        "image_shape": list(image.shape),
        "search_weight_part": len(weight_idx),
        "search_architecture_part": len(arch_idx),
        "seed": args.seed,
    }
    test = open_dataset(
        args.data, "test", image_size=space.input_size, channels=channels, root=args.data_root
    )
    out["test_images"] = len(test)
    if args.check:
        from ..data import check_images

        count = check_images(args.data, [train, test], show_progress=sys.stderr.isatty())
        print(f"all {count} image files of {args.data} decode", file=sys.stderr)
    if args.json:
        print_json(out)
        return 0
    print(
        f"{args.data}: {out['train_images']} training images"
        + f", {out['test_images']} test images"
        + f", {len(train.classes)} classes ({', '.join(train.classes)})"
    )
    print(f"as seen by {space.name}: tensors of shape {tuple(image.shape)}")
    print(
        f"search split (seed {args.seed}): {len(weight_idx)} images train the weights, "
        f"{len(arch_idx)} the architecture"
    )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The inspect commands' parsers."""
    p = sub.add_parser("spaces", help="list the built-in search spaces")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_spaces)

    p = sub.add_parser("space", help="inspect a search space")
    space_sub = p.add_subparsers(dest="space_command", required=True, metavar="ACTION")
    q = space_sub.add_parser("show", help="show a space's stages, ops and width bounds")
    q.add_argument("space", metavar="NAME|FILE", help="built-in space name or YAML file")
    q.add_argument("--json", action="store_true", help="the canonical space as JSON")
    q.set_defaults(func=cmd_space_show)

    p = sub.add_parser("arch", help="make architecture files")
    arch_sub = p.add_subparsers(dest="arch_command", required=True, metavar="ACTION")
    q = arch_sub.add_parser("random", help="a uniformly random architecture of a space")
    q.add_argument("--space", required=True, metavar="NAME|FILE")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", required=True, metavar="ARCH.json", help="architecture file to write")
    q.set_defaults(func=cmd_arch_random)

    p = sub.add_parser("info", help="params, FLOPs and per-block table of an architecture")
    p.add_argument("arch", metavar="ARCH.json")
    p.add_argument(
        "--space",
        metavar="NAME|FILE",
        help="the architecture's space, when it is not a built-in one",
    )
    p.add_argument(
        "--classes", type=whole_number(2), help="number of classes (default: the data's or space's)"
    )
    p.add_argument("--in-channels", type=int, choices=IN_CHANNELS, help="input channels")
    p.add_argument("--data", metavar="D", help="also run one real batch of this data through it")
    p.add_argument("--data-root", metavar="DIR", help="image root for a list-file data source")
    p.add_argument(
        "--batch-size", type=whole_number(1), default=32, help="images in the --data batch"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("data", help="inspect a data source")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    q = data_sub.add_parser("show", help="sizes, classes and the search split of a data source")
    q.add_argument(
        "data",
        metavar="D",
        help="fashion-mnist | mnist | cifar10 | NAME:DIR | image folder | list file",
    )
    q.add_argument("--space", default="tfnas-small", metavar="NAME|FILE")
    q.add_argument("--data-root", metavar="DIR", help="image root for a list-file data source")
    q.add_argument("--in-channels", type=int, choices=IN_CHANNELS)
    q.add_argument(
        "--arch-fraction",
        type=float,
        default=0.2,
        help="share of the training images that trains the architecture in a search",
    )
    q.add_argument(
        "--limit", type=whole_number(2), help="split only a seeded subset of this many images"
    )
    q.add_argument("--seed", type=int, default=0, help="seed of the search split")
    q.add_argument(
        "--check",
        action="store_true",
        help="decode every image file (image folders, list files) and name unreadable ones",
    )
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_data_show)
