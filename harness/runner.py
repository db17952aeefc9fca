"""The parent side of a run: one child process per LoadGen test, events, watchdog, cancel, records.

The parent never imports a framework. It creates the run's directory (never reused), starts each test's
child with its output captured into the test's ``run.log``, reads the child's events from a pipe of
their own, stops a child that makes no progress for ``watchdog`` seconds, and on cancel (Ctrl-C or
:meth:`Runner.cancel`) ends the child with SIGTERM and keeps its partial logs.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import environment, targets
from .errors import ResultsError
from .events import EVENT_FD_ENV, EventReader
from .fsutil import atomic_write_json, atomic_write_text, ensure_writable_dir
from .plan import Plan, TestSpec, target_key
from .profile import dump_profile
from .results import TestResult, parse_test

EventCallback = Callable[[int, TestSpec, dict[str, Any]], None]
TERMINATE_GRACE_S = 10.0
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass
class RunRecord:
    """One run: the profile's tests and their results, saved as ``run.json`` in the run directory."""

    run_id: str
    run_dir: str
    started: str
    status: str = "running"
    """running | completed | failed | cancelled"""
    finished: str | None = None
    synthetic: bool = False
    tests: list[TestResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_dir": self.run_dir, "started": self.started,
                "finished": self.finished, "status": self.status, "synthetic": self.synthetic,
                "tests": [t.to_dict() for t in self.tests]}


def _now() -> str:
    # Milliseconds: runs started within the same second (scripts, tests) must still sort in order.
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the parent dies, so no test outlives its run; take
    SIGINT back (the parent holds it during the fork)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def new_run_dir(root: Path, label: str) -> tuple[str, Path]:
    """Create a fresh run directory under ``root``; an existing one is never reused.

    The id is the local time, a short random tag and the label, so ids stay unique across results folders
    too (the history lists several), and still sort by time."""
    ensure_writable_dir(root)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        run_id = f"{stamp}-{secrets.token_hex(2)}-{label}"
        path = root / run_id
        try:
            path.mkdir()
            return run_id, path
        except FileExistsError:
            continue
        except OSError as exc:
            raise ResultsError(f"Cannot create {path}: {exc.strerror}.", "choose another --results-dir.") from exc
    raise ResultsError(f"Could not find a free run name under {root}.", "check the results folder and rerun.")


