"""The commands of single runs: search, train, eval, export."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import TfnasError
from ..io import check_output
from ..options import MODEL_FORMATS
from ..search.config import SearchConfig
from ..train_config import TrainConfig
from .arguments import add_settings, number_at_least, settings_given, whole_number
from .output import print_json


def _fraction_of_range(lut: str, space: str, fraction: float) -> float:
    from ..latency.table import load_table_and_space, target_at_fraction

    table, loaded = load_table_and_space(lut, space)
    return target_at_fraction(loaded, table, fraction)


# options that only say how to run, not what the result is: free to differ on resume
_RUNTIME_OPTIONS = {"resume", "threads", "verbose", "help"}


def _refuse_other_settings(args: argparse.Namespace, run_dir: Path, saved: dict) -> None:
    """A resumed run keeps the settings it was started with: refuse, naming them, every
    option typed now that would change them (or that a saved run has no place for)."""
    from ..rundir import settings_changed

    changed = []
    for dest in sorted(args.given - _RUNTIME_OPTIONS):
        flag = args.flags.get(dest, "--" + dest.replace("_", "-"))
        value = getattr(args, dest)
        if dest == "out":
            if Path(value).resolve() != run_dir.resolve():
                changed.append(f"{flag} {value} (the run is in {run_dir})")
        elif dest not in saved:
            changed.append(f"{flag} (a saved run keeps its own)")
        elif json.loads(json.dumps(value)) != saved[dest]:
            changed.append(f"{flag} {value} (it was started with {saved[dest]})")
    if changed:
        raise settings_changed(run_dir, changed)


def cmd_search(args: argparse.Namespace) -> int:
    import torch

    from ..rundir import CONFIG_FILE
    from ..search.searcher import search

    if args.resume:
        run_dir = Path(args.resume)
        config_path = run_dir / CONFIG_FILE
        if not config_path.is_file():
            raise TfnasError(f"{run_dir}: holds no search to resume (no {CONFIG_FILE}).")
        try:
            config = SearchConfig.from_dict(json.loads(config_path.read_text()))
        except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
            raise TfnasError(
                f"{config_path}: is not a tfnas search configuration ({exc})."
            ) from None
        _refuse_other_settings(args, run_dir, config.to_dict())
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
            target_ms = _fraction_of_range(args.lut, args.space, args.target_fraction)
        run_dir = Path(args.out)
        config = SearchConfig(
            space=args.space,
            lut=args.lut,
            target_ms=target_ms,
            **settings_given(args, SearchConfig),
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    result = search(config, run_dir, resume=bool(args.resume))
    if not result.main_process:
        return 0  # under torchrun, the first process reports
    error = (result.predicted_ms - config.target_ms) / config.target_ms * 100
    print(f"wrote {run_dir / 'arch.json'}: {result.arch.describe()}")
    print(
        f"target {config.target_ms:g} ms, predicted {result.predicted_ms:.4f} ms ({error:+.3f}%), "
        f"depths {'-'.join(map(str, result.arch.depths))}; metrics in {run_dir / 'metrics.jsonl'}"
    )
    if result.standing is not None:
        from ..search.selection import standing_sentence

        print(standing_sentence(result.standing))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ..rundir import BEST_WEIGHTS
    from ..train import train

    if args.threads:
        torch.set_num_threads(args.threads)
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
    if args.json:
        print_json(
            {"architecture": args.arch, "weights": args.weights, "data": args.data, **result}
        )
        return 0
    print(
        f"{args.arch} with {args.weights} on {result['images']} {args.data} test images: "
        f"top-1 {result['top1']:.4f}, top-5 {result['top5']:.4f}, loss {result['loss']:.4f}"
    )
    return 0


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
    target = p.add_mutually_exclusive_group()
    target.add_argument("--target-ms", type=float, metavar="T", help="latency target in ms")
    target.add_argument(
        "--target-fraction",
        type=float,
        metavar="F",
        help="or: the target at this fraction of the feasible range (0: fastest)",
    )
    add_settings(p, SearchConfig)
    p.add_argument(
        "--threads", type=whole_number(1), help="CPU threads for training (default: torch's)"
    )
    p.add_argument("--out", metavar="RUN_DIR", help="run directory of a new search")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed search")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("train", help="retrain an architecture (the paper's recipe)")
    p.add_argument("arch", metavar="ARCH.json")
    add_settings(p, TrainConfig)
    p.add_argument(
        "--threads", type=whole_number(1), help="CPU threads for training (default: torch's)"
    )
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    p.add_argument("--resume", action="store_true", help="continue a killed run in RUN_DIR")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="top-1, top-5 and loss of trained weights on test data")
    p.add_argument("arch", metavar="ARCH.json")
    p.add_argument("--weights", required=True, metavar="W.pt")
    p.add_argument("--space", metavar="NAME|FILE")
    add_settings(p, TrainConfig, only=("data", "data_root", "device"))
    p.add_argument("--batch-size", type=whole_number(1), default=256, help="images per batch")
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
        default=1e-4,
        help="max |exported - torch| on logits",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="model file to write")
    p.set_defaults(func=cmd_export)
