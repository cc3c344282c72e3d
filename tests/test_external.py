"""Latency tables measured outside tfnas: plans, assembly and the external-runner protocol."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tfnas.latency.external import ExternalRunner, RunnerError, build_external_table
from tfnas.latency.jobs import plan_jobs
from tfnas.latency.plan import assemble_table, load_manifest, read_measurements, write_plan
from tfnas.latency.table import LatencyTableError, load_table
from tfnas.space import load_space

from .conftest import assert_user_error
from .test_data import write_idx_dataset
from .test_latency import TINY_SPACE

# A stand-in for a device's timing tool: the "latency" of a model is its file size in
# hundreds of kB (deterministic), reported per model. Misbehaviours on demand.
FAKE_RUNNER = textwrap.dedent(
    """
    import json, os, sys, time
    mode, models = sys.argv[1], sys.argv[2:]
    for path in models:
        flaky = mode.startswith("flaky:") and os.path.exists(mode[6:]) and "head" in path
        if mode.startswith("kill:") and os.path.exists(mode[5:]) and "head" in path:
            os.kill(os.getppid(), 9)  # the build itself is killed, as by kill -9
            time.sleep(5)
        if mode == "fail" or flaky:
            print("cannot open the device", file=sys.stderr); sys.exit(3)
        if mode == "hang":
            time.sleep(30)
        if mode == "garbage":
            print("benchmark done, all good"); continue
        ms = os.path.getsize(path) / 1e5
        print("some log line")
        print(json.dumps({"model": path, "ms": -ms if mode == "negative" else ms}))
    """
)


@pytest.fixture
def setup(tmp_path):
    space_file = tmp_path / "tiny.yaml"
    space_file.write_text(TINY_SPACE)
    runner = tmp_path / "fake_runner.py"
    runner.write_text(FAKE_RUNNER)
    return tmp_path, load_space(space_file), str(space_file), f"{sys.executable} {runner}"


def test_plan_then_an_external_loop_then_assemble_equals_the_runner_flow(setup, cli):
    tmp_path, space, space_file, runner = setup
    result = cli("lut", "plan", "--space", space_file, "--width-step", "8",
                 "--out", tmp_path / "plan")  # fmt: skip
    assert result.code == 0, result.err
    manifest = load_manifest(tmp_path / "plan")
    assert [e["job"] for e in manifest.entries] == [j.name for j in plan_jobs(space, 8)]
    for entry in manifest.entries:
        assert manifest.model_path(entry).is_file() and entry["input_shape"][0] == 1
    # "measured anywhere": the fake runner over every model, its lines as JSON lines
    lines = []
    for entry in manifest.entries:
        ms = manifest.model_path(entry).stat().st_size / 1e5
        lines.append(json.dumps({"job": entry["job"], "ms": ms}))
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    result = cli("lut", "assemble", "--plan", tmp_path / "plan", "--measurements",
                 tmp_path / "m.jsonl", "--out", tmp_path / "assembled.json")  # fmt: skip
    assert result.code == 0, result.err
    result = cli("lut", "build", "--space", space_file, "--width-step", "8", "--device",
                 "external", "--runner", f"{runner} ok {{model}}", "--out",
                 tmp_path / "built.json")  # fmt: skip
    assert result.code == 0, result.err
    assembled = json.loads((tmp_path / "assembled.json").read_text())
    built = json.loads((tmp_path / "built.json").read_text())
    assert built["meta"]["rounds"] == 3 and built["meta"]["build_seconds"] >= 0
    assert built["meta"]["reference"]["measured_at"] is not None
    assert _without_build_record(assembled) == _without_build_record(built)
    table = load_table(tmp_path / "built.json", space)
    assert table.device["device"] == "external" and table.meta["reference"]["ms"] > 0
    assert not (tmp_path / "built.json.plan").exists()
    assert not (tmp_path / "built.json.partial").exists()
    # a CSV of the same measurements, entries named by file, gives the same table
    rows = ["file,ms"] + [
        f"{e['file']},{manifest.model_path(e).stat().st_size / 1e5}" for e in manifest.entries
    ]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    csv_table = assemble_table(
        manifest, read_measurements(tmp_path / "m.csv", manifest), table.device
    )
    assert _without_build_record(csv_table.to_dict()) == _without_build_record(table.to_dict())


def test_a_batched_runner_gives_the_same_table(setup):
    tmp_path, space, _, runner = setup
    one = build_external_table(space, ExternalRunner(f"{runner} ok {{model}}"),
                               tmp_path / "one.json", width_step=8)  # fmt: skip
    many = build_external_table(space, ExternalRunner(f"{runner} ok {{models}}"),
                                tmp_path / "many.json", width_step=8)  # fmt: skip
    assert _without_build_record(one.to_dict()) == _without_build_record(many.to_dict())


def _without_build_record(table: dict) -> dict:
    """A table without what records its build (passes, time taken, when the reference
    network ran): the same latencies give the same rest, by whichever route."""
    meta = {k: v for k, v in table["meta"].items() if k not in ("rounds", "build_seconds")}
    meta["reference"] = {k: v for k, v in meta["reference"].items() if k != "measured_at"}
    return {**table, "meta": meta}


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda lines: lines[:-1], "lacks 1 of the plan's"),
        (lambda lines: lines + lines[:1], "a second time (first on line 1)"),
        (lambda lines: [lines[0].replace('"ms": ', '"ms": -')] + lines[1:], "line 1"),
        (lambda lines: [lines[0].replace('"ms": ', '"ms": "nan", "x": ')] + lines[1:], "finite"),
        (lambda lines: ['{"job": "nope@3", "ms": 1.0}'] + lines[1:], "'nope@3'"),
        (lambda lines: ["{broken"] + lines[1:], "line 1 is not a JSON object"),
    ],
)
def test_assemble_refuses_bad_measurements_naming_the_line(setup, cli, edit, fragment):
    tmp_path, space, space_file, _ = setup
    manifest = write_plan(space, tmp_path / "plan", width_step=8, space_source=space_file)
    lines = [json.dumps({"job": e["job"], "ms": 0.5}) for e in manifest.entries]
    (tmp_path / "m.jsonl").write_text("\n".join(edit(lines)) + "\n")
    result = cli("lut", "assemble", "--plan", tmp_path / "plan", "--measurements",
                 tmp_path / "m.jsonl", "--out", tmp_path / "t.json")  # fmt: skip
    assert_user_error(result, fragment)
    assert not (tmp_path / "t.json").exists()


def test_a_tampered_plan_is_refused(setup, cli):
    tmp_path, space, space_file, _ = setup
    manifest = write_plan(space, tmp_path / "plan", width_step=8, space_source=space_file)
    manifest.model_path(manifest.entries[3]).write_bytes(b"changed")
    with pytest.raises(LatencyTableError, match="checksum"):
        load_manifest(tmp_path / "plan")
    # the folder of one plan does not take another's models
    with pytest.raises(LatencyTableError, match="other settings"):
        write_plan(space, tmp_path / "plan", width_step=8, batch_size=4)


@pytest.mark.parametrize(
    "mode, fragment",
    [
        ("fail", "exited with status 3 (cannot open the device)"),
        ("garbage", "printed no JSON line"),
        ("negative", "positive, finite number"),
        ("hang", "did not finish within 1 s"),
    ],
)
def test_a_misbehaving_runner_is_one_sentence_naming_the_model(setup, cli, mode, fragment):
    tmp_path, _, space_file, runner = setup
    result = cli("lut", "build", "--space", space_file, "--width-step", "8", "--device",
                 "external", "--runner", f"{runner} {mode} {{model}}", "--runner-timeout", "1",
                 "--out", tmp_path / "t.json")  # fmt: skip
    assert_user_error(result, fragment, "models/stem.onnx")
    assert not (tmp_path / "t.json").exists()


def test_an_external_build_resumes_after_a_failure_keeping_what_it_measured(setup, cli):
    tmp_path, space, space_file, runner = setup
    flag = tmp_path / "device-unplugged"
    flag.touch()
    flaky = f"{runner} flaky:{flag} {{model}}"
    argv = ["lut", "build", "--space", space_file, "--width-step", "8", "--device", "external",
            "--runner", flaky, "--out", tmp_path / "t.json"]  # fmt: skip
    # the runner fails on the second model (the head): the stem's latency is kept
    assert_user_error(cli(*argv), "models/head.onnx", "exited with status 3")
    journal = (tmp_path / "t.json.partial").read_text().splitlines()
    assert [json.loads(x)["job"] for x in journal[1:]] == ["stem"]
    assert_user_error(cli(*argv), "--resume")  # a partial build is not overwritten
    # another runner command may measure differently: refused, the journal kept
    other = [a if a != flaky else f"{runner} ok {{model}}" for a in argv]
    assert_user_error(cli(*other, "--resume"), "other settings")
    flag.unlink()  # the device is back: the same command resumes and finishes
    result = cli(*argv, "--resume")
    assert result.code == 0, result.err
    assert load_table(tmp_path / "t.json", space).device["device"] == "external"
    assert not (tmp_path / "t.json.partial").exists()


def test_a_killed_external_build_resumes(setup):
    tmp_path, space, space_file, runner = setup
    flag = tmp_path / "kill-now"
    flag.touch()
    command = f"{runner} kill:{flag} {{model}}"
    argv = [sys.executable, "-m", "tfnas", "lut", "build", "--space", space_file,
            "--width-step", "8", "--device", "external", "--runner", command,
            "--out", str(tmp_path / "t.json")]  # fmt: skip
    killed = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert killed.returncode == -9
    journal = (tmp_path / "t.json.partial").read_text().splitlines()
    assert [json.loads(x)["job"] for x in journal[1:]] == ["stem"]
    flag.unlink()
    resumed = subprocess.run([*argv, "--resume"], capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert load_table(tmp_path / "t.json", space).meta["measurements"] == len(plan_jobs(space, 8))


def test_runner_commands_are_checked(setup):
    with pytest.raises(RunnerError, match="neither"):
        ExternalRunner("benchmark_model --graph=model.tflite")
    with pytest.raises(RunnerError, match="no such program"):
        list(ExternalRunner("/no/such/tool {model}").measure([Path("x.onnx")]))


def test_check_and_profile_time_networks_through_the_runner(setup, cli):
    tmp_path, space, space_file, runner = setup
    command = f"{runner} ok {{models}}"
    build_external_table(space, ExternalRunner(command), tmp_path / "t.json", width_step=8,
                         space_source=space_file)  # fmt: skip
    result = cli("lut", "check", "--lut", tmp_path / "t.json", "--space", space_file,
                 "--archs", "3", "--json")  # fmt: skip
    assert_user_error(result, "--runner")
    result = cli("lut", "check", "--lut", tmp_path / "t.json", "--space", space_file,
                 "--archs", "3", "--runner", command, "--json")  # fmt: skip
    assert result.code == 0, result.err
    check = result.json()
    assert len(check["rows"]) == 3 and all(r["measured_ms"] > 0 for r in check["rows"])
    arch = tmp_path / "arch.json"
    cli("arch", "random", "--space", space_file, "--out", arch)
    result = cli("profile", arch, "--space", space_file, "--lut", tmp_path / "t.json",
                 "--device", "external", "--runner", command, "--rounds", "2", "--gap", "0",
                 "--json")  # fmt: skip
    assert result.code == 0, result.err
    assert result.json()["measured_ms"] > 0 and result.json()["calls_timed"] == 2


@pytest.mark.slow
def test_the_onnx_runtime_runner_times_models(setup):
    pytest.importorskip("onnxruntime")
    tmp_path, space, space_file, _ = setup
    manifest = write_plan(space, tmp_path / "plan", width_step=16, space_source=space_file)
    runner = ExternalRunner(f"{sys.executable} -m tfnas.runners.ort {{models}} --threads 1")
    files = [manifest.model_path(e) for e in manifest.entries[:4]]
    results = dict(runner.measure(files))
    assert set(results) == set(files) and all(0 < ms < 100 for ms in results.values())


def test_the_pipeline_builds_and_profiles_through_the_runner(setup, cli, monkeypatch):
    tmp_path, _, space_file, runner = setup
    monkeypatch.setenv("TFNAS_CACHE", str(tmp_path / "cache"))
    write_idx_dataset(tmp_path / "fm", n_train=60, n_test=20)
    command = f"{runner} ok {{models}}"
    data = f"fashion-mnist:{tmp_path / 'fm'}"
    flags = ["--space", space_file, "--lut", tmp_path / "lut.json", "--data", data,
             "--target-fraction", "0.5", "--calibrate-archs", "3", "--search-epochs", "2",
             "--search-warmup-epochs", "1", "--search-batch-size", "8", "--train-epochs", "1",
             "--train-batch-size", "8"]  # fmt: skip
    result = cli("pipeline", *flags, "--build-lut", "--runner", command,
                 "--out", tmp_path / "run", "--json")  # fmt: skip
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["lut"]["built"] and summary["lut"]["calibrated"]
    assert summary["measured_ms"] > 0
    assert load_table(tmp_path / "lut.json").device["device"] == "external"
    # the table's device can only be reached through a runner: without one, refused
    result = cli("pipeline", *flags, "--out", tmp_path / "run2")
    assert_user_error(result, "--runner")
    assert not (tmp_path / "run2").exists()


TEMPLATE = Path(__file__).parents[1] / "src" / "tfnas" / "runners" / "template.py"


def test_the_runner_template_imports_nothing_from_tfnas_and_keeps_its_timing_rule():
    import ast

    from tfnas.latency.policy import TimingPolicy
    from tfnas.options import DEFAULT_SCRUB_KIB
    from tfnas.runners import template

    tree = ast.parse(TEMPLATE.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "." for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(name.startswith(("tfnas", ".")) for name in imported - {"__future__"})
    policy = TimingPolicy()
    names = ("warmup_calls", "warmup_seconds", "min_calls", "max_calls", "min_seconds", "rounds")
    copied = {name: getattr(template, name.upper()) for name in names}
    assert copied == {name: getattr(policy, name) for name in copied}
    assert template.SCRUB_KIB == DEFAULT_SCRUB_KIB


@pytest.mark.slow
def test_the_runner_template_copied_elsewhere_builds_checks_and_profiles(setup, cli):
    pytest.importorskip("onnxruntime")
    tmp_path, _, space_file, _ = setup
    copy = tmp_path / "elsewhere" / "my_runner.py"
    copy.parent.mkdir()
    copy.write_text(TEMPLATE.read_text())
    command = f"{sys.executable} {copy} {{models}} --rounds 1"
    _build_check_profile(cli, tmp_path, space_file, command)
    # its output, as the protocol says: the path as given, the latency, the threads; a
    # model it cannot load named on stderr, with status 1
    manifest = write_plan(load_space(space_file), tmp_path / "plan", width_step=16)
    relative = str(manifest.model_path(manifest.entries[0]).relative_to(tmp_path))
    done = subprocess.run([sys.executable, copy, relative, "--rounds", "1"], cwd=tmp_path,
                          capture_output=True, text=True, check=False)  # fmt: skip
    line = json.loads(done.stdout)
    assert line["model"] == relative and line["ms"] > 0 and line["threads"] == 1
    done = subprocess.run([sys.executable, copy, "no/such.onnx"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 1 and "no/such.onnx" in done.stderr and not done.stdout


@pytest.mark.slow
def test_the_openvino_runner_builds_checks_and_profiles(setup, cli):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    tmp_path, _, space_file, _ = setup
    command = f"{sys.executable} -m tfnas.runners.openvino {{models}} --rounds 1"
    _build_check_profile(cli, tmp_path, space_file, command)


def _build_check_profile(cli, tmp_path: Path, space_file: str, command: str) -> None:
    table = tmp_path / "runner-lut.json"
    result = cli("lut", "build", "--space", space_file, "--width-step", "8", "--device",
                 "external", "--runner", command, "--out", table)  # fmt: skip
    assert result.code == 0, result.err
    assert load_table(table).meta["call_overhead"]["ms"] > 0
    assert load_table(table).device["threads"] == 1  # as the runner reported it
    result = cli("lut", "check", "--lut", table, "--space", space_file, "--archs", "3",
                 "--runner", command, "--json")  # fmt: skip
    assert result.code == 0, result.err
    assert all(r["measured_ms"] > 0 for r in result.json()["rows"])
    arch = tmp_path / "arch.json"
    cli("arch", "random", "--space", space_file, "--out", arch)
    result = cli("profile", arch, "--space", space_file, "--lut", table, "--device", "external",
                 "--runner", command, "--rounds", "2", "--gap", "0", "--json")  # fmt: skip
    assert result.code == 0, result.err
    assert result.json()["measured_ms"] > 0


def test_an_export_shows_its_progress_in_a_log_once_it_takes_a_while(capsys):
    from tfnas.latency.journal import counting_progress

    advance = counting_progress(20, "exported", None, quiet_seconds=0.0)
    for _ in range(20):
        advance(1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and lines[-1].startswith("exported 20/20, about 0 s to go")
    quiet = counting_progress(20, "exported", None)  # short work: nothing said
    for _ in range(20):
        quiet(1)
    assert capsys.readouterr().err == ""


# Hostile file names: every shell metacharacter a directory name can hold.
HOSTILE_DIRS = ["a b", "inj;touch INJECTED;x", "q'uote $(touch INJECTED) `touch INJECTED`"]


@pytest.mark.parametrize("form", ["plain", "sh -c", "sh -c quoted"])
def test_no_file_name_runs_shell_commands(setup, cli, monkeypatch, form):
    tmp_path, _, space_file, runner = setup
    monkeypatch.chdir(tmp_path)
    command = {
        "plain": f"{runner} ok {{model}}",
        "sh -c": f"sh -c '{runner} ok {{model}}'",
        "sh -c quoted": f"sh -c '{runner} ok \"{{model}}\"'",
    }[form]
    for name in HOSTILE_DIRS:
        (tmp_path / name).mkdir()
        out = tmp_path / name / "ext.json"
        result = cli("lut", "build", "--space", space_file, "--width-step", "16", "--device",
                     "external", "--runner", command, "--rounds", "1", "--out", out)  # fmt: skip
        assert result.code == 0, (name, result.err)
        assert load_table(out).meta["measurements"] > 0
    assert not list(tmp_path.rglob("INJECTED"))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting for its parent does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("ending", ["times out", "exits, its child holding stdout"])
def test_nothing_a_runner_starts_outlives_its_call(tmp_path, ending):
    pids = tmp_path / "pids"
    script = tmp_path / "runner.sh"
    finish = "sleep 60" if ending == "times out" else "echo '{\"ms\": 1.0}'"
    script.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {pids}\n{finish}\n")
    script.chmod(0o755)
    runner = ExternalRunner(f"{script} {{model}}", timeout_s=3)
    started = time.perf_counter()
    if ending == "times out":
        with pytest.raises(RunnerError, match="did not finish within 3 s"):
            list(runner.measure([tmp_path / "m.onnx"]))
    else:
        assert list(runner.measure([tmp_path / "m.onnx"])) == [(tmp_path / "m.onnx", 1.0)]
        assert time.perf_counter() - started < 2.5  # not held for the timeout
    child = int(pids.read_text())
    deadline = time.perf_counter() + 5
    while _alive(child) and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_failed_start_leaves_nothing_that_blocks_the_rerun(setup, cli):
    tmp_path, _, space_file, runner = setup
    out = tmp_path / "t.json"
    build = ("lut", "build", "--space", space_file, "--width-step", "16", "--device",
             "external", "--rounds", "1", "--out", out)  # fmt: skip
    result = cli(*build, "--runner", "/no/such/tool {model}")
    assert_user_error(result, "no such program", "/no/such/tool")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake_runner.py", "tiny.yaml"]
    # a runner that is there but fails on its first model: nothing measured, nothing kept
    result = cli(*build, "--runner", f"{runner} fail {{model}}")
    assert_user_error(result, "exited with status 3", "cannot open the device")
    for resume in ([], ["--resume"]):
        out.unlink(missing_ok=True)
        result = cli(*build, *resume, "--runner", f"{runner} ok {{model}}")
        assert result.code == 0, result.err
