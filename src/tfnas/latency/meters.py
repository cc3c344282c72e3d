"""What times whole networks, behind one interface: tfnas's own :class:`LatencyMeter`
(cpu, cuda, ort-cpu) or a user's program (:class:`~.external.ExternalMeter`), and the one
place that decides which.

``lut check``, ``profile`` and the pipeline's checks take a :class:`Meter` and never ask
which kind it is; :func:`make_meter` builds one from settings, :func:`table_meter` one
configured as the meter that built a table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from torch import nn

from ..arch import Architecture
from ..errors import named
from ..nn.network import Network
from ..space import SearchSpace
from .external import ExternalMeter, ExternalRunner
from .measure import LatencyMeter
from .policy import TimingPolicy
from .settings import MeterSettings, PlanSettings
from .table import LatencyTable, LatencyTableError

Timed = list[tuple[nn.Module, tuple[int, ...]]]  # modules and their input shapes, no batch


class Meter(Protocol):
    """What whole-network timing needs of a meter."""

    device: str
    threads: int
    policy: TimingPolicy

    def fingerprint(self) -> dict[str, object]: ...

    def measure_interleaved(
        self, items: Timed, progress: Callable[[int], None] | None = None
    ) -> list[float]: ...

    def measure_spread_many(
        self, items: Timed, rounds: int = 20, gap_seconds: float = 0.5
    ) -> list[tuple[float, list[list[float]]]]: ...


def make_meter(
    device: str = MeterSettings.device,
    *,
    threads: int = MeterSettings.threads,
    batch_size: int = MeterSettings.batch_size,
    policy: TimingPolicy | None = None,
    runner: ExternalRunner | None = None,
    model_format: str = PlanSettings.fmt,
    name: str | None = None,
) -> Meter:
    """A meter for ``device``; with a ``runner`` (or ``device`` 'external'), the user's
    program times the models, as ONNX or TorchScript files (``model_format``)."""
    if runner is not None or device == "external":
        if runner is None:
            raise LatencyTableError(
                "the table was measured by an external runner; pass the command that times "
                f"models on its device as {named('runner')}."
            )
        return ExternalMeter(runner, batch_size, model_format, name=name)
    return LatencyMeter(device, threads=threads, batch_size=batch_size, policy=policy)


def table_meter(
    table: LatencyTable, device: str | None = None, runner: ExternalRunner | None = None
) -> Meter:
    """A meter configured as the one that built ``table`` (device, threads, batch, policy);
    for a table measured by an external runner, that ``runner`` (which the table does not
    record: the command that times models is the user's to give again)."""
    policy_data = table.meta.get("policy")
    external = table.device.get("device") == "external"
    policy = TimingPolicy(**policy_data) if isinstance(policy_data, dict) and not external else None
    return make_meter(
        "external" if external else device or str(table.device.get("device", "cpu")),
        threads=int(table.device.get("threads", 1)),
        batch_size=int(table.device.get("batch_size", 1)),
        policy=policy,
        runner=runner,
        model_format=str(table.meta.get("model_format", "onnx")),
        name=table.device.get("name"),
    )


def measure_network(
    space: SearchSpace,
    arch: Architecture,
    meter: Meter,
    classes: int | None = None,
    in_channels: int | None = None,
) -> float:
    """Latency in ms of the whole standalone network, timed like the table's blocks."""
    return measure_networks(space, [arch], meter, classes, in_channels)[0]


def measure_networks(
    space: SearchSpace,
    archs: list[Architecture],
    meter: Meter,
    classes: int | None = None,
    in_channels: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[float]:
    """Latencies in ms of whole standalone networks, their timing rounds interleaved."""
    nets = [Network(space, arch, classes, in_channels) for arch in archs]
    return meter.measure_interleaved([(net, net.input_shape(1)[1:]) for net in nets], progress)


__all__ = ["Meter", "make_meter", "measure_network", "measure_networks", "table_meter"]
