"""The parent side of a run: one child process per LoadGen test, events, watchdog, cancel, records.

The parent never imports a framework. It creates the run's directory (never reused), starts each test's
child with its output captured into the test's ``run.log``, reads the child's events from a pipe of
their own, stops a child that makes no progress for ``watchdog`` seconds, and on cancel (Ctrl-C, SIGTERM,
SIGHUP or :meth:`Runner.cancel`) ends the child with SIGTERM and keeps its partial logs. The run's own log,
``run.log`` in the run directory, tells what ran, each test's start and end, warnings and errors (with the
traceback of an internal error); each test's lines also go to the test's ``run.log``.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from . import environment, targets, tuning
from . import events as ev
from .errors import ResultsError, WizardError
from .events import EVENT_FD_ENV, EventReader
from .fsutil import atomic_write_json, atomic_write_text, ensure_writable_dir
from .plan import MEASURING_STEPS, Plan, TestSpec, target_key
from .profile import dump_profile
from .results import TestResult, parse_test
from .run_record import RunRecord
from .scenarios import scenario as scenario_type

EventCallback = Callable[[int, TestSpec, ev.Event], None]
TERMINATE_GRACE_S = 10.0
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
CANCEL_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""What ``timeout``, systemd, ``docker stop``, CI cancellation and a closed terminal send: handled like Ctrl-C."""
HELD_SIGNALS = {signal.SIGINT, *CANCEL_SIGNALS}
RUN_LOG = "run.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"

log = logging.getLogger(__name__)
_ACTIVE: set[Runner] = set()
_ACTIVE_LOCK = threading.Lock()


EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_CANCELLED = 0, 1, 3, 130


def exit_code(record: RunRecord) -> int:
    """The command's exit status for a finished run (README, "Exit codes").

    128 + the signal's number when SIGTERM or SIGHUP cancelled it (143, 129: what shells and service
    managers expect), 130 for any other cancel (Ctrl-C), 1 when a test failed or stalled, 3 when every test
    ran but a performance result is INVALID, 0 otherwise (accuracy tests that completed count as 0).
    """
    if record.status == "cancelled":
        if record.cancelled_by in {s.name for s in CANCEL_SIGNALS}:
            return 128 + int(signal.Signals[record.cancelled_by])
        return EXIT_CANCELLED
    if record.status != "completed" or any(t.status != "completed" for t in record.tests):
        return EXIT_FAILED
    if any(t.mode == "performance" and t.validity != "VALID" for t in record.tests):
        return EXIT_INVALID
    return EXIT_OK


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread where Ctrl-C raises KeyboardInterrupt, so the run ends
    by the same cancellation path (child stopped, partial logs kept, run recorded cancelled)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def cancel_on_signals(on_signal: Callable[[int], None] | None = None) -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP cancel every running :class:`Runner`, in any thread.

    Without ``on_signal`` the signal is then raised as :class:`Terminated` in the main thread (a blocking
    run there ends as on Ctrl-C); with it, ``on_signal(signum)`` is called instead, for a front end whose
    event loop must keep running while its worker thread records the run. Python only lets the main thread
    set handlers: elsewhere this does nothing. The previous handlers are restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        with _ACTIVE_LOCK:
            running = list(_ACTIVE)
        for runner in running:
            runner.cancel(signal.Signals(signum).name)
        if on_signal is None:
            raise Terminated(signum)
        on_signal(signum)

    previous = {s: signal.signal(s, handler) for s in CANCEL_SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)


