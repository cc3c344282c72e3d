"""How close the derived network lands on its target, from learned distributions drawn at
random, this tree against an earlier one (``--base``), in one run.

Usage: python bench/target_reach.py [--base 3fa559d] [--draws 200] [--out FILE.json]

Per tree and table: ``--draws`` derivations (``tfnas.search.derive.derive_for_target``), each
from random op and depth logits (seeded) at one of 20 targets spread over the table's
feasible range (the 2.5th to the 97.5th percentile of it): the predicted latency's absolute
miss, median, 90th percentile, worst, and how many miss by more than 1%. Tables: ``noisy``,
the tiny test space with a counting latency (parameters in thousands) times a seeded factor
in [0.5, 1.5] per entry (a measured table of a small space: ops out of order, coarse steps);
``tfnas-small``, the committed ground-truth table (bench/data). No timing: the figures are
exact, and the same on any machine. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import ROOT, source_of

WORKER = r"""
import json, random, sys, tempfile
from pathlib import Path
import torch
sys.path.insert(0, sys.argv[1])  # the repository, for the tests' tiny space and meter
from tests.test_latency import TINY_SPACE, CountingMeter
from tfnas.latency.build import build_table
from tfnas.latency.table import latency_range, load_table
from tfnas.nn.supernet import Supernet
from tfnas.search.config import SearchConfig
from tfnas.search.derive import derive_for_target
from tfnas.space import load_space, parse_space

draws = int(sys.argv[2])

def noisy():
    space = parse_space(TINY_SPACE, "tiny.yaml")
    folder = Path(tempfile.mkdtemp())
    build_table(space, CountingMeter(), folder / "lut.json", width_step=4, progress=False)
    data = json.loads((folder / "lut.json").read_text())
    rng = random.Random(0)
    for knots in data["entries"].values():
        factor = rng.uniform(0.5, 1.5)
        for width in knots:
            knots[width] *= factor
    (folder / "lut.json").write_text(json.dumps(data))
    return space, load_table(folder / "lut.json", space)

def small():
    space = load_space("tfnas-small")
    return space, load_table(Path(sys.argv[1]) / "bench/data/tfnas-small-cpu-lut.json", space)

out = {}
for name, make in (("noisy", noisy), ("tfnas-small", small)):
    space, table = make()
    r = latency_range(space, table)
    net = Supernet(space, 10)
    misses = []
    for i in range(draws):
        target = r.fastest_ms + (0.025 + 0.95 * (i % 20) / 19) * (r.slowest_ms - r.fastest_ms)
        g = torch.Generator().manual_seed(i)
        with torch.no_grad():
            for p in list(net.alphas) + list(net.betas):
                p.copy_(torch.randn(p.shape, generator=g))
        config = SearchConfig(space=space.name, lut="-", target_ms=target)
        arch = derive_for_target(net, space, table, config)[0]
        misses.append(abs(table.predict(space, arch) / target - 1) * 100)
    misses.sort()
    out[name] = {
        "draws": len(misses),
        "median_pct": misses[len(misses) // 2],
        "p90_pct": misses[int(0.9 * len(misses))],
        "worst_pct": misses[-1],
        "over_1pct": sum(m > 1 for m in misses),
    }
print(json.dumps(out))
"""


def reach(src: Path, draws: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(ROOT), str(draws)],
        env={**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="3fa559d")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = {"command": "python " + " ".join(sys.argv), "draws": args.draws}
    result["this tree"] = reach(ROOT / "src", args.draws)
    with source_of(args.base) as base:
        result[f"base {args.base}"] = reach(base, args.draws)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
