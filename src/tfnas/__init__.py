"""tfnas: latency-constrained neural architecture search (TF-NAS) on your own device.

The public API; every CLI subcommand is a thin wrapper over these names.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Every public name and the module it lives in. A name is imported when first used, so
# that ``import tfnas`` (and the CLI's ``tfnas --help``) does not load torch until needed.
# (``run_search``/``run_training`` are ``search`` and ``train``: those names stay the
# subpackage and the module they come from.)
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".arch": (
        "Architecture",
        "BlockChoice",
        "load_architecture",
        "random_architecture",
        "uniform_architecture",
        "validate",
    ),
    ".block": ("BlockSpec", "OpSpec"),
    ".complexity": ("NetworkCost", "count_params", "network_cost"),
    ".data": ("ImageData", "open_dataset", "search_split_indices", "split_for_search"),
    ".errors": ("ArchitectureError", "DataError", "SettingError", "SpaceError", "TfnasError"),
    ".export": ("export_network",),
    ".latency.build": ("build_table",),
    ".latency.check": ("CheckResult", "check_table"),
    ".latency.measure": ("LatencyMeter",),
    ".latency.policy": ("TimingPolicy",),
    ".latency.meters": ("measure_network", "measure_networks"),
    ".latency.official": ("import_tfnas_table",),
    ".latency.table": (
        "Calibration",
        "LatencyRange",
        "LatencyTable",
        "LatencyTableError",
        "latency",
        "latency_range",
        "load_table",
    ),
    ".nn.network": ("Network", "build_network"),
    ".nn.supernet": ("Supernet",),
    ".pipeline": ("run_pipeline",),
    ".pipeline_summary": ("PipelineSummary",),
    ".pipeline_config": ("PipelineConfig",),
    ".search.config": ("SearchConfig",),
    ".search.elastic": ("elastic_scale",),
    ".search.searcher": ("SearchResult", "search as run_search"),
    ".space": ("SearchSpace", "builtin_space_names", "load_space", "parse_space"),
    ".sweep": ("run_sweep",),
    ".train": ("TrainResult", "train as run_training"),
    ".evaluation": ("evaluate", "evaluate_weights", "trained_network"),
    ".train_config": ("TrainConfig",),
}
_WHERE = {
    entry.rpartition(" as ")[2]: (module, entry.partition(" as ")[0])
    for module, entries in _EXPORTS.items()
    for entry in entries
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'tfnas' has no attribute {name!r}")
    module, attribute = _WHERE[name]
    value = getattr(importlib.import_module(module, __name__), attribute)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
