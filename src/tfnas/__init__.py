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
from .nn.network import Network, build_network
from .space import SearchSpace, builtin_space_names, load_space, parse_space

__version__ = "0.1.0"

__all__ = [
    "Architecture",
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
