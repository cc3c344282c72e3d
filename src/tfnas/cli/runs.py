"""The commands of single runs: search, train, eval, export."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import TfnasError
from ..io import check_output
from ..options import EVAL_BATCH_SIZE, EXPORT_TOLERANCE, MODEL_FORMATS
from ..search.config import SearchConfig
from ..train_config import TrainConfig
from .arguments import (
    add_settings,
    add_target_options,
    add_threads_option,
    number_at_least,
    settings_given,
    whole_number,
)
from .output import show

# options that only say how to run, not what the result is: free to differ on resume
_RUNTIME_OPTIONS = {"resume", "threads", "verbose", "help"}


def cmd_search(args: argparse.Namespace) -> int:
    from ..distributed import use_threads
    from ..search.searcher import saved_search_config, search

    if args.resume:
        run_dir = Path(args.resume)
        given = {dest: getattr(args, dest) for dest in args.given - _RUNTIME_OPTIONS}
        config = saved_search_config(run_dir, given)
    else:
        missing = [
            f"--{n.replace('_', '-')}" for n in ("space", "lut", "out") if getattr(args, n) is None
        ]
        if args.target_ms is None and args.target_fraction is None:
            missing.append("--target-ms (or --target-fraction)")
        if missing:
            raise TfnasError(f"a new search needs {', '.join(missing)} (or --resume RUN_DIR).")
        target_ms = args.target_ms
        if target_ms is None:
            from ..latency.table import load_table_and_space, target_at_fraction

            table, space = load_table_and_space(args.lut, args.space)
            target_ms = target_at_fraction(space, table, args.target_fraction)
        run_dir = Path(args.out)
        config = SearchConfig(
            space=args.space,
            lut=args.lut,
            target_ms=target_ms,
            **settings_given(args, SearchConfig),
        )
    use_threads(args.threads)
    result = search(config, run_dir, resume=bool(args.resume))
    if not result.main_process:
        return 0  # under torchrun, the first process reports
    print(result.report(config.target_ms))
    result.require_target_met(config)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..distributed import use_threads
    from ..rundir import BEST_WEIGHTS
    from ..train import train

    use_threads(args.threads)
    config = TrainConfig(arch=args.arch, **settings_given(args, TrainConfig))
    result = train(config, args.out, resume=args.resume)
    if not result.main_process:
        return 0  # under torchrun, the first process reports
    print(
        f"trained {args.arch} for {result.epochs} epochs: best test top-1 "
        f"{result.best_top1:.4f}; weights in {Path(args.out) / BEST_WEIGHTS}"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_weights

    result = evaluate_weights(
        args.arch,
        args.weights,
        args.data,
        space=args.space,
        data_root=args.data_root,
        device=args.device,
        batch_size=args.batch_size,
    )
    data = {"architecture": args.arch, "weights": args.weights, "data": args.data, **result}
    text = (
        f"{args.arch} with {args.weights} on {result['images']} {args.data} test images: "
        f"top-1 {result['top1']:.4f}, top-5 {result['top5']:.4f}, loss {result['loss']:.4f}"
    )
    return show(args.json, data, text)


def cmd_export(args: argparse.Namespace) -> int:
    from ..evaluation import trained_network
    from ..export import export_network

    check_output(args.out, "out", "file")
    net, space = trained_network(args.arch, args.weights, args.space)
    check = export_network(
        net,
        (net.in_channels, space.input_size, space.input_size),
        args.format,
        args.out,
        tolerance=args.tolerance,
    )
    print(
        f"wrote {check.path} ({check.format}); its outputs match PyTorch's within "
        f"{check.max_abs_diff:.1e} (tolerance {check.tolerance:.0e})"
    )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The runs commands' parsers."""
    p = sub.add_parser("search", help="search an architecture that meets a latency target")
    p.add_argument("--space", metavar="NAME|FILE")
    p.add_argument("--lut", metavar="LUT.json", help="latency table of the space on the device")
    add_target_options(p)
    add_settings(p, SearchConfig)
    add_threads_option(p, "the search (default: torch's)")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory of a new search")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed search")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("train", help="retrain an architecture (the paper's recipe)")
    p.add_argument("arch", metavar="ARCH.json")
    add_settings(p, TrainConfig)
    add_threads_option(p, "training (default: torch's)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    p.add_argument("--resume", action="store_true", help="continue a killed run in RUN_DIR")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="top-1, top-5 and loss of trained weights on test data")
    p.add_argument("arch", metavar="ARCH.json")
    p.add_argument("--weights", required=True, metavar="W.pt")
    p.add_argument("--space", metavar="NAME|FILE")
    add_settings(p, TrainConfig, only=("data", "data_root", "device"))
    p.add_argument(
        "--batch-size", type=whole_number(1), default=EVAL_BATCH_SIZE, help="images per batch"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="export trained weights to ONNX or TorchScript, checked")
    p.add_argument("arch", metavar="ARCH.json")
    p.add_argument("--weights", required=True, metavar="W.pt")
    p.add_argument("--space", metavar="NAME|FILE")
    p.add_argument("--format", required=True, choices=tuple(MODEL_FORMATS), help="file format")
    p.add_argument(
        "--tolerance",
        type=number_at_least(0, open_low=True),
        default=EXPORT_TOLERANCE,
        help="max |exported - torch| on logits",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="model file to write")
    p.set_defaults(func=cmd_export)
