"""Bad input through the real CLI: a clear message with the fix, no traceback, nothing the user had lost.

Every test runs ``python -m wizard.cli`` as a subprocess (real detection, real LoadGen where a run
starts, the tiny synthetic model). Disk-full and read-only cases mount a real tmpfs in a private
mount namespace (``unshare -rm``) and are skipped where that is not permitted.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

QUICK = ("--test-query-count", "16")


def assert_clear_error(proc: subprocess.CompletedProcess, *needles: str, code: int | None = None) -> str:
    """A non-zero exit, no traceback anywhere, a 'Fix:' line, and every needle in stderr."""
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    if code is not None:
        assert proc.returncode == code, out
    assert "Traceback" not in out and "internal error" not in out, out
    assert "Fix:" in proc.stderr, out
    for needle in needles:
        assert needle in proc.stderr, f"{needle!r} not in:\n{proc.stderr}"
    return proc.stderr


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root`` with its bytes and mtime, to prove nothing was changed."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@functools.lru_cache(maxsize=1)
def _tmpfs_problem() -> str | None:
    """Why a private tmpfs cannot be mounted here (None when it can)."""
    if not shutil.which("unshare"):
        return "unshare is not installed"
    with tempfile.TemporaryDirectory() as d:
        proc = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {d}"],
                              capture_output=True, text=True)
    if proc.returncode:
        return f"cannot mount a tmpfs in a user namespace: {proc.stderr.strip()}"
    return None


def in_tmpfs(mount: Path, options: str, script: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run ``script`` (sh) with a fresh tmpfs mounted on ``mount``, visible only to that script."""
    problem = _tmpfs_problem()
    if problem:
        pytest.skip(problem)
    mount.mkdir(parents=True, exist_ok=True)
    full = f"mount -t tmpfs -o {options} tmpfs {shlex.quote(str(mount))} && {script}"
    return subprocess.run(["unshare", "-rm", "sh", "-c", full], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ), stdin=subprocess.DEVNULL)


def wizard(*args: str) -> str:
    return " ".join([shlex.quote(sys.executable), "-m", "wizard.cli", *map(shlex.quote, args)])


# --------------------------------------------------------------------------- names and combinations


@pytest.mark.parametrize(("flag", "value", "suggestion"), [
    ("--model", "resnt50", "resnet50"),
    ("--backend", "onnxrt", "onnxruntime"),
    ("--scenario", "ofline", "Offline"),
    ("--mode", "perfomance", "performance"),
    ("--device", "cdua", "cuda"),
])
def test_unknown_name_suggests_the_closest(cli, home, flag, value, suggestion):
    proc = cli("run", flag, value, *QUICK)
    assert_clear_error(proc, flag, f"unknown value '{value}'", f"Did you mean '{suggestion}'?", "use one of:",
                       code=2)
    assert not (home / "results").exists()


def test_an_unsupported_combination_is_refused_before_any_work(cli, home, tmp_path):
    results = tmp_path / "results"
    proc = cli("run", "--model", "retinanet", "--backend", "onnxruntime", "--precision", "fp16", "--device", "cuda",
               "--results-dir", results, *QUICK)
    err = assert_clear_error(proc, "retinanet + onnxruntime + cuda + fp16", "choose one of:", code=2)
    assert "no fp16 ONNX" in err or "no NVIDIA GPU" in err
    assert not results.exists() and not (home / "results").exists()
    assert "Plan:" not in proc.stdout  # refused before planning, not halfway


def test_pytorch_backend_is_refused_with_reason(cli, home):
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here")
    proc = cli("run", "--backend", "pytorch", *QUICK)
    err = assert_clear_error(proc, "resnet50 + pytorch + cpu + fp32", code=2)
    # Either mlperf-wizard does not implement it (then installing torch would not help, so it must not
    # say so) or it does and torch is missing (then it gives the install command).
    if "not implemented" in err:
        assert "pip install" not in err and "resnet50 + onnxruntime + cpu + fp32" in err
    else:
        assert "pip install 'mlperf-wizard[torch]'" in err
    assert not (home / "results").exists()


def test_backend_that_does_not_load_gives_the_install_command(cli, home, tmp_path):
    """onnxruntime installed but broken (its native library gone): the fix is to reinstall it."""
    shadow = tmp_path / "shadow" / "onnxruntime"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("libonnxruntime.so: cannot open shared object")\n')
    proc = cli("run", *QUICK, env={"PYTHONPATH": str(shadow.parent)})
    assert_clear_error(proc, "resnet50 + onnxruntime + cpu + fp32 cannot run here", "does not load",
                       "libonnxruntime.so", "`pip install onnxruntime`", code=2)
    assert not (home / "results").exists()


# --------------------------------------------------------------------------- profiles


