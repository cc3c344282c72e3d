"""Every command of the tfnas CLI fed bad input, as a user could type it: each numeric option
with 0, -1, NaN and infinity, each path option with a missing path, a directory, an empty
file and a file of garbage, and with the valid input itself under a hostile name (a folder
named with ``;``, ``$(...)``, backticks and quotes) and, for a JSON or YAML file, with a key
given twice; each on an otherwise valid command line of a tiny space. A case that creates
the file ``INJECTED`` anywhere is a finding.

A case passes when tfnas either refuses it with one sentence and exit status 2, leaving no
output behind, or runs it (exit 0) because the value is valid. Anything else (a traceback,
another exit status, several lines, a refused run that left files) is a finding. Prints a
JSON summary (cases, outcomes, findings) and, with ``--markdown FILE``, writes the table
that docs/errors.md carries.

Usage: python bench/input_sweep.py [--only COMMAND,...] [--markdown FILE]
(runs in-process, a few minutes on 2 cores; tables are timed with a fast policy).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' tiny space and counting meter

from tests.test_latency import FAST  # noqa: E402
from tests.tiny_world import make_tiny_world  # noqa: E402
from tfnas.cli import build_parser, main  # noqa: E402
from tfnas.latency.policy import TimingPolicy  # noqa: E402

NUMBERS = ("0", "-1", "nan", "inf")
OUTCOMES = ("refused", "ran", "finding")
PATH_METAVARS = ("json", "dir", "file", "yaml", ".pt", "run_dir", "lut")
PATH_DESTS = {"lut", "out", "arch", "weights", "space", "data", "data_root", "file", "run_dir",
              "resume"}  # fmt: skip


def make_world(root: Path) -> dict[str, str]:
    """The tests' tiny world, under the short names the command lines below use."""
    w = make_tiny_world(root)
    # a measurement plan and one latency per entry, for lut assemble
    from tfnas.latency.plan import write_plan
    from tfnas.space import load_space

    manifest = write_plan(load_space(w["space"]), root / "plan", width_step=8,
                          space_source=w["space"])  # fmt: skip
    lines = [json.dumps({"job": e["job"], "ms": 0.5}) for e in manifest.entries]
    (root / "measured.jsonl").write_text("\n".join(lines) + "\n")
    return {
        "S": w["space"],
        "L": w["lut"],
        "D": w["data"],
        "A": w["arch"],
        "T": f"{w['target']:.4f}",
        "W": w["weights"],
        "R": str(root / "train"),
        "P": str(root / "plan"),
        "M": str(root / "measured.jsonl"),
    }


def base_commands(w: dict[str, str]) -> dict[str, list[str]]:
    """A valid command line per command ({OUT}: a fresh output path per case)."""
    tiny_search = ["--epochs", "2", "--batch-size", "8"]
    pipeline = ["--space", w["S"], "--lut", w["L"], "--data", w["D"], "--search-epochs", "2",
                "--search-batch-size", "8", "--train-epochs", "1", "--train-batch-size", "8",
                "--calibrate-archs", "0"]  # fmt: skip
    return {
        "spaces": ["spaces"],
        "space show": ["space", "show", w["S"]],
        "arch random": ["arch", "random", "--space", w["S"], "--out", "{OUT}.json"],
        "info": ["info", w["A"], "--space", w["S"]],
        "data show": ["data", "show", w["D"], "--space", w["S"]],
        "lut build": [
            "lut",
            "build",
            "--space",
            w["S"],
            "--width-step",
            "8",
            "--out",
            "{OUT}.json",
        ],  # fmt: skip
        "lut range": ["lut", "range", "--lut", w["L"], "--space", w["S"]],
        "lut check": ["lut", "check", "--lut", "{LUTCOPY}", "--space", w["S"], "--archs", "3"],
        "profile": [
            "profile",
            w["A"],
            "--space",
            w["S"],
            "--lut",
            w["L"],
            "--rounds",
            "2",
            "--gap",
            "0",
        ],  # fmt: skip
        "search": [
            "search",
            "--space",
            w["S"],
            "--lut",
            w["L"],
            "--data",
            w["D"],
            "--target-ms",
            w["T"],
            *tiny_search,
            "--out",
            "{OUT}",
        ],  # fmt: skip
        "train": [
            "train",
            w["A"],
            "--space",
            w["S"],
            "--data",
            w["D"],
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--out",
            "{OUT}",
        ],  # fmt: skip
        "eval": ["eval", w["A"], "--space", w["S"], "--weights", w["W"], "--data", w["D"]],
        "export": [
            "export",
            w["A"],
            "--space",
            w["S"],
            "--weights",
            w["W"],
            "--format",
            "onnx",
            "--out",
            "{OUT}.onnx",
        ],  # fmt: skip
        "pipeline": ["pipeline", *pipeline, "--target-ms", w["T"], "--out", "{OUT}"],
        "sweep": ["sweep", *pipeline, "--targets", w["T"], "--out", "{OUT}"],
        "report": ["report", w["R"], "--out", "{OUT}"],
        "lut plan": ["lut", "plan", "--space", w["S"], "--width-step", "8", "--out", "{OUT}"],
        "lut assemble": [
            "lut",
            "assemble",
            "--plan",
            w["P"],
            "--measurements",
            w["M"],
            "--out",
            "{OUT}.json",
        ],  # fmt: skip
    }