def _now() -> str:
    # Milliseconds: runs started within the same second (scripts, tests) must still sort in order.
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the parent dies, so no test outlives its run; take
    SIGINT, SIGTERM and SIGHUP back (the parent holds them during the fork)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
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
        self.on_event = on_event or (lambda i, spec, event: None)
        self._cancel = threading.Event()
        self.cancelled_by: str | None = None
        self.record: RunRecord | None = None

    def cancel(self, by: str = "user") -> None:
        """Stop the run: the running test's process is ended, its partial logs kept. ``by`` is recorded
        in ``run.json`` (a signal's name, or "user"); the first cancel's reason is kept."""
        if self.cancelled_by is None:
            self.cancelled_by = by
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> RunRecord:
        """Run every test of the plan and return the record; SIGTERM and SIGHUP cancel it like Ctrl-C
        (when called in the main thread; a front end running it elsewhere uses :func:`cancel_on_signals`)."""
        with _ACTIVE_LOCK:
            _ACTIVE.add(self)
        try:
            with cancel_on_signals():
                return self._run()
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE.discard(self)

    def _run(self) -> RunRecord:
        plan = self.plan
        p = plan.profile
        run_id, run_dir = new_run_dir(plan.results_root, f"{p.model}-{p.backend}-{p.device}")
        me = psutil.Process()
        record = RunRecord(run_id, str(run_dir), _now(), synthetic=plan.synthetic, pid=me.pid,
                           pid_started=me.create_time())
        self.record = record
        with _RunLog(run_dir / RUN_LOG) as run_log:
            return self._run_tests(record, run_dir, run_log)

    def _run_tests(self, record: RunRecord, run_dir: Path, run_log: _RunLog) -> RunRecord:
        plan = self.plan
        p = plan.profile
        run_id = record.run_id
        log.info("run %s (pid %s), results in %s\n%s", run_id, record.pid, run_dir, plan.describe())
        try:
            # Listed at once, so a run killed before it can finish is still found in another --results-dir.
            _append_index(record, p)
            self._save(record)  # first: a run directory without run.json is a damaged one to the history
            atomic_write_text(run_dir / "profile.yaml", dump_profile(p))
            atomic_write_json(run_dir / "environment.json", environment.collect())
            atomic_write_json(run_dir / "plan.json", {"tests": [t.to_dict() for t in plan.tests],
                                                      "model": plan.model.to_dict(),
                                                      "dataset": plan.dataset_description})
            for index, spec in enumerate(plan.tests):
                if self.cancelled:
                    break
                spec.out_dir = str(run_dir / spec.rel_dir)
                if spec.refused:
                    result = self._refuse(index, spec)
                else:
                    with run_log.also_to(Path(spec.out_dir) / RUN_LOG):
                        result = self._run_test(index, spec, run_id)
                record.tests.append(result)
                self._save(record)
                if result.status == "cancelled":
                    break
                if spec.mode in MEASURING_STEPS:
                    apply_step(spec, result, [t for t in plan.tests[index + 1:] if t.scenario == spec.scenario])
        except KeyboardInterrupt:
            # Ctrl-C (or SIGTERM/SIGHUP) outside a test's supervision (records being written, between
            # tests): the run directory exists, so it must still end up recorded as cancelled.
            self.cancel("SIGINT")
        except WizardError as exc:
            log.error("run stopped: %s", exc)
            raise
        except Exception:
            log.exception("internal error; the run was stopped")
            raise
        statuses = {t.status for t in record.tests}
        record.status = ("cancelled" if self.cancelled or "cancelled" in statuses else
                         "failed" if statuses - {"completed"} else "completed")
        record.cancelled_by = (self.cancelled_by or "SIGINT") if record.status == "cancelled" else None
        record.finished = _now()
        self._save(record)
        _append_index(record, p)
        log.info("run %s %s%s; exit code %d", run_id, record.status,
                 f" by {record.cancelled_by}" if record.cancelled_by else "", exit_code(record))
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
        log.info("%s: start -> %s", _tag(index, spec), out)
        emit(index, spec, ev.Start(directory=str(out), t=time.time()))
        status, error, target, sut_ms = self._supervise(index, spec, spec_file, out)
        result = parse_test(spec, out, status, error)
        result.sut_ms = sut_ms
        if status == "completed" and spec.mode == "performance" and result.validity is None:
            result.status, result.error = "failed", "LoadGen wrote no result (see run.log)"
        result.duration_s = round(time.monotonic() - started, 2)
        result.target = target
        atomic_write_json(out / "result.json", result.to_dict())
        level = {"completed": logging.INFO, "cancelled": logging.WARNING}.get(result.status, logging.ERROR)
        measured = f", {result.metric} {result.value:.6g} {result.unit}" if result.value is not None else ""
        log.log(level, "%s: end, %s%s%s in %s s%s", _tag(index, spec), result.status,
                f" {result.validity}" if result.validity else "", measured, result.duration_s,
                f": {result.error}" if result.error else "")
        if result.status == "completed":
            self._remember(spec, result, run_id)
        emit(index, spec, ev.Result(result=result.to_dict(), t=time.time()))
        return result

    def _refuse(self, index: int, spec: TestSpec) -> TestResult:
        """A test the plan (or a search before it) showed cannot be VALID here: recorded, not run."""
        result = TestResult(scenario=spec.scenario, mode=spec.mode, status="refused", directory=spec.out_dir,
                            synthetic=spec.model_synthetic or spec.dataset_synthetic,
                            synthetic_model=spec.model_synthetic, synthetic_data=spec.dataset_synthetic,
                            error=f"not run: {spec.refused}")
        log.warning("%s: %s", _tag(index, spec), result.error)
        self.on_event(index, spec, ev.Start(directory=spec.out_dir, t=time.time()))
        self.on_event(index, spec, ev.Result(result=result.to_dict(), t=time.time()))
        return result

    def _supervise(self, index: int, spec: TestSpec, spec_file: Path, out: Path):
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env[EVENT_FD_ENV] = str(write_fd)
        env["PYTHONPATH"] = PACKAGE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        # A Ctrl-C (or SIGTERM/SIGHUP) during the fork is lost (raised in an at-fork hook, printed as
        # ignored) or leaves a child nobody holds: keep them pending until the loop below can cancel.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
        with open(out / RUN_LOG, "ab") as child_log:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "harness.child", str(spec_file)], stdin=subprocess.DEVNULL,
                    stdout=child_log, stderr=subprocess.STDOUT, pass_fds=(write_fd,), env=env, cwd=str(out),
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
                        if isinstance(event, ev.Phase):
                            last_change = time.monotonic()
                        elif isinstance(event, ev.Progress) and event.completed != last_completed:
                            last_completed = event.completed
                            last_change = time.monotonic()
                        elif isinstance(event, ev.Error):
                            error = event.text()
                        elif isinstance(event, ev.SutTiming):
                            sut_ms = dict(event.ms)
                        elif isinstance(event, ev.Target):
                            target = {"kind": event.target_kind, "value": event.value, "unit": event.unit,
                                      "reason": event.reason,
                                      "text": f"{event.target_kind} {event.value:.4g} {event.unit}: {event.reason}"}
                        _log_event(index, spec, event)
                        self.on_event(index, spec, event)
                if time.monotonic() - last_change > spec.watchdog:
                    status = "stalled"
                    error = (f"no progress for {spec.watchdog} s: the SUT stopped completing samples; the test "
                             "was stopped (raise --watchdog if the model is just slow to load)")
                    log.error("%s: %s", _tag(index, spec), error)
                    self.on_event(index, spec, ev.Error(message=error, t=time.time()))
                    break
        except KeyboardInterrupt:
            self.cancel("SIGINT")
            status = "cancelled"
        finally:
            os.close(read_fd)
            if proc.poll() is None and status != "completed":
                _terminate(proc)
            returncode = _wait(proc)
        if status == "cancelled":
            by = self.cancelled_by if self.cancelled_by in {s.name for s in CANCEL_SIGNALS} else "the user"
            error = f"cancelled by {by}; partial logs kept"
        elif status == "completed" and returncode != 0:
            status = "failed"
            if error is None:
                how = f"signal {-returncode}" if returncode < 0 else f"exit code {returncode}"
                error = f"the test process ended with {how} (see {out / 'run.log'})"
        return status, error, target, sut_ms

    def _remember(self, spec: TestSpec, result: TestResult, run_id: str) -> None:
        from . import coverage

        p = self.plan.profile
        coverage.record_verified(p.model, p.backend, p.device, p.precision, ok=True, details=_run_details(
            self.plan, run_id, spec))
        if spec.mode != "performance" or result.value is None:
            return
        # Server's figure only means something if the latency bound held; a rate that was remembered or
        # searched and then failed in the long run is forgotten, so the next run searches again.
        if scenario_type(spec.scenario).scheduled and result.validity != "VALID":
            over_bound = any(f.rule == "latency_bound" and not f.met for f in result.findings)
            if over_bound and spec.target_reason != "given in the profile":  # not for too few queries
                tuning.forget(spec.tune_key)
                targets.forget(target_key(p, spec.scenario, self.plan.model))
            return
        targets.remember(target_key(p, spec.scenario, self.plan.model), result.value, run_id=run_id,
                         valid=result.validity == "VALID")


