"""Import the latency tables published with the TF-NAS paper as tables of ``tfnas-imagenet``.

The published files map ``MBInvertedResBlock_{res}_{in}_{se}_{out}_k{k}_s{s}_{act}`` keys to
``{mid_width: ms}`` plus a ``base`` entry: exactly the key format that
:attr:`~tfnas.block.BlockSpec.lut_key` derives, so the import is a check and a copy.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

from ..io import read_json
from ..space import SearchSpace, load_space
from .table import LatencyTable, LatencyTableError, table_from_dict

# The published files, known by their content (sha256), not their names: a renamed copy is
# still known, a file of the user's named like one is not taken for it.
_PUBLISHED = {
    "a88996ee47bc80537f32574ac6519e7fb2e3b919b0478319bd23c1ebd30f0c65": "gpu",  # latency_gpu
    "160e35211fd762b7330ead7a9a97a44bf20de46295da92a3e64df1bbacfef5a6": "cpu",  # latency_cpu
}
# What the tables' own README says about how each was measured.
_KNOWN_SOURCES = {
    "gpu": {
        "device": "cuda",
        "gpu": "Titan RTX 24G",
        "batch_size": 32,
        "threads": 1,
        "torch": "1.1",
        "cudnn": "7.6.0",
    },
    "cpu": {
        "device": "cpu",
        "cpu": "Intel Xeon Gold 6130 @ 2.10GHz",
        "batch_size": 1,
        "threads": 1,
    },
}


def import_tfnas_table(path: str | Path, space: SearchSpace | None = None) -> LatencyTable:
    """Read one of the paper's JSON tables and check it covers every block of the space."""
    path = Path(path)
    space = space or load_space("tfnas-imagenet")
    data = read_json(path, "file", LatencyTableError)
    if not isinstance(data, dict) or "base" not in data:
        raise LatencyTableError(f"{path}: is not one of the paper's tables (no 'base' entry).")
    entries = {k: v for k, v in data.items() if k != "base"}
    kind = _PUBLISHED.get(hashlib.sha256(path.read_bytes()).hexdigest())
    device: dict[str, Any] = dict(_KNOWN_SOURCES.get(kind, {"device": "unknown"}))
    if kind is None:
        print(
            f"note: {path} is in the paper's format but is not one of its published files; "
            "the device it was measured on is not known (recorded as 'unknown').",
            file=sys.stderr,
        )
    table = table_from_dict(
        {
            "format": "tfnas-latency-table",
            "version": 1,
            "space": {"name": space.name, "hash": space.hash},
            "device": device,
            "statistic": "as published",
            "base": data["base"],
            "entries": entries,
            "meta": {"source": f"TF-NAS published table {path.name}"},
        },
        str(path),
    )
    for spec in space.all_block_specs():
        knots = table.entries.get(spec.lut_key)
        if knots is None or spec.min_width not in knots or spec.max_width not in knots:
            raise LatencyTableError(
                f"{path}: does not cover block {spec.lut_key} at widths "
                f"{spec.min_width}..{spec.max_width} of space '{space.name}'."
            )
    return table
