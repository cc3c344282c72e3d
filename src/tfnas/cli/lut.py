"""The latency-table commands (lut build, plan, assemble, import-tfnas, range, check)
and profile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import TfnasError
from ..io import check_output
from ..latency.policy import TimingPolicy
from ..options import (
    DEFAULT_SCRUB_KIB,
    IN_CHANNELS,
    WIDTH_GRIDS,
)
from .arguments import (
    add_model_format_option,
    add_runner_options,
    add_timing_options,
    number_at_least,
    whole_number,
)
from .output import print_json


def runner_of(args: argparse.Namespace, timing_device: bool = True):
    """The external runner of ``--runner`` (None without one). Where ``--device`` says what
    times the networks (``timing_device``), the runner needs ``--device external``."""
    from ..latency.external import ExternalRunner

    if args.runner is None:
        if timing_device and getattr(args, "device", None) == "external":
            raise TfnasError("--device external needs --runner 'COMMAND ... {model} ...'.")
        return None
    if timing_device and getattr(args, "device", "external") not in ("external", None):
        raise TfnasError(
            f"--runner times models outside tfnas: use it with --device external, "
            f"not --device {args.device}."
        )
    return ExternalRunner(args.runner, args.runner_timeout)


def _meter(args: argparse.Namespace, model_format: str = "onnx"):
    from ..latency.meters import make_meter

    return make_meter(
        args.device,
        threads=args.threads,
        batch_size=args.batch_size,
        policy=TimingPolicy(statistic=args.statistic, back_to_back=args.back_to_back),
        runner=runner_of(args),
        model_format=model_format,
    )


def cmd_lut_build(args: argparse.Namespace) -> int:
    from ..latency.build import build_table
    from ..latency.journal import journal_path
    from ..space import load_space

    check_output(args.out, "out", "file")

    space = load_space(args.space)
    runner = runner_of(args)
    if runner is not None:
        from ..latency.external import build_external_table

        table = build_external_table(
            space,
            runner,
            args.out,
            **_plan_settings(args),
            device_name=args.device_name,
            resume=args.resume,
        )
        print(
            f"wrote {args.out}: {len(table.entries)} block entries, base {table.base_ms:.3f} ms, "
            f"{table.meta['measurements']} models measured by {args.runner!r}"
        )
        return 0
    meter = _meter(args)
    table = build_table(
        space,
        meter,
        args.out,
        width_step=args.width_step,
        classes=args.classes,
        in_channels=args.in_channels,
        resume=args.resume,
        limit=args.limit,
        scrub_kib=args.scrub_kib,
    )
    if table is None:
        print(
            f"stopped after {args.limit} measurements; continue with --resume "
            f"(journal: {journal_path(Path(args.out))})"
        )
        return 0
    print(
        f"wrote {args.out}: {len(table.entries)} block entries, base {table.base_ms:.3f} ms, "
        f"{table.meta['measurements']} measurements in {table.meta['build_seconds']:.0f} s "
        f"on {meter.fingerprint()['cpu'] if args.device != 'cuda' else table.device['gpu']}"
    )
    return 0


def _plan_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What a measurement plan is made with (``lut plan`` and ``lut build --device
    external`` alike)."""
    return {
        "fmt": args.format,
        "batch_size": args.batch_size,
        "width_step": args.width_step,
        "classes": args.classes,
        "in_channels": args.in_channels,
        "space_source": args.space,
    }