def apply_step(step: TestSpec, result: TestResult, later: list[TestSpec]) -> None:
    """What a tune or search step found, kept for later runs and applied to the scenario's tests after it.
    A step that failed leaves them on the plan's defaults, and says so."""
    from .tuning import read_step

    data = read_step(Path(step.out_dir), step.mode) if result.status == "completed" else None
    if step.mode == "tune":
        tuned = tuning.Tuned.from_dict(data) if data else None
        if tuned is None:
            for t in later:
                t.sut_reason = f"defaults (the tune step {result.status}: see its run.log)"
            return
        tuned.when = _now()
        tuning.remember(step.tune_key, tuned)
        for t in later:
            t.workers, t.threads, t.batch_size = tuned.best.workers, tuned.best.threads, tuned.best.batch_size
            t.sut_reason = tuned.reason()
        return
    config = data.get("config") if data else None
    if not data or (data.get("found") and not isinstance(config, dict)):
        for t in later:
            t.sut_reason = f"defaults (the Server search {result.status}: see its run.log)"
            if t.target is None:
                t.target_reason = "measured briefly before the test starts (the search did not finish)"
        return
    tuning.remember_search(step.tune_key, data)
    probes = [p for p in data.get("probes") or [] if isinstance(p, dict)]
    for t in later:
        if not data.get("found"):
            if t.mode == "performance":
                t.refused = str(data.get("reason") or "the Server search found no rate that meets the bound")
            continue
        t.workers, t.batch_size = int(config["workers"]), int(config["batch_size"])
        t.threads = int(config["threads"]) or t.threads
        t.sut_reason = "the Server search's choice, with the rate below"
        t.server_probes = probes
        if t.target is None:
            t.target, t.target_reason = float(data["qps"]), str(data.get("reason") or "searched")


