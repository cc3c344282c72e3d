from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tfnas.cli import main
from tfnas.space import load_space

# deterministic cuBLAS (exact-resume tests on a GPU) must be chosen before its first use
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

REPO = Path(__file__).resolve().parents[1]
OFFICIAL_LUTS = REPO.parent / "shared" / "data" / "tfnas-official-luts"


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(capsys):
    """Run the tfnas command in-process; returns exit code, stdout and stderr."""

    def run(*argv: str) -> CliResult:
        capsys.readouterr()  # drop what earlier API calls in the test printed
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse errors
            code = exc.code
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def assert_user_error(result: CliResult, *fragments: str) -> None:
    """Exit status 2, one sentence on stderr, no traceback, nothing on stdout."""
    assert result.code == 2, (result.code, result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("tfnas: error: ") and lines[0].endswith("."), lines[0]
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="session")
def imagenet():
    return load_space("tfnas-imagenet")


@pytest.fixture(scope="session")
def small():
    return load_space("tfnas-small")


@pytest.fixture
def official_gpu_table():
    path = OFFICIAL_LUTS / "latency_gpu.json"
    if not path.is_file():
        pytest.skip(f"{path} is not laid out beside the project")
    return json.loads(path.read_text())