def test_malformed_yaml_profile_names_the_line(cli, home, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nmodel: resnet50\n  backend: onnxruntime\n")
    before = snapshot(tmp_path)
    proc = cli("run", path)
    assert_clear_error(proc, f"{path}, line 3", "not valid YAML", code=2)
    assert snapshot(tmp_path) == before
    assert not (home / "results").exists()


def test_unknown_profile_key_names_the_line_and_the_closest_key(cli, home, tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("version: 1\nmodel: resnet50\nscenario: Offline\n")
    proc = cli("run", path, "--dry-run")
    assert_clear_error(proc, f"{path}, line 3", "unknown key 'scenario'", "Did you mean 'scenarios'?",
                       "allowed keys:", code=2)


def test_wrong_value_in_profile_file_names_the_line(cli, tmp_path):
    path = tmp_path / "count.yaml"
    path.write_text("version: 1\nmodel: resnet50\ntest_query_count: -3\n")
    proc = cli("run", path, "--dry-run")
    assert_clear_error(proc, "test_query_count", f"{path}, line 3", "out of range", "from 1 to", code=2)


def test_missing_profile_file(cli, home):
    proc = cli("run", "missing.yaml")
    assert_clear_error(proc, "missing.yaml does not exist", "profiles list", code=2)
    assert not (home / "results").exists()


def test_missing_profile_name(cli, home):
    proc = cli("run", "no-such-profile-name")
    assert_clear_error(proc, "No profile named 'no-such-profile-name'", "profiles list", code=2)
    assert not (home / "results").exists()


def test_saving_a_profile_name_twice_keeps_the_first(cli, home):
    first = cli("profiles", "save", "mine", "--test-query-count", "16")
    assert first.returncode == 0, first.stderr
    path = home / "config" / "profiles" / "mine.yaml"
    before = snapshot(path.parent)
    second = cli("profiles", "save", "mine", "--test-query-count", "32")
    assert_clear_error(second, "already exists", "left unchanged", "--force", code=2)
    assert snapshot(path.parent) == before
    forced = cli("profiles", "save", "mine", "--test-query-count", "32", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "test_query_count: 32" in path.read_text()
    assert sorted(p.name for p in path.parent.iterdir()) == ["mine.yaml"]
    shown = cli("profiles", "show", "mine")
    assert shown.returncode == 0 and "test_query_count: 32" in shown.stdout


def test_run_save_refuses_an_existing_name_before_running(cli, home):
    assert cli("profiles", "save", "mine", "--test-query-count", "16").returncode == 0
    path = home / "config" / "profiles" / "mine.yaml"
    before = snapshot(path.parent)
    proc = cli("run", "--save", "mine", "--test-query-count", "32")
    assert_clear_error(proc, "already exists", "--force", code=2)
    assert snapshot(path.parent) == before
    assert not (home / "results").exists()


def test_disk_full_while_replacing_a_profile_keeps_the_old_one(tmp_path, monkeypatch):
    mount = tmp_path / "fullhome"
    monkeypatch.setenv("MLPERF_WIZARD_HOME", str(mount))
    profile = mount / "config" / "profiles" / "mine.yaml"
    script = " && ".join([
        wizard("profiles", "save", "mine", "--test-query-count", "16"),
        f"(cat /dev/zero > {shlex.quote(str(mount / 'filler'))} 2>/dev/null; true)",
        f"({wizard('profiles', 'save', 'mine', '--test-query-count', '32', '--force')}; echo rc=$? >&2)",
        f"cat {shlex.quote(str(profile))}",
        f"ls -A {shlex.quote(str(profile.parent))}",
    ])
    proc = in_tmpfs(mount, "size=256k", script)
    assert "rc=0" not in proc.stderr and "rc=" in proc.stderr, proc.stderr
    assert "The disk is full" in proc.stderr and "Fix:" in proc.stderr and "Traceback" not in proc.stderr
    assert "test_query_count: 16" in proc.stdout  # the old profile, whole
    assert proc.stdout.strip().endswith("mine.yaml")  # and no temp file left beside it


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("count", ["0", "-5"])
def test_query_count_zero_or_negative(cli, home, count):
    proc = cli("run", "--test-query-count", count)
    assert_clear_error(proc, "--test-query-count", f"'{count}' is out of range", "whole number from 1 to", code=2)
    assert not (home / "results").exists()


@pytest.mark.parametrize(("flag", "value", "problem"), [
    ("--target-qps", "0", "'0' is out of range"),
    ("--target-qps", "-1", "'-1' is out of range"),
    ("--target-latency", "abc", "'abc' is not a number"),
    ("--target-latency", "0", "'0' is out of range"),
])
def test_target_out_of_range(cli, home, flag, value, problem):
    proc = cli("run", flag, value, *QUICK)
    assert_clear_error(proc, flag, problem, "from 0.001 to", code=2)
    assert not (home / "results").exists()


# --------------------------------------------------------------------------- results folder


def test_results_dir_under_a_file_is_not_writable(cli, home, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("the user's file\n")
    before = snapshot(tmp_path / "home")
    proc = cli("run", *QUICK, "--results-dir", afile / "sub")
    assert_clear_error(proc, "cannot be written", "--results-dir", str(afile / "sub"), code=2)
    assert afile.read_text() == "the user's file\n"
    assert snapshot(tmp_path / "home").keys() >= before.keys()
    assert not (home / "results").exists()


def test_results_dir_on_a_read_only_mount(tmp_path):
    mount = tmp_path / "ro"
    proc = in_tmpfs(mount, "ro,size=64k", "exec " + wizard("run", *QUICK, "--results-dir", str(mount / "r")))
    assert_clear_error(proc, "cannot be written", "--results-dir", code=2)


def test_disk_full_while_writing_results(tmp_path, home):
    mount = tmp_path / "full"
    script = (wizard("run", *QUICK, "--target-qps", "1000", "--results-dir", str(mount)) + "; rc=$?; "
              f"find {shlex.quote(str(mount))} -name profile.yaml -size +0; exit $rc")
    proc = in_tmpfs(mount, "size=64k", script)
    assert_clear_error(proc, "The disk is full", "--results-dir", "files already written there are kept")
    assert proc.stdout.strip().endswith("profile.yaml")  # what was written before the disk filled is kept


# --------------------------------------------------------------------------- model files


def test_model_file_that_is_not_onnx_fails_the_run_cleanly(cli, home, tmp_path):
    model = tmp_path / "garbage.onnx"
    model.write_bytes(bytes(range(256)) * 8)
    results = tmp_path / "results"
    earlier = results / "an-earlier-run" / "run.json"
    earlier.parent.mkdir(parents=True)
    earlier.write_text('{"status": "completed"}\n')
    before = snapshot(results)
    proc = cli("run", *QUICK, "--model-path", model, "--results-dir", results, "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    record = json.loads(proc.stdout)
    assert record["status"] == "failed"
    (test,) = record["tests"]
    assert test["status"] == "failed"
    assert str(model) in test["error"] and "not a valid ONNX model" in test["error"]
    assert "not a valid ONNX model" in proc.stderr and str(model) in proc.stderr
    run_dir = Path(record["run_dir"])
    assert run_dir.parent == results and json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert list(run_dir.rglob("run.log")) and list(run_dir.rglob("result.json"))
    assert model.read_bytes() == bytes(range(256)) * 8
    assert {k: v for k, v in snapshot(results).items() if k in before} == before


def test_missing_model_file(cli, home, tmp_path):
    proc = cli("run", *QUICK, "--model-path", tmp_path / "nope.onnx")
    assert_clear_error(proc, f"{tmp_path / 'nope.onnx'} does not exist", "--model-path", code=2)
    assert not (home / "results").exists()


def test_local_model_source_without_a_path(cli, home):
    proc = cli("run", *QUICK, "--model-source", "local")
    assert_clear_error(proc, "'local' needs a model file", "--model-path", code=2)
    assert not (home / "results").exists()


# --------------------------------------------------------------------------- dry run


def test_dry_run_prints_the_plan_and_runs_nothing(cli, home, tmp_path):
    results = tmp_path / "results"
    proc = cli("run", "--scenario", "Offline", "SingleStream", "--mode", "both", *QUICK,
               "--results-dir", results, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Plan:" in out and "Offline" in out and "SingleStream" in out and "accuracy" in out
    assert "NOT an MLPerf result" in out
    line = next(x for x in out.splitlines() if x.startswith("Equivalent command: "))
    assert line == ("Equivalent command: mlperf-wizard run --scenario Offline SingleStream --mode both "
                    f"--test-query-count 16 --results-dir {results}")
    assert not results.exists() and not (home / "results").exists()
    assert not (home / "cache" / "models" / "synthetic").exists()  # not even the model is built


def test_a_file_at_the_official_path_with_the_wrong_md5_is_never_called_official(home, cli):
    fake = home / "cache" / "models" / "official" / "resnet50_v1.onnx"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not the MLCommons file")
    done = cli("run", "--dry-run")
    assert done.returncode == 2
    assert "is not the official ResNet50 v1.5 file" in done.stderr and "models fetch resnet50" in done.stderr
    assert "Traceback" not in done.stderr
    assert fake.read_bytes() == b"not the MLCommons file"  # left for the user to replace
    assert cli("run", "--dry-run", "--model-source", "synthetic").returncode == 0
