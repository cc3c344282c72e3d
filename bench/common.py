"""What several benches share: an earlier commit's source checked out beside this one, and a
command run with a given tree's source first on the path, so that two versions of tfnas
are compared in one run, on the same interpreter and packages, at the same moments of the
machine."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def source_of(revision: str) -> Iterator[Path]:
    """The ``src`` folder of ``revision``, checked out into a temporary git worktree that is
    removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="tfnas-base-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), revision],
            check=True,
            capture_output=True,
        )
        try:
            yield tree / "src"
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )


def run_tfnas(src: Path, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """``python -m tfnas ARGS`` with the package imported from ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [sys.executable, "-m", "tfnas", *args], env=env, cwd=src.parent, check=True, **kwargs
    )
