"""How a run ends when its process is told to stop (SIGTERM, SIGHUP) or killed (SIGKILL), its run.log,
and the exit codes: real CLI runs of the tiny synthetic ResNet50."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.faults import FAULT_ENV
from harness.history import list_runs
from harness.models.registry import SYNTHETIC_VARIANT_ENV
from harness.paths import HOME_ENV, RESULTS_ENV
from harness.plan import TUNE_ENV

BASE = ("run", "--model", "resnet50", "--backend", "onnxruntime", "--device", "cpu", "--style", "short")
# Long enough (minutes) to be stopped while LoadGen runs; a given target skips the measurement.
LONG = (*BASE, "--scenario", "SingleStream", "--mode", "performance", "--test-query-count", "2000000",
        "--target-latency", "1")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (FAULT_ENV, RESULTS_ENV)}
    env.update({HOME_ENV: str(home), SYNTHETIC_VARIANT_ENV: "tiny", TUNE_ENV: "off", **extra})
    return env


def _start_long_run(home: Path, results: Path) -> tuple[subprocess.Popen, Path]:
    """Start a long run with --results-dir outside the default root; return it once LoadGen runs."""
    proc = subprocess.Popen([sys.executable, "-m", "wizard.cli", *LONG, "--results-dir", str(results)],
                            env=_env(home), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=home)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = list(results.glob("*/run.log"))
        if runs and "running: LoadGen" in runs[0].read_text():
            time.sleep(1.0)
            return proc, runs[0].parent
        time.sleep(0.2)
    proc.kill()
    pytest.fail("the run did not reach LoadGen in time: " + proc.communicate()[0][-2000:])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_records_the_run_cancelled(home: Path, tmp_path: Path, signum: int) -> None:
    results = tmp_path / "elsewhere"
    proc, run_dir = _start_long_run(home, results)
    proc.send_signal(signum)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 128 + signum, output[-2000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "cancelled" and record["cancelled_by"] == signal.Signals(signum).name
    test = record["tests"][0]
    assert test["status"] == "cancelled" and "partial logs kept" in test["error"]
    assert (Path(test["directory"]) / "mlperf_log_detail.txt").stat().st_size > 0  # partial LoadGen log
    assert "cancelled" in (run_dir / "run.log").read_text()
    listed = {r.run_id: r.status for r in list_runs()}
    assert listed[record["run_id"]] == "cancelled"


def test_a_killed_run_reads_as_interrupted_and_is_still_listed(home: Path, tmp_path: Path) -> None:
    results = tmp_path / "elsewhere"
    proc, run_dir = _start_long_run(home, results)
    proc.kill()
    proc.communicate(timeout=60)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "running" and record["pid"] == proc.pid  # never got to record an end
    listed = {r.run_id: r.status for r in list_runs()}
    assert listed[record["run_id"]] == "interrupted"


def test_a_running_record_of_a_live_process_stays_running() -> None:
    import psutil

    from harness.history import run_status

    me = psutil.Process()
    assert run_status({"status": "running", "pid": me.pid, "pid_started": me.create_time()}) == "running"
    # The same pid with another start time is a reused pid: the run's process is gone.
    assert run_status({"status": "running", "pid": me.pid, "pid_started": me.create_time() - 100}) == "interrupted"


def test_run_log_tells_what_ran_and_how_each_test_ended(cli, home: Path) -> None:
    proc = cli(*BASE, "--scenario", "Offline", "--mode", "accuracy", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(proc.stdout)
    text = (Path(record["run_dir"]) / "run.log").read_text()
    assert "Offline accuracy: start" in text and "Offline accuracy: end, completed" in text
    assert "exit code 0" in text
    test_log = (Path(record["tests"][0]["directory"]) / "run.log").read_text()
    assert "Offline accuracy: end, completed" in test_log


def test_run_log_of_a_failed_run_holds_the_error_and_the_traceback(cli, home: Path) -> None:
    proc = cli(*BASE, "--scenario", "Offline", "--mode", "performance", "--target-qps", "1000",
               "--test-query-count", "64", "--json", env={FAULT_ENV: "raise-after:2"})
    assert proc.returncode == 1, proc.stderr[-2000:]
    record = json.loads(proc.stdout)
    text = (Path(record["run_dir"]) / "run.log").read_text()
    assert "injected fault after 2 inference calls" in text and "end, failed" in text
    test_log = (Path(record["tests"][0]["directory"]) / "run.log").read_text()
    assert "Traceback" in test_log and "RuntimeError: injected fault" in test_log


def test_an_invalid_result_exits_3(cli) -> None:
    # 64 MultiStream queries are too few for early stopping: the result is INVALID.
    proc = cli(*BASE, "--scenario", "MultiStream", "--mode", "performance", "--test-query-count", "64")
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "INVALID" in proc.stdout


def test_bad_input_exits_2(cli) -> None:
    proc = cli(*BASE, "--scenario", "Offline", "--model-path", str(Path("/nonexistent/model.onnx")),
               "--model-source", "local")
    assert proc.returncode == 2, proc.stderr[-2000:]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_to_the_tui_cancels_its_run_and_records_it(home: Path, signum: int) -> None:
    """The full-screen wizard (a real process on a pseudo-terminal) launched with four keys, its test hung
    mid-run by the fault hook: SIGTERM/SIGHUP stop the test, record the run cancelled and end the app."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "wizard.cli"], stdin=slave, stdout=slave, stderr=slave,
                            env=_env(home, **{FAULT_ENV: "hang-after:2", "TERM": "xterm-256color"}),
                            close_fds=True, cwd=home, start_new_session=True)
    os.close(slave)
    os.set_blocking(master, False)
    try:
        _drive_tui_then_signal(proc, master, home, signum)
    finally:
        if proc.poll() is None:  # a failed check must not leave the app and its test running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        os.close(master)


def _drive_tui_then_signal(proc: subprocess.Popen, master: int, home: Path, signum: int) -> None:
    screen = [b""]

    def drain() -> None:
        try:
            while chunk := os.read(master, 65536):
                screen[0] = (screen[0] + chunk)[-200_000:]
        except (BlockingIOError, OSError):
            pass

    deadline = time.monotonic() + 120
    while b"Enter: next" not in screen[0] and time.monotonic() < deadline:  # the machine is probed
        drain()
        time.sleep(0.2)
    for key in (b"\r", b"n", b"n", b"l"):
        drain()
        os.write(master, key)
        time.sleep(1.0)
    run_log = None
    while time.monotonic() < deadline:
        drain()
        logs = list((home / "results").glob("*/run.log"))
        # The hang (after 2 inference calls) comes while the target is measured: the test is running.
        if logs and "measuring" in logs[0].read_text():
            run_log = logs[0]
            break
        time.sleep(0.3)
    assert run_log is not None, "the TUI never started the run"
    time.sleep(1.0)
    proc.send_signal(signum)
    while proc.poll() is None and time.monotonic() < deadline + 60:
        drain()
        time.sleep(0.2)
    assert proc.returncode == 128 + signum
    record = json.loads((run_log.parent / "run.json").read_text())
    assert record["status"] == "cancelled" and record["cancelled_by"] == signal.Signals(signum).name
    assert record["tests"][0]["status"] == "cancelled"
