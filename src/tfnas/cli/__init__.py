"""The ``tfnas`` command: argument parsing and printing only; the work is in the API.

A user error (bad file, bad flag, missing data) is one sentence on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import TfnasError, user_error_of
from . import inspect, lut, runs, workflows
from .arguments import (
    Parser,
    fill_common_help,
    flag_of,
    given_options,
    leaf_parser,
    one_sentence,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tfnas",
        description="Latency-constrained neural architecture search (TF-NAS) on your own device.",
    )
    parser.add_argument("--version", action="version", version=f"tfnas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    inspect.add_commands(sub)
    lut.add_commands(sub)
    runs.add_commands(sub)
    workflows.add_commands(sub)
    fill_common_help(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    leaf = leaf_parser(parser, args)
    args.given = given_options(leaf, argv)
    # each option's flag (a positional's metavar) by its destination: how an error's named
    # settings are shown
    args.flags = {
        a.dest: a.option_strings[0] if a.option_strings else str(a.metavar or a.dest.upper())
        for a in leaf._actions
    }
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (TfnasError, MemoryError, RuntimeError) as caught:
        exc = caught if isinstance(caught, TfnasError) else user_error_of(caught)
        if exc is None:
            raise
        text = exc.render(lambda setting: flag_of(args.flags, setting))
        print(f"tfnas: error: {one_sentence(text)}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("tfnas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (tfnas ... | head): stop quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
