"""The ``tfnas`` command: argument parsing and printing only; the work is in the API.

A user error (bad file, bad flag, missing data) is one sentence on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import SettingError, TfnasError
from .io import check_output
from .options import (
    DEFAULT_SCRUB_KIB,
    IN_CHANNELS,
    MODEL_FORMATS,
    TIMING_STATISTICS,
    WIDTH_GRIDS,
    option_name,
)
from .search.config import SearchConfig
from .train_config import TrainConfig


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


def _millions(n: int) -> str:
    return f"{n / 1e6:.3f}M"


# -- commands -----------------------------------------------------------------------------------


def cmd_spaces(args: argparse.Namespace) -> int:
    from .space import builtin_space_names, load_space

    spaces = [load_space(name) for name in builtin_space_names()]
    if args.json:
        _print_json(
            [{"name": s.name, "hash": s.hash, "description": s.description} for s in spaces]
        )
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
    print(_table(rows, ("space", "input", "stages", "blocks", "ops", "hash")))
    for s in spaces:
        print(f"\n{s.name}: {s.description}")
    print("\nA YAML file of your own works wherever a space name does (tfnas space show FILE).")
    return 0


def cmd_space_show(args: argparse.Namespace) -> int:
    from .space import load_space

    space = load_space(args.space)
    if args.json:
        _print_json({**space.to_dict(), "hash": space.hash})
        return 0
    print(f"space {space.name} (hash {space.hash}, from {space.source})")
    if space.description:
        print(space.description)
    print(
        f"input {space.input_size}x{space.input_size}, {space.input_channels} channel(s); "
        f"{space.classes} classes by default"
    )
    for i, layer in enumerate(space.stem):
        res, ch = space.stem_geometry[i]
        extra = f" e{layer.expansion} se{layer.se_channels}" if layer.kind == "mbconv" else ""
        print(
            f"stem {i + 1}: {layer.kind} k{layer.kernel}{extra} {ch}->{layer.out_channels} "
            f"s{layer.stride} {layer.act} @{res}px"
        )
    rows = []
    for s, stage in enumerate(space.stages):
        for pos in space.positions[s]:
            bounds: dict[str, str] = {}
            for b in space.candidates(s, pos.index):
                bounds.setdefault(f"e{b.expansion}", f"{b.min_width}..{b.max_width}")
            depth = f"{stage.min_depth}..{stage.blocks}" if pos.index == 0 else ""
            ops = " ".join(op.label for op in stage.ops) if pos.index == 0 else ""
            rows.append(
                (
                    f"s{s + 1}.b{pos.index + 1}",
                    depth,
                    pos.resolution,
                    f"{pos.in_channels}->{pos.out_channels}",
                    pos.stride,
                    pos.act,
                    ", ".join(f"{e} {w}" for e, w in bounds.items()),
                    ops,
                )
            )
    print(
        _table(
            rows,
            (
                "block",
                "depths",
                "res",
                "channels",
                "stride",
                "act",
                "mid-width bounds",
                "candidate ops",
            ),
        )
    )
    head = space.head
    conv = (
        f"conv 1x1 {space.final_channels}->{head.out_channels} {head.act}, "
        if head.out_channels
        else ""
    )
    print(f"head: {conv}avg pool, dropout {head.dropout}, linear")
    return 0


def cmd_arch_random(args: argparse.Namespace) -> int:
    from .arch import random_architecture
    from .space import load_space

    check_output(args.out, "--out", "file")

    space = load_space(args.space)
    arch = random_architecture(space, args.seed)
    arch.save(args.out)
    print(f"wrote {args.out}: {arch.describe()}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .arch import load_architecture
    from .complexity import network_cost
    from .nn.network import Network

    arch, space = load_architecture(args.arch, args.space)
    in_channels = args.in_channels or space.input_channels
    data = None
    if args.data:
        from .data import open_dataset

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
    batch = _forward_batch(net, data, args.batch_size) if data else None
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
        _print_json(out)
        return 0
    print(
        f"{args.arch}: space {space.name}, depths {'-'.join(map(str, arch.depths))}, "
        f"{num_classes} classes, {in_channels} input channel(s)"
    )
    rows = []
    for p in cost.parts:
        width = f"{p.width} ({p.min_width}..{p.max_width})" if p.width is not None else ""
        rows.append((p.name, p.label, width, f"{p.params:,}", f"{p.macs / 1e6:.2f}M"))
    print(_table(rows, ("part", "block", "mid width (bounds)", "params", "MACs")))
    print(
        f"total: {_millions(cost.params)} params, {cost.macs / 1e6:.2f}M MACs "
        f"({cost.flops / 1e6:.2f}M FLOPs) at {cost.input_shape[2]}x{cost.input_shape[3]}"
    )
    if batch:
        print(
            f"real batch of {batch['size']} {data.name} test images: "
            f"logits {batch['logits_shape']}, "
            f"cross-entropy {batch['loss']:.3f} (untrained: ln {num_classes} = "
            f"{batch['chance_loss']:.3f}), {batch['ms']:.1f} ms forward"
        )
    return 0


def _forward_batch(net, data, batch_size: int) -> dict[str, Any]:
    """Run one real batch through the (untrained) network: proves data and net fit together."""
    import math
    import time

    import torch
    from torch.utils.data import DataLoader

    images, labels = next(iter(DataLoader(data.dataset, batch_size=batch_size, shuffle=False)))
    net.eval()
    with torch.inference_mode():
        start = time.perf_counter()
        logits = net(images)
        ms = (time.perf_counter() - start) * 1e3
        loss = torch.nn.functional.cross_entropy(logits, labels).item()
    return {
        "size": len(images),
        "input_shape": list(images.shape),
        "logits_shape": list(logits.shape),
        "loss": loss,
        "chance_loss": math.log(data.num_classes),
        "ms": ms,
    }


def _check_images(source: str, parts) -> None:
    """Decode every image file of the data's parts; refuse, naming them, unreadable ones."""
    from tqdm import tqdm

    from .data import image_files, unreadable_images
    from .errors import DataError

    files = sorted({f for part in parts for f in image_files(part)})
    with tqdm(
        total=len(files), desc="reading images", unit="image", disable=not sys.stderr.isatty()
    ) as bar:
        bad = unreadable_images(files, bar.update)
    if bad:
        shown = ", ".join(f"{path} ({reason})" for path, reason in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DataError(
            f"{len(bad)} of the {len(files)} image files of {source} cannot be read: "
            f"{shown}{more}; remove or replace them."
        )
    print(f"all {len(files)} image files of {source} decode", file=sys.stderr)


def cmd_data_show(args: argparse.Namespace) -> int:
    from .data import open_dataset, search_split_indices
    from .space import load_space

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
        _check_images(args.data, [train, test])
    if args.json:
        _print_json(out)
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


# -- latency tables -----------------------------------------------------------------------------


def _table_and_space(lut_path: str, space_arg: str | None):
    """A latency table and the space it belongs to (built-in by name, or --space FILE)."""
    from .latency.table import LatencyTableError, load_table
    from .space import load_space

    table = load_table(lut_path)
    if space_arg is None:
        try:
            space = load_space(table.space_name)
        except TfnasError:
            raise LatencyTableError(
                f"{lut_path}: belongs to space '{table.space_name}', which is not built in; "
                "pass its YAML file with --space."
            ) from None
    else:
        space = load_space(space_arg)
    try:
        table.check_space(space)
    except LatencyTableError as exc:
        raise LatencyTableError(f"{lut_path}: {exc}") from None
    table.check_entries(space, lut_path)
    return table, space


def _runner(args: argparse.Namespace, timing_device: bool = True):
    """The external runner of ``--runner`` (None without one). Where ``--device`` says what
    times the networks (``timing_device``), the runner needs ``--device external``."""
    from .latency.external import ExternalRunner

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
    from .latency.measure import TimingPolicy
    from .latency.meters import make_meter

    return make_meter(
        args.device,
        threads=args.threads,
        batch_size=args.batch_size,
        policy=TimingPolicy(statistic=args.statistic, back_to_back=args.back_to_back),
        runner=_runner(args),
        model_format=model_format,
    )


def cmd_lut_build(args: argparse.Namespace) -> int:
    from .latency.build import build_table
    from .latency.journal import journal_path
    from .space import load_space

    check_output(args.out, "--out", "file")

    space = load_space(args.space)
    runner = _runner(args)
    if runner is not None:
        from .latency.external import build_external_table

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

    from .latency.jobs import plan_jobs
    from .latency.plan import write_plan
    from .space import load_space

    check_output(args.out, "--out", "directory")
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
    from .latency.external import external_device
    from .latency.plan import assemble_table, load_manifest, read_measurements
    from .space import load_space

    check_output(args.out, "--out", "file")
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
    from .latency.official import import_tfnas_table

    check_output(args.out, "--out", "file")

    table = import_tfnas_table(args.file)
    table.save(args.out)
    print(
        f"wrote {args.out}: {len(table.entries)} entries of space {table.space_name}, "
        f"base {table.base_ms:.3f} ms, device {table.device.get('gpu') or table.device.get('cpu')}"
    )
    return 0


def cmd_lut_range(args: argparse.Namespace) -> int:
    from .latency.table import latency_range

    table, space = _table_and_space(args.lut, args.space)
    r = latency_range(space, table)
    if args.json:
        _print_json(
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
    from .latency.check import check_table
    from .latency.measure import fingerprint_differences, say_other_device
    from .latency.meters import table_meter

    table, space = _table_and_space(args.lut, args.space)
    meter = table_meter(table, runner=_runner(args))
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
        _print_json({**result.to_dict(), "table_device_differs": bool(other_device)})
        return 0
    rows = [
        (
            r["seed"],
            f"{r['predicted_ms']:.3f}",
            f"{r['measured_ms']:.3f}",
            f"{(r['predicted_ms'] - r['measured_ms']) / r['measured_ms'] * 100:+.1f}%",
        )
        for r in result.rows
    ]
    print(_table(rows, ("seed", "predicted ms", "measured ms", "error")))
    if result.drift is not None:
        print(result.drift.sentence())

    def line(name: str, st: dict) -> str:
        return (
            f"{name}: mean |error| {st['mean_abs_pct']:.2f}%, median {st['median_abs_pct']:.2f}%, "
            f"within 5%: {st['within_5pct']:.0%}, within 10%: {st['within_10pct']:.0%}, "
            f"worst {st['worst_pct']:+.1f}%"
        )

    print(line("table as it was", result.before))
    if result.drift is not None:
        print(line("drift-corrected", result.extra["before_drift_corrected"]))
    if result.calibration is not None:
        cal = result.calibration
        print(
            f"calibration: measured = {cal.scale:.4f} x predicted {cal.offset_ms:+.4f} ms "
            f"(stored in {args.lut})"
        )
        print(line("calibrated (in-sample)", result.after))
        print(line("calibrated (leave-one-out)", result.after_leave_one_out))
        loo = result.after_leave_one_out
        if loo["median_abs_pct"] > 5 or loo["within_10pct"] < 0.9:
            print(
                "warning: the calibrated table still misses by more than usual; was the "
                "machine busy while the table was built or checked? Rebuild or recheck it on "
                "a quiet machine.",
                file=sys.stderr,
            )
    return 0


def _same_space(arch_path: str, lut_path: str, table_space: str) -> None:
    """An architecture and a table of different spaces: the table is the odd one out (the
    architecture is what the user wants profiled), so the sentence names it."""
    from .arch import architecture_from_dict
    from .errors import ArchitectureError
    from .io import read_json

    arch = architecture_from_dict(
        read_json(arch_path, "architecture file", ArchitectureError), arch_path
    )
    if arch.space_name != table_space:
        raise TfnasError(
            f"{lut_path}: is a latency table of space '{table_space}', but {arch_path} is a "
            f"network of space '{arch.space_name}'; use a table built for '{arch.space_name}'."
        )


def cmd_profile(args: argparse.Namespace) -> int:
    from .arch import load_architecture
    from .complexity import network_cost
    from .latency.measure import summarise
    from .nn.network import Network

    table = None
    if args.lut:
        table, space = _table_and_space(args.lut, args.space)
        _same_space(args.arch, args.lut, table.space_name)
        arch, space = load_architecture(args.arch, space)
    else:
        arch, space = load_architecture(args.arch, args.space)
    meter = _meter(args, (table.meta.get("model_format") if table else None) or "onnx")
    classes = args.classes or (table.meta.get("classes") if table else None)
    in_channels = args.in_channels or (table.meta.get("in_channels") if table else None)
    reference = None
    if table is not None:
        from .latency.drift import Drift, say_no_reference, table_reference

        reference = table_reference(table, space)
        if reference is None:
            say_no_reference(args.lut)
    other_device: list[str] = []
    if table is not None:
        from .latency.measure import fingerprint_differences, say_other_device

        other_device = fingerprint_differences(table.device, meter.fingerprint())
        if other_device:
            say_other_device(args.lut, other_device)
    net = Network(space, arch, classes, in_channels)
    timed = [(net, net.input_shape(1)[1:])]
    if reference is not None:  # in alternation with the network: the same moments for both
        ref_net = Network(space, reference[0], classes, in_channels)
        timed.append((ref_net, ref_net.input_shape(1)[1:]))
    spreads = meter.measure_spread_many(timed, args.rounds, args.gap)
    measured, windows = spreads[0]
    drift = Drift(reference[1], spreads[1][0]) if reference is not None else None
    samples = [ms for w in windows for ms in w]
    cost = network_cost(net)
    out = {
        "architecture": str(args.arch),
        "device": meter.fingerprint(),
        "statistic": meter.policy.statistic,
        "measured_ms": measured,
        "calls_timed": len(samples),
        "median_ms": summarise(samples, "median"),
        "params": cost.params,
        "flops": cost.flops,
        "macs": cost.macs,
    }
    if table is not None:
        out["predicted_ms"] = table.predict(space, arch)
        out["error_pct"] = (out["predicted_ms"] - measured) / measured * 100
        out["table_device_differs"] = bool(other_device)
        out["drift"] = drift.to_dict() if drift is not None else None
        if drift is not None:
            corrected = drift.corrected(measured)
            out["measured_drift_corrected_ms"] = corrected
            out["error_drift_corrected_pct"] = (out["predicted_ms"] - corrected) / corrected * 100
    if args.json:
        _print_json(out)
        return 0
    print(
        f"{args.arch} on {args.device} ({meter.threads} thread(s), batch {meter.batch_size}): "
        f"{measured:.3f} ms (best {meter.policy.statistic} of {len(windows)} windows, "
        f"{len(samples)} calls; median of all calls {out['median_ms']:.3f} ms)"
    )
    if table is not None:
        print(
            f"predicted by {args.lut}: {out['predicted_ms']:.3f} ms "
            f"({out['error_pct']:+.1f}% against measured)"
        )
        if drift is not None:
            print(drift.sentence())
            print(
                f"drift-corrected: measured {out['measured_drift_corrected_ms']:.3f} ms, "
                f"predicted {out['error_drift_corrected_pct']:+.1f}% against it"
            )
    print(f"{_millions(cost.params)} params, {cost.macs / 1e6:.2f}M MACs")
    return 0


# -- search -------------------------------------------------------------------------------------


def _fraction_of_range(lut: str, space: str, fraction: float) -> float:
    from .latency.table import target_at_fraction

    table, loaded = _table_and_space(lut, space)
    return target_at_fraction(loaded, table, fraction)


# options that only say how to run, not what the result is: free to differ on resume
_RUNTIME_OPTIONS = {"resume", "threads", "verbose", "help"}


def _refuse_other_settings(args: argparse.Namespace, run_dir: Path, saved: dict) -> None:
    """A resumed run keeps the settings it was started with: refuse, naming them, every
    option typed now that would change them (or that a saved run has no place for)."""
    from .rundir import settings_changed

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

    from .rundir import CONFIG_FILE
    from .search.searcher import search

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
            space=args.space, lut=args.lut, target_ms=target_ms, **_settings(args, SearchConfig)
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
        from .search.selection import standing_sentence

        print(standing_sentence(result.standing))
    return 0


# -- retraining, evaluation, export -------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .train import train
    from .train_config import TrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(arch=args.arch, **_settings(args, TrainConfig))
    result = train(config, args.out, resume=args.resume)
    if not result["main_process"]:
        return 0  # under torchrun, the first process reports
    print(
        f"trained {args.arch} for {result['epochs']} epochs: best test top-1 "
        f"{result['best_top1']:.4f}; weights in {Path(args.out) / 'best.pt'}"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .train import evaluate_weights

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
        _print_json(
            {"architecture": args.arch, "weights": args.weights, "data": args.data, **result}
        )
        return 0
    print(
        f"{args.arch} with {args.weights} on {result['images']} {args.data} test images: "
        f"top-1 {result['top1']:.4f}, top-5 {result['top5']:.4f}, loss {result['loss']:.4f}"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_network
    from .train import trained_network

    check_output(args.out, "--out", "file")

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


# -- the whole chain ----------------------------------------------------------------------------


def _pipeline_config(args: argparse.Namespace, **target: Any):
    """The pipeline settings of ``tfnas pipeline`` and ``tfnas sweep`` (``target``: the
    target_ms / target_fraction fields, when the command has them)."""
    import torch

    from .pipeline import PipelineConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    # the one --precision and --deterministic of the pipeline go to both steps
    shared = _settings(args, SearchConfig, only=("precision", "deterministic"))
    return PipelineConfig(
        space=args.space,
        lut=args.lut,
        data=args.data,
        data_root=args.data_root,
        seed=args.seed,
        device=args.device,
        calibrate_archs=args.calibrate_archs,
        search=_settings(args, SearchConfig, "search-") | shared,
        train=_settings(args, TrainConfig, "train-") | shared,
        **target,
    )


def cmd_pipeline(args: argparse.Namespace) -> int:
    from .pipeline import format_summary, run_pipeline

    config = _pipeline_config(
        args, target_ms=args.target_ms, target_fraction=args.target_fraction, arch=args.arch
    )
    summary = run_pipeline(
        config, args.out, build_lut=args.build_lut, runner=_runner(args, timing_device=False)
    )
    if args.json:
        _print_json(summary)
    else:
        print(format_summary(summary))
        print(f"summary in {Path(args.out) / 'summary.json'}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import parse_targets, run_sweep

    targets = parse_targets(args.targets, "--targets") if args.targets else None
    fractions = (
        parse_targets(args.target_fractions, "--target-fractions")
        if args.target_fractions
        else None
    )
    config = _pipeline_config(args, target_ms=1.0)  # each target replaces it
    rows = run_sweep(
        config,
        args.out,
        targets,
        fractions,
        log=lambda line: print(line, file=sys.stderr, flush=True),
        build_lut=args.build_lut,
        runner=_runner(args, timing_device=False),
    )
    table = [
        (
            r["target"],
            f"{r['measured_ms']:.3f}",
            f"{r['measured_vs_target_pct']:+.1f}%",
            f"{r['top1']:.2%}",
            _millions(r["params"]),
        )
        for r in rows
    ]
    print(_table(table, ("target", "measured ms", "vs target", "top-1", "params")))
    print(f"curve in {Path(args.out) / 'sweep.png'}, rows in {Path(args.out) / 'sweep.csv'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    if args.out is not None:
        check_output(args.out, "--out", "directory")
    report = write_report(args.run_dir, args.out)
    print(
        f"wrote {report.html_path} ({len(report.figure_paths)} figures, also as PNG files in "
        f"{report.html_path.parent / 'report'})"
    )
    return 0


# -- parser -------------------------------------------------------------------------------------


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's default in its help line, unless it has none or the text says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and default not in (None, False, argparse.SUPPRESS)
            and "default" not in text
        ):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad command line reported the way every other user error is: one
    sentence on stderr and exit status 2, pointing to the command's --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("tfnas").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"tfnas: error: {where}{message} (see {self.prog} --help).\n")


def _given_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations of the options typed on the command line (unique prefixes
    included), as opposed to those left at their defaults."""
    given = set()
    for token in argv:
        if not token.startswith("--") or token == "--":
            continue
        name = token.split("=", 1)[0]
        actions = parser._option_string_actions
        if name in actions:
            given.add(actions[name].dest)
            continue
        matches = {a.dest for s, a in actions.items() if s.startswith(name)}
        if len(matches) == 1:
            given |= matches
    return given


def _leaf_parser(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The sub-command's own parser (tfnas lut build -> the parser of 'build')."""
    while parser._subparsers is not None:
        action = next(
            a
            for a in parser._subparsers._group_actions
            if isinstance(a, argparse._SubParsersAction)
        )
        parser = action.choices[getattr(args, action.dest)]
    return parser


# help of options that mean the same in every command (an option's own help wins)
_COMMON_HELP = {
    "space": "search space: a built-in name (tfnas spaces) or a YAML file",
    "data": "data source: fashion-mnist | mnist | cifar10 | NAME:DIR | image folder | list file",
    "data_root": "image root for a list-file data source (default: the list file's folder)",
    "seed": "random seed",
    "in_channels": "input channels of the network (default: the space's)",
    "device": "where to run: auto (a CUDA GPU when there is one), cpu or cuda",
    "workers": "data-loading worker processes (for image folders and list files)",
    "threads": "CPU threads (default: torch's)",
    "classes": "number of classes (default: the table's, else the space's)",
    "weights": "trained weights (best.pt of a training run)",
    "json": "machine-readable output (JSON on stdout)",
}


def _fill_common_help(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _fill_common_help(sub)
        elif action.option_strings and action.help is None:
            action.help = _COMMON_HELP.get(action.dest)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tfnas",
        description="Latency-constrained neural architecture search (TF-NAS) on your own device.",
    )
    parser.add_argument("--version", action="version", version=f"tfnas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        "--classes", type=_whole(2), help="number of classes (default: the data's or space's)"
    )
    p.add_argument("--in-channels", type=int, choices=IN_CHANNELS, help="input channels")
    p.add_argument("--data", metavar="D", help="also run one real batch of this data through it")
    p.add_argument("--data-root", metavar="DIR", help="image root for a list-file data source")
    p.add_argument("--batch-size", type=_whole(1), default=32, help="images in the --data batch")
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
    q.add_argument("--limit", type=_whole(2), help="split only a seeded subset of this many images")
    q.add_argument("--seed", type=int, default=0, help="seed of the search split")
    q.add_argument(
        "--check",
        action="store_true",
        help="decode every image file (image folders, list files) and name unreadable ones",
    )
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_data_show)

    p = sub.add_parser("lut", help="latency lookup tables: build, import, range, check")
    lut_sub = p.add_subparsers(dest="lut_command", required=True, metavar="ACTION")
    q = lut_sub.add_parser("build", help="measure every block of a space on this device")
    q.add_argument("--space", required=True, metavar="NAME|FILE")
    _timing_args(q)
    q.add_argument(
        "--width-step",
        type=_whole(1),
        default=8,
        metavar="K",
        help="measure every K mid channels plus the bounds (default 8)",
    )
    q.add_argument("--classes", type=_whole(2), help="classifier size (default: the space's)")
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
    _model_format_arg(q)
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
    _model_format_arg(q)
    q.add_argument("--batch-size", type=_whole(1), default=1, help="batch of every model's input")
    q.add_argument(
        "--width-step",
        type=_whole(1),
        default=8,
        metavar="K",
        help="every K mid channels plus the bounds, as lut build",
    )
    q.add_argument("--classes", type=_whole(2), help="classifier size (default: the space's)")
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
        "--archs", type=_whole(1), default=30, metavar="N", help="random networks to measure"
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
    _runner_args(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_lut_check)

    p = sub.add_parser("profile", help="measure a network's latency (and predict it)")
    p.add_argument("arch", metavar="ARCH.json")
    _timing_args(p)
    p.add_argument("--lut", metavar="LUT.json", help="also predict with this table")
    p.add_argument("--rounds", type=_whole(1), default=20, help="timing windows (default 20)")
    p.add_argument(
        "--gap", type=_number(0), default=0.5, help="seconds between windows (default 0.5)"
    )
    p.add_argument(
        "--space", metavar="NAME|FILE", help="the architecture's space, when not built in"
    )
    p.add_argument("--classes", type=_whole(2))
    p.add_argument("--in-channels", type=int, choices=IN_CHANNELS)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profile)

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
    _add_settings(p, SearchConfig)
    p.add_argument("--threads", type=_whole(1), help="CPU threads for training (default: torch's)")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory of a new search")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed search")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("train", help="retrain an architecture (the paper's recipe)")
    p.add_argument("arch", metavar="ARCH.json")
    _add_settings(p, TrainConfig)
    p.add_argument("--threads", type=_whole(1), help="CPU threads for training (default: torch's)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    p.add_argument("--resume", action="store_true", help="continue a killed run in RUN_DIR")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="top-1, top-5 and loss of trained weights on test data")
    p.add_argument("arch", metavar="ARCH.json")
    p.add_argument("--weights", required=True, metavar="W.pt")
    p.add_argument("--space", metavar="NAME|FILE")
    _add_settings(p, TrainConfig, only=("data", "data_root", "device"))
    p.add_argument("--batch-size", type=_whole(1), default=256, help="images per batch")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="export trained weights to ONNX or TorchScript, checked")
    p.add_argument("arch", metavar="ARCH.json")
    p.add_argument("--weights", required=True, metavar="W.pt")
    p.add_argument("--space", metavar="NAME|FILE")
    p.add_argument("--format", required=True, choices=tuple(MODEL_FORMATS), help="file format")
    p.add_argument(
        "--tolerance",
        type=_number(0, open_low=True),
        default=1e-4,
        help="max |exported - torch| on logits",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="model file to write")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser(
        "pipeline",
        help="the whole chain: latency table -> search -> retrain -> evaluate -> profile",
    )
    _pipeline_args(p)
    target = p.add_mutually_exclusive_group()
    target.add_argument("--target-ms", type=float, metavar="T", help="latency target in ms")
    target.add_argument(
        "--target-fraction", type=float, metavar="F", help="of the feasible range (0: fastest)"
    )
    target.add_argument(
        "--arch",
        metavar="ARCH.json",
        help="retrain, evaluate and profile this architecture instead of searching one",
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
    _fill_common_help(parser)
    return parser


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
    _runner_args(p)
    # what the pipeline sets for both steps, declared once for both (options.shared_setting)
    _add_settings(p, SearchConfig, only=("data", "data_root", "seed", "device"))
    p.add_argument(
        "--calibrate-archs",
        type=int,
        default=30,
        metavar="N",
        help="whole networks measured to calibrate a new table (0: none)",
    )
    # every setting of the two steps, as --search-NAME / --train-NAME; those the pipeline
    # sets for both steps itself are its own options
    _add_settings(p, SearchConfig, prefix="search-", skip=PIPELINE_WIDE, given_only=True)
    _add_settings(p, TrainConfig, prefix="train-", skip=PIPELINE_WIDE, given_only=True)
    _add_settings(p, SearchConfig, only=("precision", "deterministic"), given_only=True)
    p.add_argument("--threads", type=_whole(1), help="CPU threads for search and retraining")
    p.add_argument(
        "--out",
        required=True,
        metavar="RUN_DIR",
        help="run directory; run again with the same settings to resume",
    )


PIPELINE_WIDE = (
    "space",
    "lut",
    "data",
    "data_root",
    "seed",
    "device",
    "precision",
    "deterministic",
)


def _add_settings(
    p: argparse.ArgumentParser,
    config: type,
    *,
    prefix: str = "",
    skip: Sequence[str] = (),
    only: Sequence[str] | None = None,
    given_only: bool = False,
) -> None:
    """An option for every setting of the ``config`` dataclass, made from its field: name,
    type, default, choices and help are declared there once (:func:`tfnas.options.setting`).
    ``prefix`` (``search-``): the pipeline's options for a step, stored as ``search.NAME``;
    ``given_only``: no default, so that only what is typed is passed on (a step's saved run
    keeps its own settings)."""
    hints = typing.get_type_hints(config)
    for field in dataclasses.fields(config):
        if not field.metadata.get("cli", True) or field.name in skip:
            continue
        if only is not None and field.name not in only:
            continue
        kwargs: dict[str, Any] = {"dest": _dest(prefix, field.name)}
        kind = hints[field.name]
        members = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) is tuple:
            kwargs.update(nargs=len(members), type=members[0])
        elif kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = members[0] if members else kind
        if field.metadata.get("choices") is not None:
            kwargs["choices"] = field.metadata["choices"]
        elif kind is not bool:
            kwargs["metavar"] = field.metadata.get("metavar") or _METAVARS.get(kwargs["type"], "X")
        kwargs["default"] = None if given_only else field.default
        text = field.metadata.get("help", "").replace("%", "%%")
        if field.default is not None and kind is not bool and "(default" not in text:
            default = " ".join(map(str, field.default)) if kwargs.get("nargs") else field.default
            text += f" (default {default})"
        kwargs["help"] = text
        p.add_argument(f"--{prefix}{option_name(field)}", **kwargs)


_METAVARS = {int: "N", float: "X", str: "TEXT"}


def _dest(prefix: str, name: str) -> str:
    return f"{prefix.removesuffix('-')}.{name}" if prefix else name


def _settings(
    args: argparse.Namespace, config: type, prefix: str = "", only: Sequence[str] | None = None
) -> dict[str, Any]:
    """The ``config`` settings the command line holds (made by :func:`_add_settings`; with
    a ``prefix``, only those typed)."""
    out = {}
    for field in dataclasses.fields(config):
        dest = _dest(prefix, field.name)
        if not field.metadata.get("cli", True) or not hasattr(args, dest):
            continue
        if only is not None and field.name not in only:
            continue
        value = getattr(args, dest)
        if value is None and (prefix or only is not None):
            continue
        out[field.name] = tuple(value) if isinstance(value, list) else value
    return out


def _whole(low: int):
    """An argparse type: a whole number of at least ``low`` (argparse names the flag)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.numeric = True  # type: ignore[attr-defined]  # for bench/input_sweep.py
    return parse


def _number(low: float, open_low: bool = False):
    """An argparse type: a finite number of at least (or, ``open_low``, above) ``low``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < low or (open_low and value == low):
            relation = "above" if open_low else "at least"
            raise argparse.ArgumentTypeError(f"must be {relation} {low:g}, got {text}")
        return value

    parse.numeric = True  # type: ignore[attr-defined]
    return parse


def _runner_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runner",
        metavar="'CMD ... {model}'",
        help="time models with this command (--device external; docs/latency-table.md): "
        "{model} is replaced by a model file, or {models} by several; it prints "
        '{"ms": ...} per model',
    )
    p.add_argument(
        "--runner-timeout",
        type=_number(0, open_low=True),
        default=120.0,
        metavar="S",
        help="seconds a runner may take per model",
    )


def _model_format_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        default="onnx",
        choices=tuple(MODEL_FORMATS),
        help="model files for --device external and lut plan",
    )


