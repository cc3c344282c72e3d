"""How long ``tfnas --help`` takes, this tree against an earlier commit, in one run.

Usage: python bench/cli_startup.py [--base 71db5d7] [--repeats 5] [--args "--help"]

Checks the base commit out into a temporary git worktree and times ``python -m tfnas ARGS``
there and here alternately (the same interpreter and installed packages; only the package's
source differs, put first on the path), so that a slow spell of the machine touches both
alike. Prints JSON: every time, the medians and their ratio, and which modules of torch and
torchvision the command imported here.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, run_tfnas, source_of


def timed_run(src: Path, args: list[str]) -> float:
    started = time.perf_counter()
    run_tfnas(src, args, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def heavy_imports(src: Path, args: list[str]) -> list[str]:
    """The heavy packages the command imports (torch, torchvision, numpy, scipy, onnx)."""
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['tfnas', *{args!r}]\n"
        "try:\n    runpy.run_module('tfnas', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = ('torch', 'torchvision', 'numpy', 'scipy', 'onnx', 'onnxruntime', 'matplotlib')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=True,
        cwd=src.parent,
    )
    return json.loads(out.stderr.strip().splitlines()[-1].replace("'", '"'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="71db5d7", help="the commit to compare against")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--args", default="--help", help="the tfnas command line to time")
    args = parser.parse_args()
    command = shlex.split(args.args)
    here = ROOT / "src"
    with source_of(args.base) as base:
        timed_run(here, command), timed_run(base, command)  # warm the file cache
        times: dict[str, list[float]] = {"here": [], "base": []}
        for _ in range(args.repeats):
            times["here"].append(timed_run(here, command))
            times["base"].append(timed_run(base, command))
        imported = heavy_imports(here, command)
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(
        json.dumps(
            {
                "command": "python bench/cli_startup.py " + " ".join(sys.argv[1:]),
                "timed": ["tfnas", *command],
                "base": args.base,
                "seconds": times,
                "median_seconds": medians,
                "base_over_here": medians["base"] / medians["here"],
                "heavy_modules_imported_here": imported,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