def leaf_parsers(parser: argparse.ArgumentParser, path: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from leaf_parsers(sub, f"{path} {name}".strip())
            return
    yield path, parser


def is_path_option(action: argparse.Action) -> bool:
    meta = str(action.metavar or "").lower()
    return action.dest in PATH_DESTS or any(m in meta for m in PATH_METAVARS)


def replace_option(argv: list[str], option: str, value: str) -> list[str]:
    """``argv`` with ``option`` set to ``value`` (replaced where present, else added)."""
    if option in argv:
        i = argv.index(option)
        return argv[: i + 1] + [value] + argv[i + 2 :]
    return [*argv, f"{option}={value}"]


def replace_positional(argv: list[str], old: str, value: str) -> list[str]:
    return [value if a == old else a for a in argv]


def cases(world: dict[str, str], bad: dict[str, str]):
    """(command, what, argv) for every bad input of every command."""
    bases = base_commands(world)
    for name, parser in leaf_parsers(build_parser()):
        base = bases.get(name)
        if base is None:
            continue
        for action in parser._actions:
            if not action.option_strings:
                if action.dest in ("arch", "data", "run_dir", "space", "file") and action.dest:
                    positional = {"arch": world["A"], "data": world["D"], "run_dir": world["R"],
                                  "space": world["S"]}.get(action.dest)  # fmt: skip
                    if positional and positional in base:
                        for what, value in {**bad, **variants(positional)}.items():
                            yield (
                                name,
                                f"{action.dest.upper()} = {what}",
                                replace_positional(base, positional, value),
                            )
                continue
            option = action.option_strings[-1]
            if action.nargs == 0 or option in ("--help",):
                continue
            if action.type in (int, float) or getattr(action.type, "kind", None) in (int, float):
                for value in NUMBERS:
                    yield name, f"{option} {value}", replace_option(base, option, value)
            elif is_path_option(action) and not action.choices:
                valid = base[base.index(option) + 1] if option in base else None
                for what, value in {**bad, **variants(valid)}.items():
                    yield name, f"{option} = {what}", replace_option(base, option, value)


# a folder name with every shell metacharacter a name can hold
HOSTILE = "inj;touch INJECTED;x $(touch INJECTED) `touch INJECTED` 'q"


def variants(valid: str | None) -> dict[str, str]:
    """Inputs made from a valid one: the same file (or folder, or output) under a hostile
    name, and, for a JSON or YAML file, the same file with a key given twice. Resolved per
    case by :func:`materialise`."""
    if valid is None or not ("{OUT}" in valid or Path(_path_of(valid)).exists()):
        return {}  # a built-in name (a space, a dataset): no file to rename
    out = {"a hostile name": f"{{HOSTILE}}{valid}"}
    if Path(valid).suffix in (".json", ".yaml") and Path(valid).is_file():
        out["a key given twice"] = f"{{DUPKEY}}{valid}"
    return out


def _path_of(value: str) -> str:
    """The path in a data source ``NAME:DIR``, else ``value`` itself."""
    _, sep, rest = value.partition(":")
    return rest if sep and not Path(value).exists() and Path(rest).exists() else value


def materialise(value: str, case: Path) -> str:
    """The path a {HOSTILE} or {DUPKEY} input stands for, made under ``case``."""
    import shutil

    for marker in ("{HOSTILE}", "{DUPKEY}"):
        if not value.startswith(marker):
            continue
        valid = value[len(marker) :]
        prefix = valid[: len(valid) - len(_path_of(valid))]  # "fashion-mnist:" or ""
        valid = valid[len(prefix) :]
        source = Path(valid.replace("{OUT}", "out"))
        target = case / (HOSTILE if marker == "{HOSTILE}" else "dup") / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if "{OUT}" in valid:  # an output: a hostile folder to write into
            return str(case / HOSTILE / Path(valid).name.replace("{OUT}", "out"))
        if source.is_dir():
            shutil.copytree(source, target)
        elif marker == "{HOSTILE}":
            shutil.copy2(source, target)
        elif source.suffix == ".json":  # the first key of the top object twice
            text = source.read_text()
            key = text.split('"', 2)[1]
            target.write_text(text.replace("{", f'{{"{key}": null, ', 1))
        else:  # YAML: the first top-level key twice
            text = source.read_text().lstrip("\n")
            target.write_text(text.splitlines()[0] + "\n" + text)
        return prefix + str(target)
    return value


def run_case(argv: list[str], out: Path) -> dict:
    argv = [a.replace("{OUT}", str(out)) for a in argv]
    stdout, stderr = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:  # a traceback a user would see
        code = "exception"
        stderr.write(f"{type(exc).__name__}: {exc}\n" + traceback.format_exc(limit=3))
    err = stderr.getvalue().strip()
    lines = [x for x in err.splitlines() if not x.startswith("note: ")]
    one_sentence = (
        len(lines) == 1 and lines[0].startswith("tfnas: error: ") and lines[0].endswith(".")
    )
    left = sorted(
        str(p) for p in out.parent.glob(out.name + "*")
    )  # what the case left under its output name
    if code == 2 and one_sentence and not left:
        outcome = "refused"
    elif code == 0:
        outcome = "ran"
    else:
        outcome = "finding"
    return {
        "argv": argv,
        "exit": code,
        "outcome": outcome,
        "message": lines[-1] if lines else "",
        "left_behind": left if code != 0 else [],
        "seconds": round(time.perf_counter() - started, 2),
    }


def render_markdown(results: list[dict]) -> str:
    """One row per command and option: the inputs tried, grouped by outcome, and a message
    tfnas gave (the first refusal's, else the finding's)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        option, _, value = r["input"].partition(" = " if " = " in r["input"] else " ")
        groups.setdefault((r["command"], option), []).append({**r, "value": value})
    rows = [
        "| command | option | refused | ran | finding | a message |",
        "|---|---|---|---|---|---|",
    ]
    for (command, option), cases in groups.items():
        by = {k: [c["value"] for c in cases if c["outcome"] == k] for k in OUTCOMES}
        shown = next(
            (c["message"] for c in cases if c["outcome"] == "finding"),
            next((c["message"] for c in cases if c["outcome"] == "refused"), ""),
        )
        shown = shown.removeprefix("tfnas: error: ").replace("|", "\\|")
        if len(shown) > 140:
            shown = shown[:137] + "..."
        cells = [", ".join(by[k]) for k in OUTCOMES]
        rows.append(f"| {command} | `{option}` | {' | '.join(cells)} | {shown} |")
    return "\n".join(rows) + "\n"


def main_sweep() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="sweep these commands only (e.g. 'info,lut build')")
    parser.add_argument("--markdown", type=Path, help="write the table of cases here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        world = make_world(root / "world")
        # tables timed in a few calls from here on: the sweep checks handling, not timing
        fast = {
            k: getattr(FAST, k)
            for k in ("warmup_calls", "warmup_seconds", "min_calls", "max_calls",
                      "min_seconds", "rounds")
        }  # fmt: skip
        # (as the defaults of every TimingPolicy made from here on, wherever it is made)
        TimingPolicy.__init__.__defaults__ = tuple(
            fast.get(f.name, f.default) for f in dataclasses.fields(TimingPolicy)
        )
        # each case gets its own bad paths: an output written by one case (say --out into
        # the garbage file) must not make the next case's input valid
        bad = {
            "missing": str(root / "case{CASE}" / "missing" / "path"),
            "a directory": str(root / "case{CASE}" / "a-dir"),
            "an empty file": str(root / "case{CASE}" / "empty"),
            "a garbage file": str(root / "case{CASE}" / "garbage"),
        }
        results = []
        for i, (command, what, argv) in enumerate(cases(world, bad)):
            if args.only and command not in args.only.split(","):
                continue
            case = root / f"case{i}"
            (case / "a-dir").mkdir(parents=True)
            (case / "empty").write_text("")
            (case / "garbage").write_text("{not: json, nor: [yaml\n\x00\x01")
            lut_copy = case / "lut-copy.json"
            lut_copy.write_text(Path(world["L"]).read_text())
            argv = [a.replace("{LUTCOPY}", str(lut_copy)).replace("{CASE}", str(i)) for a in argv]
            argv = [materialise(a, case) for a in argv]
            result = run_case(argv, root / "outs" / f"case{i}")
            injected = [*root.rglob("INJECTED"), *Path.cwd().glob("INJECTED")]
            if injected:  # a file name ran a command: the worst finding there is
                result.update(outcome="finding", message=f"created {injected[0]}")
                for path in injected:
                    path.unlink()
            result.update(command=command, input=what)
            results.append(result)
            print(f"{command:12s} {what:32s} {result['outcome']}", file=sys.stderr, flush=True)
    for r in results:  # paths of the deleted temporary folder say nothing; keep the shape
        r["argv"] = " ".join(r["argv"]).replace(str(root), "$TMP")
        r["message"] = r["message"].replace(str(root), "$TMP")
        r["left_behind"] = [p.replace(str(root), "$TMP") for p in r["left_behind"]]
    findings = [r for r in results if r["outcome"] == "finding"]
    accepted_non_finite = [
        r for r in results
        if r["outcome"] == "ran" and any(v in r["input"] for v in ("nan", "inf"))
    ]  # fmt: skip
    summary = {
        "cases": len(results),
        "refused": sum(r["outcome"] == "refused" for r in results),
        "ran": sum(r["outcome"] == "ran" for r in results),
        "findings": findings,
        "ran_with_nan_or_inf": [f"{r['command']} {r['input']}" for r in accepted_non_finite],
        "seconds": round(sum(r["seconds"] for r in results), 1),
    }
    summary["cases_tried"] = results
    if args.markdown:
        args.markdown.write_text(render_markdown(results))
    print(json.dumps(summary, indent=2, default=lambda x: None if math.isnan(x) else x))


if __name__ == "__main__":
    main_sweep()