def _timing_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda", "ort-cpu", "external"),
        help="what times the networks: torch on the CPU or a CUDA GPU, ONNX Runtime, or an "
        "external runner (--runner)",
    )
    _runner_args(p)
    p.add_argument("--threads", type=_whole(1), default=1, help="CPU threads (default 1)")
    p.add_argument("--batch-size", type=_whole(1), default=1, help="images per timed call")
    p.add_argument(
        "--statistic",
        default="p25",
        choices=TIMING_STATISTICS,
        help="statistic of the per-call times (default p25: the lower quartile)",
    )
    p.add_argument(
        "--back-to-back",
        type=_whole(1),
        default=1,
        metavar="N",
        help="time N calls back to back per sample (CUDA: between one pair of events, so "
        "that launch latency overlaps as inside a network; default 1: each call alone)",
    )


def _flag_of(flags: dict[str, str], setting: str) -> str:
    """The flag that gives ``setting`` (``search.epochs``: the pipeline's
    ``--search-epochs``; a step's setting that the pipeline sets for both steps: its own
    flag), or the flag its name would have where no option of this command gives it."""
    name = setting.rpartition(".")[2]
    for dest in (setting, name):
        if dest in flags:
            return flags[dest]
    return "--" + name.replace("_", "-")


def _one_sentence(exc: TfnasError) -> str:
    """The error's sentence; one raised in a DataLoader worker process arrives wrapped in
    the worker's traceback, whose last line holds it."""
    text = str(exc).strip()
    if "Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    leaf = _leaf_parser(parser, args)
    args.given = _given_options(leaf, argv)
    # each option's flag by its destination: what a setting's error is named by
    args.flags = {a.dest: a.option_strings[0] for a in leaf._actions if a.option_strings}
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except SettingError as exc:
        print(f"tfnas: error: {exc.naming(_flag_of(args.flags, exc.setting))}", file=sys.stderr)
        return 2
    except TfnasError as exc:
        print(f"tfnas: error: {_one_sentence(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tfnas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (tfnas ... | head): stop quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
