"""The commands that inspect inputs: spaces, space show, arch random, info, data show."""

from __future__ import annotations

import argparse
import sys

from ..io import check_output
from ..options import IN_CHANNELS, INFO_BATCH_SIZE
from ..search.config import SearchConfig
from .arguments import add_settings, settings_given, whole_number
from .output import show


def cmd_spaces(args: argparse.Namespace) -> int:
    from ..space import builtin_space_names, builtin_spaces_report, load_space

    spaces = [load_space(name) for name in builtin_space_names()]
    data = [{"name": s.name, "hash": s.hash, "description": s.description} for s in spaces]
    return show(args.json, data, builtin_spaces_report())


def cmd_space_show(args: argparse.Namespace) -> int:
    from ..space import load_space

    space = load_space(args.space)
    return show(args.json, {**space.to_dict(), "hash": space.hash}, space.summary())


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
    from ..inspection import describe_network

    info = describe_network(
        args.arch,
        args.space,
        classes=args.classes,
        in_channels=args.in_channels,
        data=args.data,
        data_root=args.data_root,
        batch_size=args.batch_size,
    )
    return show(args.json, info.to_dict(), info.report())


# the search settings that decide how a data source is opened and split
_SPLIT_SETTINGS = ("data_root", "in_channels", "arch_fraction", "seed")


def cmd_data_show(args: argparse.Namespace) -> int:
    from ..inspection import summarise_data
    from ..space import load_space

    summary = summarise_data(
        args.data,
        load_space(args.space),
        **settings_given(
            args, SearchConfig, only=("data_root", "in_channels", "arch_fraction", "seed")
        ),
        limit=args.limit,
        check=args.check,
        show_progress=sys.stderr.isatty(),
    )
    if summary.decoded is not None:
        print(f"all {summary.decoded} image files of {args.data} decode", file=sys.stderr)
    return show(args.json, summary.to_dict(), summary.report())


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The inspect commands' parsers."""
    p = sub.add_parser("spaces", help="list the built-in search spaces")
    p.add_argument("--json", action="store_true")
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
    p.add_argument("--space", metavar="NAME|FILE", help="the architecture's, when not built in")
    p.add_argument(
        "--classes", type=whole_number(2), help="number of classes (default: the data's or space's)"
    )
    p.add_argument("--in-channels", type=int, choices=IN_CHANNELS, help="input channels")
    p.add_argument("--data", metavar="D", help="also run one real batch of this data through it")
    p.add_argument("--data-root", metavar="DIR", help="image root for a list-file data source")
    p.add_argument(
        "--batch-size", type=whole_number(1), default=INFO_BATCH_SIZE, help="images of that batch"
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
    add_settings(q, SearchConfig, only=_SPLIT_SETTINGS)
    q.add_argument(
        "--limit", type=whole_number(2), help="split only a seeded subset of this many images"
    )
    q.add_argument(
        "--check",
        action="store_true",
        help="decode every image file (image folders, list files) and name unreadable ones",
    )
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_data_show)
