"""Real runs through the CLI: LoadGen, onnxruntime and the tiny synthetic ResNet50, one child per test.

Failure paths use the child's designed fault hook (MLPERF_WIZARD_FAULT), not mocks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from harness import events as ev
from harness.accuracy.imagenet import top1
from harness.datasets.imagenet import SyntheticImageNet
from harness.faults import FAULT_ENV
from harness.models.registry import SYNTHETIC_VARIANT_ENV
from harness.paths import HOME_ENV, RESULTS_ENV, SHIPPED_PROFILES
from harness.plan import TUNE_ENV, make_plan
from harness.profile import Profile, load_profile
from harness.results import parse_detail
from harness.runner import Runner, new_run_dir

SCENARIOS = ("Offline", "Server", "SingleStream", "MultiStream")
UNITS = {"Offline": "samples/s", "Server": "queries/s", "SingleStream": "ms", "MultiStream": "ms"}
SYSTEM = "testsys"
QUERIES = 64
BASE = ("run", "--model", "resnet50", "--backend", "onnxruntime", "--device", "cpu", "--style", "short",
        "--system-name", SYSTEM)
# A given target skips the brief measurement, so an injected fault lands inside the LoadGen run.
OFFLINE_GIVEN_TARGET = (*BASE, "--scenario", "Offline", "--mode", "performance", "--target-qps", "1000",
                        "--test-query-count", str(QUERIES), "--json")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (FAULT_ENV, RESULTS_ENV)}
    env.update({HOME_ENV: str(home), SYNTHETIC_VARIANT_ENV: "tiny", TUNE_ENV: "off", **extra})
    return env


def _test_dir(run_dir: Path, scenario: str, mode: str) -> Path:
    return run_dir / SYSTEM / "resnet50" / scenario / ("performance/run_1" if mode == "performance" else mode)


def _live_children(spec_file: Path) -> list[psutil.Process]:
    """Test processes (``python -m harness.child SPEC``) of this spec that are still running."""
    wanted = str(spec_file.resolve())
    alive = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if (any("harness.child" in part for part in cmdline) and wanted in cmdline
                and proc.info["status"] != psutil.STATUS_ZOMBIE):
            alive.append(proc)
    return alive


# One run of every scenario in both modes, shared by the checks of its records and files ------------

@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("full-run-home")
    args = (*BASE, "--scenario", *SCENARIOS, "--mode", "both", "--test-query-count", str(QUERIES), "--json")
    proc = subprocess.run([sys.executable, "-m", "wizard.cli", *args], env=_env(home), capture_output=True,
                          text=True, timeout=240, stdin=subprocess.DEVNULL, cwd=home)
    record = json.loads(proc.stdout)  # stdout carries nothing but the JSON
    invalid = any(t["validity"] == "INVALID" for t in record["tests"])
    assert proc.returncode == (3 if invalid else 0), proc.stderr[-3000:]  # 3: some result INVALID
    return {"record": record, "run_dir": Path(record["run_dir"]), "stderr": proc.stderr, "home": home}


def _tests(full_run: dict, mode: str) -> list[dict]:
    return [t for t in full_run["record"]["tests"] if t["mode"] == mode]


class TestEveryScenarioAndMode:
    def test_one_completed_record_per_scenario_and_mode(self, full_run):
        record = full_run["record"]
        assert record["status"] == "completed" and record["synthetic"] is True
        pairs = sorted((t["scenario"], t["mode"]) for t in record["tests"])
        assert pairs == sorted((s, m) for s in SCENARIOS for m in ("accuracy", "performance"))
        for t in record["tests"]:
            assert t["status"] == "completed", t
            assert t["error"] is None
            assert t["synthetic"] and t["synthetic_model"] and t["synthetic_data"]
            assert Path(t["directory"]) == _test_dir(full_run["run_dir"], t["scenario"], t["mode"])

    def test_performance_records_name_metric_value_and_unit(self, full_run):
        for t in _tests(full_run, "performance"):
            assert t["validity"] in ("VALID", "INVALID"), t
            assert t["scenario"] in t["metric"]
            assert isinstance(t["value"], float) and t["value"] > 0, t
            assert t["unit"] == UNITS[t["scenario"]]
            assert t["latency_ms"]["max"] >= t["latency_ms"]["min"] > 0
            assert t["target"]["value"] > 0 and t["target"]["reason"]

    def test_short_offline_run_is_valid(self, full_run):
        (offline,) = [t for t in _tests(full_run, "performance") if t["scenario"] == "Offline"]
        assert offline["validity"] == "VALID"
        assert re.search(r"Offline performance: VALID", full_run["stderr"])
        assert "NOT an MLPerf result" in full_run["stderr"]

    def test_accuracy_records_and_files(self, full_run):
        labels = SyntheticImageNet(500).labels()
        for t in _tests(full_run, "accuracy"):
            acc, out = t["accuracy"], Path(t["directory"])
            assert t["validity"] is None
            assert acc["total"] == 500 and 0 <= acc["good"] <= acc["total"]
            assert acc["value"] == pytest.approx(100 * acc["good"] / acc["total"])
            assert acc["synthetic"] is True
            log = out / "mlperf_log_accuracy.json"
            # The responses the real SUT sent decode to the same score when recomputed from the log.
            assert top1(log, labels)["good"] == acc["good"]
            lines = (out / "accuracy.txt").read_text(encoding="utf-8").splitlines()
            assert lines[0] == f"accuracy={acc['value']:.3f}%, good={acc['good']}, total={acc['total']}"
            assert lines[1] == "hash=" + hashlib.sha256(log.read_bytes()).hexdigest()
            saved = json.loads((out / "result.json").read_text(encoding="utf-8"))
            assert saved["status"] == "completed" and saved["accuracy"]["good"] == acc["good"]

    def test_mlperf_layout_with_loadgen_logs_and_user_conf(self, full_run):
        for t in full_run["record"]["tests"]:
            out = _test_dir(full_run["run_dir"], t["scenario"], t["mode"])
            for name in ("user.conf", "mlperf_log_summary.txt", "mlperf_log_detail.txt", "result.json",
                         "run.log"):
                assert (out / name).is_file(), out / name
            conf = (out / "user.conf").read_text(encoding="utf-8").splitlines()
            assert conf
            for line in conf:
                assert re.fullmatch(rf"resnet50\.{t['scenario']}\.[a-z_]+ = [0-9.e+-]+", line), line
            if t["mode"] == "performance":
                summary = (out / "mlperf_log_summary.txt").read_text(encoding="utf-8")
                assert f"Scenario : {t['scenario']}" in summary
                assert f"resnet50.{t['scenario']}.min_query_count = {QUERIES}" in conf
                assert f"Result is : {t['validity']}" in summary
                # LoadGen took the user.conf: its effective settings are ours (Offline counts samples).
                detail = parse_detail(out / "mlperf_log_detail.txt")
                what = "sample" if t["scenario"] == "Offline" else "query"
                assert detail[f"effective_min_{what}_count"] == QUERIES
                assert detail["effective_min_duration_ms"] == 0

    def test_run_directory_records(self, full_run):
        run_dir = full_run["run_dir"]
        profile = load_profile(run_dir / "profile.yaml")
        assert tuple(profile.scenarios) == SCENARIOS and profile.mode == "both"
        assert profile.test_query_count == QUERIES and profile.system_name == SYSTEM
        env = json.loads((run_dir / "environment.json").read_text(encoding="utf-8"))
        assert env["packages"]["mlcommons-loadgen"]
        saved = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        assert saved == full_run["record"]
        assert saved["finished"] is not None


    def test_the_run_is_recorded_for_the_coverage_with_its_version_and_variant(self, full_run):
        import onnxruntime

        files = list(Path(full_run["home"]).rglob("verified.json"))
        assert len(files) == 1, files
        cells = json.loads(files[0].read_text(encoding="utf-8"))["combinations"]
        cell = cells["resnet50/onnxruntime/cpu/fp32"]
        assert cell["ok"] is True and cell["source"] == "run"
        assert cell["run_id"] == full_run["record"]["run_id"]
        assert cell["backend_version"] == onnxruntime.__version__
        assert cell["variant"] == "tiny" and cell["test"].split()[0] in SCENARIOS


# Fresh homes, one test each ------------------------------------------------------------------------

def test_quickstart_profile_prints_valid(home, cli):
    proc = cli("run", SHIPPED_PROFILES / "quickstart.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^Offline performance: VALID\b", proc.stdout, re.MULTILINE), proc.stdout[-3000:]
    assert "NOT an MLPerf result" in proc.stdout
    assert tuple(load_profile(SHIPPED_PROFILES / "quickstart.yaml").scenarios) == ("Offline",)


def test_sustained_target_is_remembered_and_runs_never_share_a_directory(home, cli):
    args = (*BASE, "--scenario", "Offline", "--mode", "performance", "--test-query-count", str(QUERIES),
            "--json")
    before = cli(*args, "--dry-run")
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["tests"][0]["target"] is None
    assert "target_qps: auto (measured briefly" in before.stderr
    assert "what this SUT sustained" not in before.stderr

    first = cli(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    first_record = json.loads(first.stdout)
    sustained = first_record["tests"][0]["value"]

    plan = cli(*args, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    (spec,) = json.loads(plan.stdout)["tests"]
    assert spec["target"] == pytest.approx(sustained)
    assert "what this SUT sustained" in spec["target_reason"]
    assert first_record["run_id"] in spec["target_reason"]
    assert re.search(r"target_qps: [0-9.]+ queries/s \(what this SUT sustained", plan.stderr)
    assert "auto (measured briefly" not in plan.stderr

    second = cli(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    second_record = json.loads(second.stdout)
    assert second_record["run_dir"] != first_record["run_dir"]
    assert "what this SUT sustained" in second_record["tests"][0]["target"]["reason"]
    # The first run's files are untouched by the second.
    assert json.loads((Path(first_record["run_dir"]) / "run.json").read_text()) == first_record


def test_new_run_dir_never_reuses_a_directory(tmp_path):
    ids = [new_run_dir(tmp_path, "same-label") for _ in range(3)]
    assert len({run_id for run_id, _ in ids}) == 3
    assert all(path.is_dir() and not any(path.iterdir()) for _, path in ids)


def test_backend_exception_fails_the_test_not_the_parent(home, cli):
    proc = cli(*OFFLINE_GIVEN_TARGET, env={FAULT_ENV: "raise-after:3"}, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    record = json.loads(proc.stdout)
    (test,) = record["tests"]
    assert test["status"] == "failed"
    assert "injected fault after 3 inference calls" in test["error"]
    assert "RuntimeError" in test["error"]
    saved = json.loads((Path(record["run_dir"]) / "run.json").read_text())
    assert saved["status"] == "failed" and saved["tests"][0]["status"] == "failed"
    log = (Path(test["directory"]) / "run.log").read_text()
    assert "Traceback (most recent call last)" in log
    assert "RuntimeError: injected fault after 3 inference calls" in log
    assert "FAILED" in proc.stderr


def test_watchdog_stops_a_sut_that_stops_completing_samples(home, cli):
    started = time.monotonic()
    proc = cli(*OFFLINE_GIVEN_TARGET, "--watchdog", "3", env={FAULT_ENV: "hang-after:2"}, timeout=60)
    elapsed = time.monotonic() - started
    assert elapsed < 30, f"took {elapsed:.1f} s"
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    record = json.loads(proc.stdout)
    (test,) = record["tests"]
    assert test["status"] == "stalled"
    assert "no progress for 3 s" in test["error"]
    assert json.loads((Path(record["run_dir"]) / "run.json").read_text())["status"] == "failed"
    assert _live_children(Path(test["directory"]) / "test.json") == []


def test_ctrl_c_cancels_the_run_and_leaves_no_child(home):
    env = _env(home, **{FAULT_ENV: "hang-after:1"})
    # Python keeps SIGINT ignored if it started that way (pytest run as a background job): undo that.
    proc = subprocess.Popen([sys.executable, "-m", "wizard.cli", *OFFLINE_GIVEN_TARGET, "--watchdog", "120"],
                            env=env, cwd=home, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []
    running = threading.Event()

    def read_stderr() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "running:" in line:
                running.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert running.wait(60), "".join(lines)[-3000:]
        (spec_file,) = (home / "results").glob(f"*/{SYSTEM}/resnet50/Offline/performance/run_1/test.json")
        # "running" is announced just before StartTest: wait until LoadGen has opened its logs too.
        deadline = time.monotonic() + 20
        while not (spec_file.parent / "mlperf_log_detail.txt").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        children = _live_children(spec_file)
        assert len(children) == 1, "the test's child process should be running"
        proc.send_signal(signal.SIGINT)  # the CLI only: the child lives in a session of its own
        try:
            returncode = proc.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail("the CLI ignored Ctrl-C:\n" + "".join(lines)[-3000:])
        stdout = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    stderr = "".join(lines)
    assert returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert not children[0].is_running() or children[0].status() == psutil.STATUS_ZOMBIE
    assert _live_children(spec_file) == []
    out = spec_file.parent
    # Partial logs are kept: ours, the user.conf LoadGen read, and the log LoadGen opened at the start.
    for name in ("run.log", "user.conf", "test.json", "mlperf_log_detail.txt"):
        assert (out / name).is_file(), name
    run_json = json.loads((out.parents[4] / "run.json").read_text())
    assert run_json["status"] == "cancelled"
    assert [t["status"] for t in run_json["tests"]] == ["cancelled"]
    assert json.loads((out / "result.json").read_text())["status"] == "cancelled"
    assert json.loads(stdout)["status"] == "cancelled"


def test_ctrl_c_outside_a_test_still_records_a_cancelled_run(home):
    profile = Profile().with_values({"scenarios": ["Offline", "Server"], "test_query_count": 8,
                                     "system_name": SYSTEM})

    def interrupt_at_start(index, spec, event):
        if isinstance(event, ev.Start):
            raise KeyboardInterrupt  # what a Ctrl-C while the front end prints "starting" does

    record = Runner(make_plan(profile), on_event=interrupt_at_start).run()
    assert record.status == "cancelled" and record.tests == []
    saved = json.loads((Path(record.run_dir) / "run.json").read_text())
    assert saved["status"] == "cancelled" and saved["finished"]
    assert (Path(record.run_dir) / "profile.yaml").is_file()
