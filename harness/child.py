"""One LoadGen test in its own process: ``python -m harness.child SPEC.json``.

LoadGen loads its embedded mlperf.conf only on the first FromConfig of a process, an exception in the
SUT aborts the process, and a stuck SUT only yields to SIGTERM: hence one process per test. Events go
to the parent on the pipe named by MLPERF_WIZARD_EVENT_FD; everything printed here (ours and the native
libraries') lands in the test's log file.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from . import events as ev
from .errors import WizardError
from .events import EventWriter
from .faults import with_faults
from .plan import MEASURING_STEPS, TestSpec
from .scenarios import scenario as scenario_type
from .staging import staged_batch

REPORT_INTERVAL_S = 0.5
HEARTBEAT_S = 2.0
MEASURE_S = 2.0
MEASURE_MAX_S = 10.0
RATE_WINDOW_S = 5.0


def ensure_model(spec: TestSpec, events: EventWriter) -> None:
    """Build the synthetic model unless the cache holds it whole (checked against its integrity record,
    see harness.cache_integrity); a truncated or modified one is rebuilt, and the run says so."""
    path = Path(spec.model_path)
    if not spec.model_synthetic and not spec.model_derived_from:
        return
    from .cache_integrity import check_file, remove
    from .models.families import build_synthetic, convert_official

    path.parent.mkdir(parents=True, exist_ok=True)
    # Two runs started at once must not both build (or read a half-built file): take a lock.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            problem = check_file(path)
            if problem is None:
                return
            events.emit(ev.Warn(message=f"the cached {'synthetic' if spec.model_synthetic else 'converted'} "
                        f"{spec.model} model {path} was corrupt ({problem}): rebuilding"))
            remove(path)
        if spec.model_derived_from:
            source = Path(spec.model_derived_from)
            detail = (f"converting the {spec.model} weights of {source.name} into {spec.backend}'s graph "
                      "(first run only; cached)")
            with heartbeat(events, "preparing", detail, f"converting {source.name}"):
                info = convert_official(spec.model, source, path)
            events.emit(ev.Log(message=f"converted {source.name} into {path.name}: {info.size_bytes / 1e6:.1f} MB "
                        f"in {info.seconds:.1f} s"))
            return
        detail = (f"building the synthetic {spec.model} model (real architecture, seeded random weights; "
                  "cached for later runs)")
        with heartbeat(events, "preparing", detail, f"building the synthetic {spec.model} model"):
            info = build_synthetic(spec.model, path, spec.model_variant or "full", spec.precision)
        events.emit(ev.Log(message=f"built {path.name}: {info.parameters:,} parameters, "
                    f"{info.size_bytes / 1e6:.1f} MB in {info.seconds:.1f} s"))


@contextlib.contextmanager
def heartbeat(events: EventWriter, phase: str, detail: str, short: str, every_s: float = HEARTBEAT_S):
    """Announce ``phase`` now, then again every ``every_s`` seconds with the time it has taken so far,
    until the block ends: a long step with no counter of its own (building a 1.4 GB model) still shows
    that it is moving, and keeps the parent's watchdog from taking it for a hang. The updates use the
    ``short`` form of ``detail``: they are shown on one live line."""
    events.emit(ev.Phase(phase=phase, detail=detail))
    start = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every_s):
            events.emit(ev.Phase(phase=phase, detail=f"{short}: {time.monotonic() - start:.0f} s so far",
                        update=True))

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _dataset_progress(events: EventWriter):
    """Dataset preparation progress as phase events, at most once a second (they also keep the
    parent's watchdog from firing during a long first preparation)."""
    last = [0.0]
    stages: set[str] = set()

    def report(stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0 or (total is not None and done >= total):
            last[0] = now
            of = f"/{total}" if total else ""
            # The first report of a stage starts a step; the rest are updates of it (a live line, not a log).
            events.emit(ev.Phase(phase="preparing", detail=f"dataset: {stage} {done}{of}", update=stage in stages))
            stages.add(stage)

    return report


def measure_target(spec: TestSpec, infer, batch) -> tuple[float, str]:
    """Run the model directly on ``batch`` for about two seconds (at least one timed call, at most ~10 s
    unless one call takes longer) and derive the LoadGen target from it."""
    import numpy as np

    n = spec.batch_size  # the plan's: a batch (Offline, Server), a query's samples (MultiStream), 1
    kind = scenario_type(spec.scenario)
    if kind.throughput and spec.workers > 1:
        # Several workers run at once: one caller's rate would understate the SUT's (and an Offline run
        # sized from it would end before the minimum duration). Measured as the SUT runs.
        from .tuning import measure

        m = measure(infer, batch, workers=spec.workers, threads=spec.threads or 0, batch_size=n, seconds=MEASURE_S)
        median = n / m.samples_per_s
        how = f"{m.calls} timed calls of {n} samples by {spec.workers} workers at once"
    else:
        times: list[float] = []
        start = time.perf_counter()
        # The backend is warm already (one untimed batch): a slow model (BERT on a laptop) is timed once.
        while len(times) < 200 and (not times or time.perf_counter() - start < MEASURE_S):
            t = time.perf_counter()
            infer(batch)
            times.append(time.perf_counter() - t)
            if time.perf_counter() - start > MEASURE_MAX_S:
                break
        median = float(np.median(times))
        how = f"{len(times)} timed calls of {n} sample{'s' if n > 1 else ''}"
    if kind.one_query:
        qps = n / median
        return qps * 1.1, (f"measured {qps:.4g} samples/s ({how}); declared 10% higher so the run lasts "
                           "at least the minimum duration")
    if kind.scheduled:
        qps = n / median
        return qps * 0.8, (f"measured {qps:.4g} samples/s at batch {n} ({how}); arrival rate set to 80% "
                           "of it so the queue stays short")
    ms = median * 1000
    return ms * 0.9, (f"measured a median of {ms:.4g} ms per query ({how}); declared 10% faster so "
                      "LoadGen does not run out of generated queries")


class RateWindow:
    """Samples per second, measured from burst to burst, over the last ``window_s`` seconds and never over
    fewer than ``bursts`` intervals between completions.

    Completions come in bursts (a batch of 8, an Offline query's samples together), so the count since the
    previous reading jumps between 0 and a burst; a slow model completes a batch every 20 s. Counting the
    samples between the first and the last burst of the window over the time between them gives the rate
    a user can act on, steady between bursts; when the next burst is later than the usual gap, the rate
    falls as the wait grows. The one rate every front end shows (CLI, plain prompts, TUI number and plot)
    is this one, sent in ``qps``."""

    def __init__(self, window_s: float = RATE_WINDOW_S, bursts: int = 2):
        self.window_s, self.bursts = window_s, bursts
        self.first: tuple[float, int] | None = None
        self.last_done = 0
        self.seen: collections.deque[tuple[float, int]] = collections.deque(maxlen=10_000)
        """(time, completed) at each reading where the count went up."""

    def add(self, t: float, completed: int) -> float:
        """Record a reading and return the rate it gives (0.0 before any completion)."""
        if self.first is None:
            self.first = (t, completed)
        if completed > self.last_done:
            self.seen.append((t, completed))
        self.last_done = completed
        seen = self.seen
        while len(seen) > self.bursts + 1 and t - seen[1][0] >= self.window_s:
            seen.popleft()
        if len(seen) < 2:  # one burst so far: since the start
            t0, done0 = self.first
            return (completed - done0) / (t - t0) if t > t0 else 0.0
        (t_first, done_first), (t_last, done_last) = seen[0], seen[-1]
        span = t_last - t_first
        gap = span / (len(seen) - 1)
        late = max(0.0, (t - t_last) - gap)  # waiting longer than usual for the next burst
        return (done_last - done_first) / (span + late) if span + late > 0 else 0.0


class Reporter(threading.Thread):
    """Sends progress a few times a second: counters, the windowed rate, percentiles of recent latencies."""

    def __init__(self, stats, events: EventWriter, expected: int, min_duration_s: float):
        super().__init__(name="progress-reporter", daemon=True)
        self.stats, self.events, self.expected, self.min_duration_s = stats, events, expected, min_duration_s
        self.stop = threading.Event()
        self.rate = RateWindow()

    def run(self) -> None:
        seen = 0
        self.rate.add(self.stats.started, 0)
        while not self.stop.wait(REPORT_INTERVAL_S):
            seen = self.report(seen)
        self.report(seen)

    def report(self, seen: int) -> int:
        import numpy as np

        s = self.stats
        now = time.monotonic()
        done = s.completed
        recent = s.latencies[seen:]
        window = np.array(recent[-5000:] if recent else s.latencies[-200:], dtype=np.float64) * 1000
        pct = {}
        if window.size:
            p50, p90, p99 = np.percentile(window, [50, 90, 99])
            pct = {"p50_ms": round(float(p50), 3), "p90_ms": round(float(p90), 3), "p99_ms": round(float(p99), 3)}
        elapsed = now - s.started
        self.events.emit(ev.Progress(issued=s.issued, completed=done, expected=self.expected,
                         qps=round(self.rate.add(now, done), 3), qps_window_s=self.rate.window_s,
                         mean_qps=round(done / max(elapsed, 1e-6), 3), elapsed_s=round(elapsed, 2),
                         min_duration_s=self.min_duration_s, **pct))
        return len(s.latencies)


def sut_timing(stats) -> dict[str, float]:
    """p50, p90 and max of the backend call alone and of issue-to-completion inside the SUT, in ms."""
    import numpy as np

    out = {}
    for name, values in (("infer", stats.infer_times), ("issue_to_complete", stats.latencies)):
        if values:
            p50, p90 = np.percentile(np.array(values) * 1000, [50, 90])
            out[f"{name}_p50"], out[f"{name}_p90"] = round(float(p50), 4), round(float(p90), 4)
            out[f"{name}_max"] = round(float(max(values)) * 1000, 4)
    return out


def run_test(spec: TestSpec, events: EventWriter) -> None:
    import mlperf_loadgen as lg

    from .backends import load_backend
    from .loadgen_settings import expected_samples, test_settings
    from .models.families import family
    from .models.registry import MODELS
    from .sut import QSL, SUT, Stats, worker_warmup

    out = Path(spec.out_dir)
    events.emit(ev.Phase(phase="preparing", detail="model"))
    ensure_model(spec, events)
    fam = family(spec.model)

    def dataset_for(layout):
        if spec.dataset_path:
            events.emit(ev.Phase(phase="preparing", detail=f"dataset from {spec.dataset_path}"))
            return fam.real_dataset(Path(spec.dataset_path), spec.dataset_count, layout, _dataset_progress(events))
        return fam.synthetic_dataset(spec.dataset_count, layout)

    if spec.mode in MEASURING_STEPS:
        from .tune_child import run_step

        run_step(spec, events, dataset_for)
        return
    events.emit(ev.Phase(phase="loading", detail=f"loading the model into {spec.backend} ({spec.device})"))
    backend = load_backend(spec.backend, Path(spec.model_path), device=spec.device, threads=spec.threads,
                           outputs=fam.io.outputs, model=spec.model, precision=spec.precision,
                           compile_mode=spec.compile)
    for notice in backend.notices:
        events.emit(ev.Warn(message=notice))
    task = fam.task(backend)
    infer = with_faults(task.infer)
    dataset = dataset_for(getattr(task, "layout", None))

    # Warm up before LoadGen's clock starts: first calls allocate buffers and pick kernels (or compile).
    staging = backend.staging()
    batch = staged_batch(staging, dataset, max(1, spec.batch_size))
    with heartbeat(events, "warming up", backend.warmup_text, backend.warmup_short):
        infer(batch)

    # An accuracy run needs a target only in Server, where LoadGen schedules the queries at the target rate:
    # Offline issues every sample at once and the stream scenarios issue each query when the last is done.
    target, reason = spec.target, spec.target_reason
    if target is None and spec.mode == "accuracy" and not scenario_type(spec.scenario).scheduled:
        reason = "not used by an accuracy run of this scenario: no measurement"
    elif target is None:
        events.emit(ev.Phase(phase="measuring", detail="measuring the SUT to choose the LoadGen target"))
        target, reason = measure_target(spec, infer, batch)
    if target is not None:
        unit = "queries/s" if spec.target_kind == "target_qps" else "ms"
        events.emit(ev.Target(target_kind=spec.target_kind, value=round(target, 6), unit=unit, reason=reason))

    settings = test_settings(spec, target, out / "user.conf")

    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(out)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False

    stats = Stats()
    qsl = QSL(dataset, dataset.count, spec.performance_sample_count, staging)

    def on_error(exc: BaseException) -> None:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        events.emit(ev.Error(message=f"the {spec.backend} backend raised {type(exc).__name__} during a "
                    f"query: {exc}", fix="see the log for the traceback; the run was stopped."))
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(70)  # LoadGen cannot be stopped cleanly once a sample is lost

    sut = SUT(infer, qsl, spec.scenario, batch_size=spec.batch_size, workers=spec.workers, stats=stats,
              on_error=on_error, pass_indices=getattr(task, "needs_indices", False),
              warmup=worker_warmup(spec.scenario, infer, batch, staging, dataset))
    expected = expected_samples(spec, settings)
    min_duration_s = settings.min_duration_ms / 1000 if spec.mode == "performance" else 0.0
    events.emit(ev.Phase(phase="running", detail=f"LoadGen {spec.scenario} {spec.mode}", expected=expected,
                min_duration_s=min_duration_s))
    reporter = Reporter(stats, events, expected, min_duration_s)
    stats.started = time.monotonic()
    reporter.start()
    # A missing audit file keeps a stray audit.config in the working directory from changing the run.
    lg.StartTestWithLogSettings(sut.handle, qsl.handle, settings, log_settings, str(out / "no-audit.config"))
    reporter.stop.set()
    reporter.join()
    sut.destroy()
    qsl.destroy()
    events.emit(ev.SutTiming(ms=sut_timing(stats)))

    if spec.mode == "accuracy":
        events.emit(ev.Phase(phase="accuracy", detail="computing accuracy from mlperf_log_accuracy.json"))
        log = out / "mlperf_log_accuracy.json"
        result = fam.accuracy(log, dataset)
        model = MODELS[spec.model]
        target_value = model.reference_accuracy * model.targets[0]
        result.update({"reference": model.reference_accuracy, "target_fraction": model.targets[0],
                       "target": target_value, "passed": result["value"] >= target_value,
                       "synthetic": spec.model_synthetic or spec.dataset_synthetic})
        (out / "accuracy.txt").write_text(fam.accuracy_text(result, log), encoding="utf-8")
        (out / "accuracy.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        events.emit(ev.Accuracy(result=result))
    events.emit(ev.Phase(phase="done", detail="LoadGen finished"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    events = EventWriter.from_env()
    try:
        spec = TestSpec.from_dict(json.loads(Path(argv[0]).read_text(encoding="utf-8")))
        run_test(spec, events)
    except WizardError as exc:
        events.emit(ev.Error(message=exc.message, fix=exc.fix))
        return 3
    except Exception as exc:
        traceback.print_exc()
        events.emit(ev.Error(message=f"internal error: {type(exc).__name__}: {exc}",
                    fix="see the test's run.log for the traceback."))
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
