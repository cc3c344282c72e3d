"""The latency-table commands (lut build, plan, assemble, import-tfnas, range, check)
and profile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import TfnasError, named
from ..io import check_output
from ..latency.policy import TimingPolicy
from ..latency.settings import (
    CheckSettings,
    MeterSettings,
    PlanSettings,
    ProfileSettings,
    RunnerSettings,
)
from ..options import DEFAULT_SCRUB_KIB
from .arguments import add_settings, add_timing_options, settings_given, whole_number
from .output import progress_bar, show

# how tfnas's own timers run, which a runner decides for itself
_TIMED_BY_THE_RUNNER = {"threads", "statistic", "back_to_back", "scrub_kib"}


def runner_of(args: argparse.Namespace, timing_device: bool = True):
    """The external runner of ``--runner`` (None without one), checked against ``--device``
    where it says what times the networks (``timing_device``)."""
    from ..latency.external import runner_for

    device = getattr(args, "device", None) if timing_device else None
    ignored = sorted(args.given & _TIMED_BY_THE_RUNNER) if device == "external" else []
    if ignored:
        raise TfnasError(
            f"{', '.join(map(named, ignored))}: an external runner times the models itself; "
            "give such settings to its own command (--runner '... --threads 2')."
        )
    return runner_for(args.runner, args.runner_timeout, device)


def _meter(args: argparse.Namespace, model_format: str = "onnx"):
    from ..latency.meters import make_meter

    passes = {"rounds": args.rounds} if args.command == "lut" else {}  # profile: its windows
    return make_meter(
        **settings_given(args, MeterSettings),
        policy=TimingPolicy(**settings_given(args, TimingPolicy), **passes),
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
    plan = settings_given(args, PlanSettings)
    if runner is not None:
        from ..latency.external import build_external_table

        table = build_external_table(
            space, runner, args.out, **plan, batch_size=args.batch_size, space_source=args.space,
            device_name=args.device_name, resume=args.resume, rounds=args.rounds,
        )  # fmt: skip
    else:
        del plan["fmt"]  # timed in this process: no model files
        table = build_table(
            space, _meter(args), args.out, **plan, resume=args.resume, limit=args.limit,
            scrub_kib=args.scrub_kib,
        )  # fmt: skip
    if table is None:
        journal = journal_path(Path(args.out))
        print(f"stopped after {args.limit} measurements; continue with --resume ({journal})")
        return 0
    print(
        f"wrote {args.out}: {table.describe()}; {table.meta['measurements']} measurements in "
        f"{table.meta['build_seconds']:.0f} s"
    )
    return 0


def cmd_lut_plan(args: argparse.Namespace) -> int:
    from ..latency.jobs import plan_jobs
    from ..latency.plan import write_plan
    from ..space import load_space

    check_output(args.out, "out", "directory")
    space = load_space(args.space)
    with progress_bar(len(plan_jobs(space, args.width_step)), "exporting", "model") as bar:
        manifest = write_plan(
            space,
            args.out,
            **settings_given(args, PlanSettings),
            batch_size=args.batch_size,
            space_source=args.space,
            progress=bar.update,
        )
    print(
        f"wrote {Path(args.out) / 'manifest.json'} and {len(manifest.entries)} "
        f"{args.fmt} models in {Path(args.out) / 'models'}; measure each and run tfnas lut "
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
    print(f"wrote {args.out}: {table.describe()}; from {len(latencies)} measurements")
    return 0


def cmd_lut_import(args: argparse.Namespace) -> int:
    from ..latency.official import import_tfnas_table

    check_output(args.out, "out", "file")

    table = import_tfnas_table(args.file)
    table.save(args.out)
    print(f"wrote {args.out}: {table.describe()}")
    return 0


def cmd_lut_range(args: argparse.Namespace) -> int:
    from ..latency.table import latency_range, load_table_and_space

    table, space = load_table_and_space(args.lut, args.space)
    r = latency_range(space, table)
    return show(args.json, r.to_dict(), r.report(args.lut))


def cmd_lut_check(args: argparse.Namespace) -> int:
    from ..latency.check import check_table
    from ..latency.measure import fingerprint_differences, say_other_device
    from ..latency.meters import table_meter
    from ..latency.table import load_table_and_space

    table, space = load_table_and_space(args.lut, args.space)
    if args.calibrate:  # the calibration goes into the table: writable, before measuring
        check_output(args.lut, "lut", "file")
    meter = table_meter(table, runner=runner_of(args))
    other_device = fingerprint_differences(table.device, meter.fingerprint())
    if other_device:
        say_other_device(args.lut, other_device)
    # the table's reference network, when it records one, is timed among the networks
    windows = (args.archs + ("reference" in table.meta)) * meter.policy.rounds
    with progress_bar(windows, "measuring networks", "window") as bar:
        result = check_table(
            space,
            table,
            meter,
            args.archs,
            args.seed,
            args.calibrate,
            bar.update,
            on_knots=args.width_grid == "knots",
            check_drift=not other_device,  # two devices' speeds are no drift of one
        )
    if args.calibrate:
        result.calibrated(table).save(args.lut)
    if result.misses and not args.json:
        print(f"warning: {result.misses}", file=sys.stderr)
    data = {**result.to_dict(), "table_device_differs": bool(other_device),
            "warning": result.misses}  # fmt: skip
    return show(args.json, data, result.report(args.lut))


def cmd_profile(args: argparse.Namespace) -> int:
    from ..latency.profile import load_arch_and_table, profile_network, profile_report

    arch, space, table = load_arch_and_table(args.arch, args.lut, args.space)
    meter = _meter(args, (table.meta.get("model_format") if table else None) or "onnx")
    out = {"architecture": str(args.arch)}
    out |= profile_network(
        space,
        arch,
        meter,
        table=table,
        table_source=args.lut,
        **settings_given(args, ProfileSettings),
    )
    data = {k: v for k, v in out.items() if k != "drift_sentence"}
    return show(args.json, data, profile_report(out, args.arch, args.device, args.lut))


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The lut commands' parsers."""
    p = sub.add_parser("lut", help="latency lookup tables: build, import, range, check")
    lut_sub = p.add_subparsers(dest="lut_command", required=True, metavar="ACTION")
    q = lut_sub.add_parser("build", help="measure every block of a space on this device")
    q.add_argument("--space", required=True, metavar="NAME|FILE")
    add_timing_options(q)
    add_settings(q, PlanSettings)
    q.add_argument(
        "--scrub-kib",
        type=whole_number(0),
        default=DEFAULT_SCRUB_KIB,
        metavar="KIB",
        help="CPU: write a buffer of this many KiB before every timed block call, so that "
        f"blocks start with cold near caches as inside a network (default {DEFAULT_SCRUB_KIB}; "
        "0: timed warm, the old way)",
    )
    q.add_argument("--device-name", metavar="NAME", help="what the table records as its device")
    q.add_argument("--rounds", type=whole_number(1), default=TimingPolicy.rounds, metavar="N",
                   help="passes over every model, each entry keeping its best")  # fmt: skip
    q.add_argument("--resume", action="store_true", help="continue a killed build")
    q.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    q.add_argument("--out", required=True, metavar="LUT.json", help="latency table to write")
    q.set_defaults(func=cmd_lut_build)

    q = lut_sub.add_parser(
        "plan", help="export every model a table needs, to be measured on another device"
    )
    q.add_argument("--space", required=True, metavar="NAME|FILE")
    add_settings(q, MeterSettings, only=("batch_size",))
    add_settings(q, PlanSettings)
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

    for name, text, func in (
        ("range", "fastest and slowest architecture of the space", cmd_lut_range),
        ("check", "predicted vs measured latency of random networks", cmd_lut_check),
    ):
        q = lut_sub.add_parser(name, help=text)
        q.add_argument("--lut", required=True, metavar="LUT.json", help="latency table")
        q.add_argument("--space", metavar="FILE", help="the table's space, when not built in")
        if name == "check":
            add_settings(q, CheckSettings)
            add_settings(q, RunnerSettings)
        q.add_argument("--json", action="store_true")
        q.set_defaults(func=func)

    p = sub.add_parser("profile", help="measure a network's latency (and predict it)")
    p.add_argument("arch", metavar="ARCH.json")
    add_timing_options(p)
    add_settings(p, ProfileSettings)
    p.add_argument("--lut", metavar="LUT.json", help="also predict with this table")
    p.add_argument(
        "--space", metavar="NAME|FILE", help="the architecture's space, when not built in"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profile)