def _tag(index: int, spec: TestSpec) -> str:
    return f"test {index + 1} {spec.scenario} {spec.mode}"


def _log_event(index: int, spec: TestSpec, event: ev.Event) -> None:
    """A child's event in the run's log, in the words the front ends use (progress is left out: it comes
    several times a second and the result line sums it up)."""
    line = event.line()
    if line is not None:
        level = {ev.Warn: logging.WARNING, ev.Error: logging.ERROR}.get(type(event), logging.INFO)
        log.log(level, "%s: %s", _tag(index, spec), line)


class _RunLog:
    """The run's ``run.log``: every ``harness`` log record of the run's thread goes there (and, inside
    :meth:`also_to`, to a test's ``run.log`` too, after the child's own output)."""

    def __init__(self, path: Path):
        self.path = path
        self.thread = threading.get_ident()
        self.logger = logging.getLogger("harness")

    def _handler(self, path: Path) -> logging.Handler:
        # Opened at the first line, so a test's folder is still created by the runner (never reused).
        handler = logging.FileHandler(path, mode="a", encoding="utf-8", delay=True)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.setLevel(logging.INFO)
        handler.addFilter(lambda r: r.thread == self.thread)
        return handler

    def __enter__(self) -> _RunLog:
        self.handler = self._handler(self.path)
        self.level = self.logger.level
        if self.logger.getEffectiveLevel() > logging.INFO:
            self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()
        self.logger.setLevel(self.level)

    @contextmanager
    def also_to(self, path: Path) -> Iterator[None]:
        handler = self._handler(path)
        self.logger.addHandler(handler)
        try:
            yield
        finally:
            self.logger.removeHandler(handler)
            handler.close()


def _run_details(plan: Plan, run_id: str, spec: TestSpec) -> dict:
    """What the coverage keeps beside "a test of this run completed": which run and test, the backend's
    version and the model variant, as verify's records have them."""
    from .probe_backends import installed_distribution

    return {"source": "run", "run_id": run_id, "test": f"{spec.scenario} {spec.mode}",
            "backend_version": installed_distribution(plan.profile.backend)[1],
            "variant": (spec.model_variant if spec.model_synthetic else "official") or plan.model.source}


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
