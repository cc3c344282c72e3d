"""The commands that chain runs: pipeline, sweep, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..io import check_output
from ..latency.settings import RunnerSettings
from ..pipeline_config import PipelineConfig
from ..search.config import SearchConfig
from ..train_config import TrainConfig
from .arguments import (
    PIPELINE_WIDE,
    add_settings,
    add_target_options,
    add_threads_option,
    settings_given,
)
from .lut import runner_of
from .output import print_json


def _pipeline_config(args: argparse.Namespace, **target: Any):
    """The pipeline settings of ``tfnas pipeline`` and ``tfnas sweep`` (``target``: the
    target_ms / target_fraction fields, when the command has them)."""
    from ..distributed import use_threads

    use_threads(args.threads)
    # the one --precision and --deterministic of the pipeline go to both steps
    shared = settings_given(args, SearchConfig, only=("precision", "deterministic"))
    return PipelineConfig(
        space=args.space,
        lut=args.lut,
        **settings_given(args, PipelineConfig),
        search=settings_given(args, SearchConfig, "search-") | shared,
        train=settings_given(args, TrainConfig, "train-") | shared,
        **target,
    )


def _how_to_run(args: argparse.Namespace) -> dict[str, Any]:
    """What a pipeline and a sweep are told besides their settings."""
    runner = runner_of(args, timing_device=False)
    return dict(build_lut=args.build_lut, runner=runner, accept_busy_table=args.accept_busy_table)


def cmd_pipeline(args: argparse.Namespace) -> int:
    from ..pipeline import run_pipeline
    from ..pipeline_summary import SUMMARY_FILE

    config = _pipeline_config(
        args, target_ms=args.target_ms, target_fraction=args.target_fraction, arch=args.arch
    )
    summary = run_pipeline(config, args.out, **_how_to_run(args))
    if args.json:
        print_json(summary.to_dict())
    else:
        print(summary.report())
        print(f"summary in {Path(args.out) / SUMMARY_FILE}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..sweep import parse_targets, run_sweep, sweep_table

    targets = parse_targets(args.targets, "--targets") if args.targets else None
    fractions = args.target_fractions
    fractions = parse_targets(fractions, "--target-fractions") if fractions else None
    config = _pipeline_config(args, target_ms=1.0)  # each target replaces it
    rows = run_sweep(
        config,
        args.out,
        targets,
        fractions,
        log=lambda line: print(line, file=sys.stderr, flush=True),
        **_how_to_run(args),
    )
    print(sweep_table(rows))
    print(f"curve in {Path(args.out) / 'sweep.png'}, rows in {Path(args.out) / 'sweep.csv'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import write_report

    if args.out is not None:
        check_output(args.out, "out", "directory")
    report = write_report(args.run_dir, args.out)
    print(
        f"wrote {report.html_path} ({len(report.figure_paths)} figures, also as PNG files in "
        f"{report.html_path.parent / 'report'})"
    )
    return 0


def _pipeline_args(p: argparse.ArgumentParser) -> None:
    """The settings ``tfnas pipeline`` and ``tfnas sweep`` share."""
    p.add_argument("--space", required=True, metavar="NAME|FILE")
    p.add_argument(
        "--lut",
        required=True,
        metavar="LUT.json",
        help="latency table of the space on this device (see --build-lut)",
    )
    p.add_argument(
        "--build-lut",
        action="store_true",
        help="when --lut does not exist, measure it there on this CPU (or through --runner) "
        "first and calibrate it (minutes); without this flag a missing table is an error",
    )
    busy = "go on with a table built on a busy machine or found unreliable by its check"
    p.add_argument("--accept-busy-table", action="store_true", help=busy)
    add_settings(p, RunnerSettings)
    # the pipeline's own settings (data, seed and device it sets for both steps; the table
    # it builds when there is none)
    add_settings(p, PipelineConfig)
    # every setting of the two steps, as --search-NAME / --train-NAME; those the pipeline
    # sets for both steps itself are its own options
    add_settings(p, SearchConfig, prefix="search-", skip=PIPELINE_WIDE, given_only=True)
    add_settings(p, TrainConfig, prefix="train-", skip=PIPELINE_WIDE, given_only=True)
    add_settings(p, SearchConfig, only=("precision", "deterministic"), given_only=True)
    add_threads_option(p, "search and retraining")
    p.add_argument(
        "--out",
        required=True,
        metavar="RUN_DIR",
        help="run directory; run again with the same settings to resume",
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The workflows commands' parsers."""
    p = sub.add_parser(
        "pipeline",
        help="the whole chain: latency table -> search -> retrain -> evaluate -> profile",
    )
    _pipeline_args(p)
    add_target_options(
        p,
        ("--arch", "ARCH.json", "retrain, evaluate and profile this architecture, no search"),
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_pipeline)

    p = sub.add_parser(
        "sweep", help="a pipeline per latency target, and the accuracy-latency curve"
    )
    _pipeline_args(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--targets", metavar="T1,T2,...", help="latency targets in ms")
    target.add_argument(
        "--target-fractions", metavar="F1,F2,...", help="targets as fractions of the range"
    )
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("report", help="an HTML report (and PNG figures) of a run directory")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a search, training or pipeline run")
    p.add_argument("--out", metavar="DIR", help="where to write (default: RUN_DIR)")
    p.set_defaults(func=cmd_report)
