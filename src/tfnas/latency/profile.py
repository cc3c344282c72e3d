"""A whole network's latency measured on the device at hand, set beside a table's prediction
and corrected for the machine's drift since the table was built (its reference network,
timed in alternation with the network so that both meet the same moments of the machine).

``tfnas profile`` prints it; the pipeline's last step records it, measured in a fresh
process (:func:`profile_in_fresh_process`).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from ..arch import Architecture, architecture_from_dict, load_architecture
from ..complexity import network_cost
from ..errors import ArchitectureError
from ..io import read_json
from ..nn.network import Network
from ..space import SearchSpace
from ..text import millions
from .drift import Drift, say_no_reference, table_reference
from .external import ExternalRunner
from .measure import fingerprint_differences, say_other_device, summarise
from .meters import Meter, table_meter
from .settings import ProfileSettings
from .table import LatencyTable, LatencyTableError, load_table_and_space


def profile_network(
    space: SearchSpace,
    arch: Architecture,
    meter: Meter,
    *,
    table: LatencyTable | None = None,
    table_source: str = "the table",
    rounds: int = ProfileSettings.rounds,
    gap_seconds: float = ProfileSettings.gap_seconds,
    classes: int | None = None,
    in_channels: int | None = None,
) -> dict[str, Any]:
    """The network's measured latency (the best per-window statistic of ``rounds`` windows
    ``gap_seconds`` apart), its cost, and with a ``table`` the prediction, the error and the
    drift; notes on stderr where the table records no reference network or was measured on
    another device (``table_source`` names it there). Classes and input channels default to
    the table's, then the space's."""
    meta = table.meta if table is not None else {}
    classes = classes or meta.get("classes")
    in_channels = in_channels or meta.get("in_channels")
    reference = None
    other_device: list[str] = []
    if table is not None:
        other_device = fingerprint_differences(table.device, meter.fingerprint())
        if other_device:  # the ratio of two devices' speeds is no drift: not corrected
            say_other_device(table_source, other_device)
        else:
            reference = table_reference(table, space)
            if reference is None:
                say_no_reference(table_source)
    net = Network(space, arch, classes, in_channels)
    timed = [(net, net.input_shape(1)[1:])]
    if reference is not None:  # in alternation with the network: the same moments for both
        ref_net = Network(space, reference[0], classes, in_channels)
        timed.append((ref_net, ref_net.input_shape(1)[1:]))
    spreads = meter.measure_spread_many(timed, rounds, gap_seconds)
    measured, windows = spreads[0]
    samples = [ms for w in windows for ms in w]
    cost = network_cost(net)
    out: dict[str, Any] = {
        "device": meter.fingerprint(),
        "threads": meter.threads,
        "batch_size": meter.batch_size,
        "statistic": meter.policy.statistic,
        "measured_ms": measured,
        "windows": len(windows),
        "calls_timed": len(samples),
        "median_ms": summarise(samples, "median"),
        "params": cost.params,
        "flops": cost.flops,
        "macs": cost.macs,
    }
    if table is not None:
        drift = Drift(reference[1], spreads[1][0]) if reference is not None else None
        out["predicted_ms"] = table.predict(space, arch)
        out["error_pct"] = (out["predicted_ms"] - measured) / measured * 100
        out["table_device_differs"] = bool(other_device)
        out["drift"] = drift.to_dict() if drift is not None else None
        if drift is not None:
            corrected = drift.corrected(measured)
            out["drift_sentence"] = drift.sentence()
            out["measured_drift_corrected_ms"] = corrected
            out["error_drift_corrected_pct"] = (out["predicted_ms"] - corrected) / corrected * 100
    return out


def profile_report(profile: dict[str, Any], name: str, device: str, lut: str | None) -> str:
    """:func:`profile_network`'s result as text (``tfnas profile``): the measurement, with a
    table (``lut``) the prediction and the drift, and the network's cost."""
    p = profile
    lines = [
        f"{name} on {device} ("
        + ("through the runner" if device == "external" else f"{p['threads']} thread(s)")
        + f", batch {p['batch_size']}): "
        f"{p['measured_ms']:.3f} ms (best {p['statistic']} of {p['windows']} windows, "
        f"{p['calls_timed']} calls; median of all calls {p['median_ms']:.3f} ms)"
    ]
    if lut is not None:
        lines.append(
            f"predicted by {lut}: {p['predicted_ms']:.3f} ms "
            f"({p['error_pct']:+.1f}% against measured)"
        )
        if p.get("drift_sentence") is not None:
            lines += [
                p["drift_sentence"],
                f"drift-corrected: measured {p['measured_drift_corrected_ms']:.3f} ms, "
                f"predicted {p['error_drift_corrected_pct']:+.1f}% against it",
            ]
    lines.append(f"{millions(p['params'])} params, {p['macs'] / 1e6:.2f}M MACs")
    return "\n".join(lines)


def load_arch_and_table(
    arch_file: str | Path, lut: str | Path | None, space: str | SearchSpace | None = None
) -> tuple[Architecture, SearchSpace, LatencyTable | None]:
    """The architecture, its space and (with ``lut``) the table that predicts it, refused
    where the two are of different spaces."""
    if lut is None:
        return (*load_architecture(arch_file, space), None)
    table, space = load_table_and_space(lut, space)
    check_same_space(arch_file, lut, table.space_name)
    arch, space = load_architecture(arch_file, space)
    return arch, space, table


def check_same_space(arch_path: str | Path, lut_path: str | Path, table_space: str) -> None:
    """Refuse an architecture and a table of different spaces. The table is the odd one out
    (the architecture is what is to be profiled), so the sentence names it."""
    arch = architecture_from_dict(
        read_json(arch_path, "architecture file", ArchitectureError), str(arch_path)
    )
    if arch.space_name != table_space:
        raise LatencyTableError(
            f"{lut_path}: is a latency table of space '{table_space}', but {arch_path} is a "
            f"network of space '{arch.space_name}'; use a table built for '{arch.space_name}'."
        )


def profile_in_fresh_process(
    arch_file: str | Path, lut: str | Path, space: str, runner: ExternalRunner | None = None
) -> dict[str, Any]:
    """:func:`profile_network` of an architecture file against the table ``lut``, timed
    as the table's blocks were (:func:`~tfnas.latency.meters.table_meter`), in a process of
    its own: in the process that has just trained, the same network measured 10-25% slower
    on a 2-core machine (allocator and thread-pool state left by training)."""
    fresh = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=fresh) as pool:
        return pool.submit(_profile_files, str(arch_file), str(lut), space, runner).result()


def _profile_files(
    arch_file: str, lut: str, space_source: str, runner: ExternalRunner | None
) -> dict[str, Any]:
    arch, space, table = load_arch_and_table(arch_file, lut, space_source)
    meter = table_meter(table, runner=runner)
    return profile_network(space, arch, meter, table=table, table_source=lut)


__all__ = [
    "check_same_space",
    "load_arch_and_table",
    "profile_in_fresh_process",
    "profile_network",
    "profile_report",
]