def cmd_lut_plan(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..latency.jobs import plan_jobs
    from ..latency.plan import write_plan
    from ..space import load_space

    check_output(args.out, "out", "directory")
    space = load_space(args.space)
    with tqdm(
        total=len(plan_jobs(space, args.width_step)),
        desc="exporting",
        unit="model",
        disable=not sys.stderr.isatty(),
    ) as bar:
        manifest = write_plan(space, args.out, **_plan_settings(args), progress=bar.update)
    print(
        f"wrote {Path(args.out) / 'manifest.json'} and {len(manifest.entries)} "
        f"{args.format} models in {Path(args.out) / 'models'}; measure each and run tfnas lut "
        "assemble"
    )
    return 0


def cmd_lut_assemble(args: argparse.Namespace) -> int:
    from ..latency.external import external_device
    from ..latency.plan import assemble_table, load_manifest, read_measurements
    from ..space import load_space

    check_output(args.out, "out", "file")
    manifest = load_manifest(args.plan)
    latencies = read_measurements(args.measurements, manifest)
    space = load_space(args.space) if args.space else None
    table = assemble_table(manifest, latencies, external_device(args.device_name), space)
    table.save(args.out)
    print(
        f"wrote {args.out}: {len(table.entries)} block entries of space {table.space_name}, "
        f"base {table.base_ms:.3f} ms, from {len(latencies)} measurements"
    )
    return 0


def cmd_lut_import(args: argparse.Namespace) -> int:
    from ..latency.official import import_tfnas_table

    check_output(args.out, "out", "file")

    table = import_tfnas_table(args.file)
    table.save(args.out)
    print(
        f"wrote {args.out}: {len(table.entries)} entries of space {table.space_name}, "
        f"base {table.base_ms:.3f} ms, device {table.device.get('gpu') or table.device.get('cpu')}"
    )
    return 0


def cmd_lut_range(args: argparse.Namespace) -> int:
    from ..latency.table import latency_range, load_table_and_space

    table, space = load_table_and_space(args.lut, args.space)
    r = latency_range(space, table)
    if args.json:
        print_json(
            {
                "space": space.name,
                "fastest_ms": r.fastest_ms,
                "slowest_ms": r.slowest_ms,
                "calibrated": table.calibration is not None,
                "fastest": r.fastest.to_dict(),
                "slowest": r.slowest.to_dict(),
            }
        )
        return 0
    print(
        f"feasible latency range of {space.name} on {args.lut}: "
        f"{r.fastest_ms:.2f} to {r.slowest_ms:.2f} ms"
        + (" (calibrated)" if table.calibration else "")
    )
    print(f"fastest: {r.fastest.describe()}")
    print(f"slowest: {r.slowest.describe()}")
    return 0


def cmd_lut_check(args: argparse.Namespace) -> int:
    from ..latency.check import check_table
    from ..latency.measure import fingerprint_differences, say_other_device
    from ..latency.meters import table_meter
    from ..latency.table import load_table_and_space

    table, space = load_table_and_space(args.lut, args.space)
    meter = table_meter(table, runner=runner_of(args))
    other_device = fingerprint_differences(table.device, meter.fingerprint())
    if other_device:
        say_other_device(args.lut, other_device)
    from tqdm import tqdm

    with tqdm(
        # the table's reference network, when it records one, is timed among the networks
        total=(args.archs + ("reference" in table.meta)) * meter.policy.rounds,
        desc="measuring networks",
        unit="window",
        disable=not sys.stderr.isatty(),
    ) as bar:
        result = check_table(
            space,
            table,
            meter,
            args.archs,
            args.seed,
            args.calibrate,
            bar.update,
            on_knots=args.width_grid == "knots",
        )
    if args.calibrate:
        result.calibrated(table).save(args.lut)
    if args.json:
        print_json({**result.to_dict(), "table_device_differs": bool(other_device)})
        return 0
    print(result.report(args.lut))
    if result.misses:
        print(
            "warning: the calibrated table still misses by more than usual; was the "
            "machine busy while the table was built or checked? Rebuild or recheck it on "
            "a quiet machine.",
            file=sys.stderr,
        )
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from ..arch import load_architecture
    from ..latency.profile import check_same_space, profile_network, profile_report
    from ..latency.table import load_table_and_space

    table = None
    if args.lut:
        table, space = load_table_and_space(args.lut, args.space)
        check_same_space(args.arch, args.lut, table.space_name)
        arch, space = load_architecture(args.arch, space)
    else:
        arch, space = load_architecture(args.arch, args.space)
    meter = _meter(args, (table.meta.get("model_format") if table else None) or "onnx")
    out = {"architecture": str(args.arch)}
    out |= profile_network(
        space,
        arch,
        meter,
        table=table,
        table_source=args.lut,
        rounds=args.rounds,
        gap_seconds=args.gap,
        classes=args.classes,
        in_channels=args.in_channels,
    )
    if args.json:
        print_json({k: v for k, v in out.items() if k != "drift_sentence"})
        return 0
    print(profile_report(out, args.arch, args.device, args.lut if table else None))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The lut commands' parsers."""
    p = sub.add_parser("lut", help="latency lookup tables: build, import, range, check")
    lut_sub = p.add_subparsers(dest="lut_command", required=True, metavar="ACTION")
    q = lut_sub.add_parser("build", help="measure every block of a space on this device")
    q.add_argument("--space", required=True, metavar="NAME|FILE")
    add_timing_options(q)
    q.add_argument(
        "--width-step",
        type=whole_number(1),
        default=8,
        metavar="K",
        help="measure every K mid channels plus the bounds (default 8)",
    )
    q.add_argument("--classes", type=whole_number(2), help="classifier size (default: the space's)")
    q.add_argument("--in-channels", type=int, choices=IN_CHANNELS)
    q.add_argument(
        "--scrub-kib",
        type=int,
        default=DEFAULT_SCRUB_KIB,
        metavar="KIB",
        help="CPU: write a buffer of this many KiB before every timed block call, so that "
        f"blocks start with cold near caches as inside a network (default {DEFAULT_SCRUB_KIB}; "
        "0: timed warm, the old way)",
    )
    add_model_format_option(q)
    q.add_argument(
        "--device-name",
        metavar="NAME",
        help="with --device external: what the table records as its device",
    )
    q.add_argument("--resume", action="store_true", help="continue a killed build")
    q.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    q.add_argument("--out", required=True, metavar="LUT.json", help="latency table to write")
    q.set_defaults(func=cmd_lut_build)
    q = lut_sub.add_parser(
        "plan", help="export every model a table needs, to be measured on another device"
    )
    q.add_argument("--space", required=True, metavar="NAME|FILE")
    add_model_format_option(q)
    q.add_argument(
        "--batch-size", type=whole_number(1), default=1, help="batch of every model's input"
    )
    q.add_argument(
        "--width-step",
        type=whole_number(1),
        default=8,
        metavar="K",
        help="every K mid channels plus the bounds, as lut build",
    )
    q.add_argument("--classes", type=whole_number(2), help="classifier size (default: the space's)")
    q.add_argument("--in-channels", type=int, choices=IN_CHANNELS)
    q.add_argument("--out", required=True, metavar="PLAN_DIR", help="directory to write")
    q.set_defaults(func=cmd_lut_plan)
    q = lut_sub.add_parser(
        "assemble", help="a latency table from a plan and latencies measured anywhere"
    )
    q.add_argument("--plan", required=True, metavar="PLAN_DIR", help="written by lut plan")
    q.add_argument(
        "--measurements",
        required=True,
        metavar="M.csv|M.jsonl",
        help='one line per plan entry: CSV \'job,ms\' or JSON lines {"job": ..., "ms": ...}',
    )
    q.add_argument("--device-name", metavar="NAME", help="what the table records as its device")
    q.add_argument(
        "--space", metavar="FILE", help="the plan's space file, when it is not where it was"
    )
    q.add_argument("--out", required=True, metavar="LUT.json", help="latency table to write")
    q.set_defaults(func=cmd_lut_assemble)
    q = lut_sub.add_parser("import-tfnas", help="import a latency table published with the paper")
    q.add_argument("file", metavar="FILE")
    q.add_argument("--out", required=True, metavar="LUT.json", help="latency table to write")
    q.set_defaults(func=cmd_lut_import)
    q = lut_sub.add_parser("range", help="fastest and slowest architecture of the space")
    q.add_argument("--lut", required=True, metavar="LUT.json", help="latency table")
    q.add_argument("--space", metavar="FILE", help="the table's space, when not built in")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_lut_range)
    q = lut_sub.add_parser("check", help="predicted vs measured latency of random networks")
    q.add_argument("--lut", required=True, metavar="LUT.json", help="latency table")
    q.add_argument(
        "--archs", type=whole_number(1), default=30, metavar="N", help="random networks to measure"
    )
    q.add_argument("--seed", type=int, default=1000)
    q.add_argument(
        "--calibrate",
        action="store_true",
        help="fit measured = a * predicted + b and store it in the table",
    )
    q.add_argument("--space", metavar="FILE", help="the table's space, when not built in")
    q.add_argument(
        "--width-grid",
        default="any",
        choices=WIDTH_GRIDS,
        help="random networks at any width, or at the widths the table measured (what "
        "search --width-grid knots produces)",
    )
    add_runner_options(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_lut_check)

    p = sub.add_parser("profile", help="measure a network's latency (and predict it)")
    p.add_argument("arch", metavar="ARCH.json")
    add_timing_options(p)
    p.add_argument("--lut", metavar="LUT.json", help="also predict with this table")
    p.add_argument("--rounds", type=whole_number(1), default=20, help="timing windows (default 20)")
    p.add_argument(
        "--gap", type=number_at_least(0), default=0.5, help="seconds between windows (default 0.5)"
    )
    p.add_argument(
        "--space", metavar="NAME|FILE", help="the architecture's space, when not built in"
    )
    p.add_argument("--classes", type=whole_number(2))
    p.add_argument("--in-channels", type=int, choices=IN_CHANNELS)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profile)
