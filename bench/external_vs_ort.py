"""The external-runner route against the in-process one, on the same machine.

Builds the tfnas-small table twice: with ``--device ort-cpu`` (ONNX Runtime sessions in the
tfnas process) and with ``--device external --runner 'python -m tfnas.runners.ort {models}
--threads 1'`` (the same runtime in processes of its own, through the runner protocol).
Then compares them entry by entry and checks both on the same 30 random networks timed
through the runner. Prints JSON.

Usage: python bench/external_vs_ort.py --out runs/external [--archs 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNNER = f"{sys.executable} -m tfnas.runners.ort {{models}} --threads 1"


def tfnas(*args: str) -> str:
    """Run a tfnas command; its stdout (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", "tfnas", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"tfnas {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--space", default="tfnas-small")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ort, external = args.out / "ort-cpu.json", args.out / "external.json"
    seconds = {}
    for path, extra in (
        (ort, ["--device", "ort-cpu", "--threads", "1"]),
        (external, ["--device", "external", "--runner", RUNNER, "--device-name", "ort-cpu"]),
    ):
        if not path.exists():
            started = time.perf_counter()
            tfnas("lut", "build", "--space", args.space, *extra, "--out", str(path))
            seconds[path.stem] = round(time.perf_counter() - started, 1)
    a, b = (json.loads(p.read_text()) for p in (ort, external))
    ratios = [
        b["entries"][key][width] / ms
        for key, knots in a["entries"].items()
        for width, ms in knots.items()
    ]
    differences = sorted(abs(r - 1) * 100 for r in ratios)
    checks = {}
    for path in (ort, external):
        result = json.loads(
            tfnas(
                "lut",
                "check",
                "--lut",
                str(path),
                "--archs",
                str(args.archs),
                "--runner",
                RUNNER,
                "--json",
            )  # fmt: skip
        )
        checks[path.stem] = {k: result[k] for k in ("before", "drift") if k in result}
    print(
        json.dumps(
            {
                "command": "python bench/external_vs_ort.py " + " ".join(sys.argv[1:]),
                "runner": RUNNER,
                "build_seconds": seconds,
                "entries": len(ratios),
                "base_ms": {"ort-cpu": a["base"], "external": b["base"]},
                "entry_difference_pct": {
                    "median": statistics.median(differences),
                    "p90": differences[int(0.9 * (len(differences) - 1))],
                    "max": differences[-1],
                    "external_over_ort_median_ratio": statistics.median(ratios),
                },
                "checked_through_the_runner": checks,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
