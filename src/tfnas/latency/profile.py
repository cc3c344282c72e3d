"""A whole network's latency measured on the device at hand, set beside a table's prediction
and corrected for the machine's drift since the table was built (its reference network,
timed in alternation with the network so that both meet the same moments of the machine).

``tfnas profile`` prints it; the pipeline's last step records it.
"""

from __future__ import annotations

from typing import Any

from ..arch import Architecture
from ..complexity import network_cost
from ..nn.network import Network
from ..space import SearchSpace
from .drift import Drift, say_no_reference, table_reference
from .measure import fingerprint_differences, say_other_device, summarise
from .meters import Meter
from .table import LatencyTable


def profile_network(
    space: SearchSpace,
    arch: Architecture,
    meter: Meter,
    *,
    table: LatencyTable | None = None,
    table_source: str = "the table",
    rounds: int = 20,
    gap_seconds: float = 0.5,
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
        reference = table_reference(table, space)
        if reference is None:
            say_no_reference(table_source)
        other_device = fingerprint_differences(table.device, meter.fingerprint())
        if other_device:
            say_other_device(table_source, other_device)
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


__all__ = ["profile_network"]