class Runner:
    """Runs a plan's tests one after another. Thread-safe :meth:`cancel`; :meth:`run` blocks."""

    def __init__(self, plan: Plan, on_event: EventCallback | None = None):
        self.plan = plan
        self.on_event = on_event or (lambda i, spec, ev: None)
        self._cancel = threading.Event()
        self.record: RunRecord | None = None

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> RunRecord:
        plan = self.plan
        p = plan.profile
        run_id, run_dir = new_run_dir(plan.results_root, f"{p.model}-{p.backend}-{p.device}")
        record = RunRecord(run_id, str(run_dir), _now(), synthetic=plan.synthetic)
        self.record = record
        try:
            atomic_write_text(run_dir / "profile.yaml", dump_profile(p))
            atomic_write_json(run_dir / "environment.json", environment.collect())
            atomic_write_json(run_dir / "plan.json", {"tests": [t.to_dict() for t in plan.tests],
                                                      "model": plan.model.to_dict(),
                                                      "dataset": plan.dataset_description})
            self._save(record)
            for index, spec in enumerate(plan.tests):
                if self.cancelled:
                    break
                spec.out_dir = str(run_dir / spec.rel_dir)
                result = self._run_test(index, spec, run_id)
                record.tests.append(result)
                self._save(record)
                if result.status == "cancelled":
                    break
        except KeyboardInterrupt:
            # Ctrl-C outside a test's supervision (records being written, between tests): the run
            # directory exists, so it must still end up recorded as cancelled.
            self._cancel.set()
        statuses = {t.status for t in record.tests}
        record.status = ("cancelled" if self.cancelled or "cancelled" in statuses else
                         "failed" if statuses - {"completed"} else "completed")
        record.finished = _now()
        self._save(record)
        _append_index(record, p)
        return record

    def _save(self, record: RunRecord) -> None:
        atomic_write_json(Path(record.run_dir) / "run.json", record.to_dict())

    def _run_test(self, index: int, spec: TestSpec, run_id: str) -> TestResult:
        out = Path(spec.out_dir)
        try:
            out.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise ResultsError(f"Cannot create {out}: {exc.strerror}.", "check the results folder.") from exc
        spec_file = out / "test.json"
        atomic_write_json(spec_file, spec.to_dict())
        started = time.monotonic()
        emit = self.on_event
        emit(index, spec, {"event": "start", "directory": str(out)})
        status, error, target, sut_ms = self._supervise(index, spec, spec_file, out)
        result = parse_test(spec, out, status, error)
        result.sut_ms = sut_ms
        if status == "completed" and spec.mode == "performance" and result.validity is None:
            result.status, result.error = "failed", "LoadGen wrote no result (see run.log)"
        result.duration_s = round(time.monotonic() - started, 2)
        result.target = target
        atomic_write_json(out / "result.json", result.to_dict())
        if result.status == "completed":
            self._remember(spec, result, run_id)
        emit(index, spec, {"event": "result", "result": result.to_dict()})
        return result

    def _supervise(self, index: int, spec: TestSpec, spec_file: Path, out: Path):
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env[EVENT_FD_ENV] = str(write_fd)
        env["PYTHONPATH"] = PACKAGE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        # A Ctrl-C during the fork is lost (raised in an at-fork hook, printed as ignored) or leaves a
        # child nobody holds: keep SIGINT pending until the loop below can cancel the test cleanly.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        with open(out / "run.log", "ab") as log:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "harness.child", str(spec_file)], stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, pass_fds=(write_fd,), env=env, cwd=str(out),
                    start_new_session=True, preexec_fn=_die_with_parent)
            except BaseException:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                raise
            finally:
                os.close(write_fd)
        reader = EventReader()
        error: str | None = None
        target: dict[str, Any] | None = None
        sut_ms: dict[str, float] = {}
        status = "completed"
        last_change = time.monotonic()
        last_completed = -1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            while True:
                if self._cancel.is_set():
                    status = "cancelled"
                    break
                ready, _, _ = select.select([read_fd], [], [], 0.2)
                if ready:
                    chunk = os.read(read_fd, 65536)
                    if not chunk:
                        break
                    for event in reader.feed(chunk):
                        kind = event.get("event")
                        if kind == "phase":
                            last_change = time.monotonic()
                        elif kind == "progress" and event.get("completed") != last_completed:
                            last_completed = event.get("completed")
                            last_change = time.monotonic()
                        elif kind == "error":
                            error = event.get("message", "unknown error")
                            if event.get("fix"):
                                error += f" (fix: {event['fix']})"
                        elif kind == "sut_timing":
                            sut_ms = {k: v for k, v in event.items() if k not in ("event", "t")}
                        elif kind == "target":
                            unit = event.get("unit", "")
                            target = {"kind": event.get("kind"), "value": event.get("value"), "unit": unit,
                                      "reason": event.get("reason"),
                                      "text": f"{event.get('kind')} {event.get('value'):.4g} {unit}: "
                                              f"{event.get('reason')}"}
                        self.on_event(index, spec, event)
                if time.monotonic() - last_change > spec.watchdog:
                    status = "stalled"
                    error = (f"no progress for {spec.watchdog} s: the SUT stopped completing samples; the test "
                             "was stopped (raise --watchdog if the model is just slow to load)")
                    self.on_event(index, spec, {"event": "error", "message": error})
                    break
        except KeyboardInterrupt:
            self._cancel.set()
            status = "cancelled"
        finally:
            os.close(read_fd)
            if proc.poll() is None and status != "completed":
                _terminate(proc)
            returncode = _wait(proc)
        if status == "cancelled":
            error = "cancelled by the user; partial logs kept"
        elif status == "completed" and returncode != 0:
            status = "failed"
            if error is None:
                how = f"signal {-returncode}" if returncode < 0 else f"exit code {returncode}"
                error = f"the test process ended with {how} (see {out / 'run.log'})"
        return status, error, target, sut_ms

    def _remember(self, spec: TestSpec, result: TestResult, run_id: str) -> None:
        from . import coverage

        p = self.plan.profile
        coverage.record_verified(p.model, p.backend, p.device, p.precision, ok=True)
        if spec.mode != "performance" or result.value is None:
            return
        # Server's figure only means something if the latency bound held.
        if spec.scenario == "Server" and result.validity != "VALID":
            return
        targets.remember(target_key(p, spec.scenario, self.plan.model), result.value, run_id=run_id,
                         valid=result.validity == "VALID")


def _terminate(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(TERMINATE_GRACE_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait(proc: subprocess.Popen) -> int:
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # a second Ctrl-C while we wait: make sure it ends
            _terminate(proc)


def _append_index(record: RunRecord, profile) -> None:
    """One line per run in the state folder's index, for history and compare."""
    from .paths import locations

    line = json.dumps({"run_id": record.run_id, "run_dir": record.run_dir, "started": record.started,
                       "status": record.status, "model": profile.model, "backend": profile.backend,
                       "device": profile.device, "synthetic": record.synthetic,
                       "tests": [{"scenario": t.scenario, "mode": t.mode, "status": t.status,
                                  "validity": t.validity, "value": t.value, "unit": t.unit}
                                 for t in record.tests]})
    path = locations().state / "runs.jsonl"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    except OSError:
        pass  # the run's own files are the record; the index can be rebuilt from them
