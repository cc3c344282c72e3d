"""tfnas: latency-constrained neural architecture search (TF-NAS) on your own device.

The public API; every CLI subcommand is a thin wrapper over these names.
"""

from .arch import (
    Architecture,
    BlockChoice,
    load_architecture,
    random_architecture,
    uniform_architecture,
    validate,
)
from .block import BlockSpec, OpSpec
from .complexity import NetworkCost, count_params, network_cost
from .data import ImageData, open_dataset, search_split_indices, split_for_search
from .errors import ArchitectureError, DataError, SpaceError, TfnasError
from .export import export_network
from .latency.build import build_table
from .latency.check import CheckResult, check_table
from .latency.measure import LatencyMeter, TimingPolicy
from .latency.meters import measure_network, measure_networks
from .latency.official import import_tfnas_table
from .latency.table import (
    Calibration,
    LatencyRange,
    LatencyTable,
    LatencyTableError,
    latency,
    latency_range,
    load_table,
)
from .nn.network import Network, build_network
from .nn.supernet import Supernet
from .pipeline import PipelineConfig, format_summary, run_pipeline
from .search.elastic import elastic_scale

# (``run_search``/``run_training``: the names ``search`` and ``train`` stay the subpackage and
# module they come from)
from .search.searcher import SearchConfig, SearchResult
from .search.searcher import search as run_search
from .space import SearchSpace, builtin_space_names, load_space, parse_space
from .sweep import run_sweep
from .train import TrainConfig, evaluate, trained_network
from .train import train as run_training

__version__ = "0.1.0"

__all__ = [
    "PipelineConfig",
    "SearchConfig",
    "SearchResult",
    "format_summary",
    "run_pipeline",
    "run_sweep",
    "Supernet",
    "TrainConfig",
    "elastic_scale",
    "evaluate",
    "export_network",
    "run_search",
    "run_training",
    "trained_network",
    "Architecture",
    "Calibration",
    "CheckResult",
    "LatencyMeter",
    "LatencyRange",
    "LatencyTable",
    "LatencyTableError",
    "TimingPolicy",
    "build_table",
    "check_table",
    "import_tfnas_table",
    "latency",
    "latency_range",
    "load_table",
    "measure_network",
    "measure_networks",
    "ArchitectureError",
    "BlockChoice",
    "BlockSpec",
    "DataError",
    "ImageData",
    "Network",
    "NetworkCost",
    "OpSpec",
    "SearchSpace",
    "SpaceError",
    "TfnasError",
    "build_network",
    "builtin_space_names",
    "count_params",
    "load_architecture",
    "load_space",
    "network_cost",
    "open_dataset",
    "parse_space",
    "random_architecture",
    "search_split_indices",
    "split_for_search",
    "uniform_architecture",
    "validate",
]
