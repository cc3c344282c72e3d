"""The package imports one way: no cycle among tfnas's modules, counting every import in a
module (those inside functions too, so that a cycle cannot hide in a late import)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

SRC = REPO / "src"


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the tfnas modules it imports anywhere in its text. Implicit imports of
    parent packages are not edges (every module would then sit in a cycle with the package
    root that re-exports it)."""
    files = {_module_name(p, src): p for p in sorted((src / "tfnas").rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                # `from pkg import mod` imports the module pkg.mod where there is one
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                ]
            else:
                continue
            edges.update(t for t in targets if t in files and t != name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# The package's layers, bottom up (docs/architecture.md): a module may import from its own
# layer or one below it, never from one above.
LAYERS = (
    ("errors", "options", "checks", "io", "schedules", "text", "schema"),
    ("search.config", "train_config", "pipeline_config"),
    ("block", "space", "arch_schema", "arch"),
    ("nn", "nn.blocks", "nn.network", "nn.supernet", "nn.batchnorm", "complexity", "export"),
    ("data", "loader"),
    ("latency", "latency.table", "latency.drift", "latency.jobs", "latency.journal",
     "latency.measure", "latency.plan", "latency.external", "latency.build", "latency.meters",
     "latency.check", "latency.official", "latency.profile", "latency.policy",
     "latency.settings", "latency.stability", "latency.table_schema", "latency.plan_schema"),
    ("rundir", "distributed", "precision", "memory", "engine"),
    ("search", "search.sampling", "search.steps", "search.elastic", "search.projection",
     "search.selection", "search.path_score", "search.derive", "search.searcher"),
    ("train", "evaluation", "inspection", "pipeline_summary", "pipeline", "sweep", "report",
     "report.sections", "report.page", "report.figures"),
    ("cli.output", "cli.arguments"),
    ("cli.inspect", "cli.lut", "cli.runs", "cli.workflows"),
    ("cli", "runners", "runners.template", "runners.ort", "runners.openvino", "__main__", ""),
)  # fmt: skip


def test_every_module_has_a_layer_and_imports_none_above_its_own():
    level = {
        ".".join(filter(None, ("tfnas", name))): i
        for i, names in enumerate(LAYERS)
        for name in names
    }
    graph = import_graph()
    assert sorted(set(graph) - set(level)) == []  # a new module is given its layer
    upward = [(m, t) for m, targets in graph.items() for t in targets if level[t] > level[m]]
    assert sorted(upward) == []


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "tfnas.latency.jobs" in graph["tfnas.latency.build"]  # the graph sees imports
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path):
    package = tmp_path / "tfnas"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import x\n")
    (package / "b.py").write_text("def f():\n    from . import a\n")
    (package / "c.py").write_text("import tfnas.a\n")
    assert cycles(import_graph(tmp_path)) == [["tfnas.a", "tfnas.b"]]


def test_the_command_line_parser_is_built_without_torch():
    # what makes `tfnas --help` fast (bench/cli_startup.py times it): torch is loaded by the
    # command that needs it, not by the parser
    probe = (
        "import sys\n"
        "from tfnas.cli import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = [m for m in ('torch', 'torchvision', 'numpy', 'scipy') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == ""
