"""The measuring steps of a plan, run in a test's child process (the framework is loaded there anyway):
``tune`` finds the SUT settings of a scenario, ``search`` the highest Server rate that meets the latency
bound. Each writes what it measured to its folder (``tune.json``, ``search.json``) for the parent to keep
and apply; see :mod:`harness.tuning` for why and how.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import events as ev
from .events import EventWriter
from .faults import with_faults
from .plan import TestSpec
from .scenarios import scenario as scenario_type
from .staging import staged_batch
from .tuning import (
    BATCHES,
    SEARCH_BUDGET_S,
    TUNE_BUDGET_S,
    Measured,
    SutConfig,
    Tuned,
    latency_threads,
    measure,
    model_rate,
    splits,
    usable_cores,
)

PROBE_QUERIES = 256
"""Queries in a bisection probe: enough for a 99th percentile that moves with the rate (the tail's 3 slowest)."""
PROBE_MIN_S = 2.0
PROBE_MAX_S = 8.0
"""A slow SUT's probes get fewer queries rather than more time (but at least :data:`MIN_PROBE_QUERIES`)."""
MIN_PROBE_QUERIES = 32
CONFIRM_QUERIES = 1500
"""Queries in the confirmation run: LoadGen's early stopping can then claim the 99th percentile with a
few queries over the bound."""
EARLY_STOPPING_QUERIES = 700
"""Fewer than this and LoadGen's early stopping cannot claim a 99th percentile (with none over the bound it
needs about 660): the confirmation then judges the plain 99th percentile and says so."""
CONFIRM_MAX_S = 30.0
COMPLIANT_S = 600.0
"""mlperf.conf's Server min_duration: a rate with fewer than :data:`EARLY_STOPPING_QUERIES` queries in it
cannot give a VALID compliant run."""
JITTER_FRACTION = 0.15
"""A probe that fails at this fraction of the modelled rate (or lower) shows a tail the queueing of the
measured calls does not explain: the SUT's own jitter. (Above it, a failing probe is halved: the model
leaves out the harness's own work per query, which a lower rate does cut.)"""
TOLERANCE = 0.07
"""Bisection stops when the passing and failing rates are this close (relative)."""
PROBE_MARGIN = 0.9
"""A bisection probe passes when its measured p99 is within this fraction of the bound: a short probe's
p99 is noisy, and the long run's must hold."""
STEPS_MAX = 7


@dataclass
class Loaded:
    """The backend loaded with one thread count, and what a measurement calls."""

    threads: int
    infer: Callable
    staging: Any
    backend: Any
    task: Any
    batches: dict[int, Any] = field(default_factory=dict)


class Loader:
    """Loads the backend once per thread count (the previous one is dropped first: two BERTs in memory
    are 2.7 GB) and stages batches of the dataset as the QSL would."""

    def __init__(self, spec: TestSpec, events: EventWriter, dataset_for: Callable[[Any], Any]):
        self.spec, self.events, self.dataset_for = spec, events, dataset_for
        self.current: Loaded | None = None
        self.dataset = None
        self.fixed_threads: int | None = None
        """Set when the backend cannot change its thread count within a process (TVM's pool)."""

    def get(self, threads: int) -> Loaded:
        from .backends import load_backend
        from .models.families import family

        if self.current is not None and self.current.threads == threads:
            return self.current
        self.current = None
        gc.collect()
        spec = self.spec
        fam = family(spec.model)
        self.events.emit(ev.Phase(phase="tuning", detail=f"loading {spec.backend} with "
                                  f"{threads or 'its default'} thread{'s' if threads != 1 else ''} per call",
                                  update=True))
        backend = load_backend(spec.backend, Path(spec.model_path), device=spec.device, threads=threads or None,
                               outputs=fam.io.outputs, model=spec.model, precision=spec.precision,
                               compile_mode=spec.compile)
        if getattr(backend, "threads_per_process", False):
            self.fixed_threads = threads
        task = fam.task(backend)
        if self.dataset is None:
            self.dataset = self.dataset_for(getattr(task, "layout", None))
        self.current = Loaded(threads, with_faults(task.infer), backend.staging(), backend, task)
        return self.current

    def batch(self, loaded: Loaded, size: int):
        if size not in loaded.batches:
            loaded.batches = {size: staged_batch(loaded.staging, self.dataset, size)}
        return loaded.batches[size]


def _progress(events: EventWriter, done: int, m: Measured, objective: str) -> None:
    figure = (f"{m.samples_per_s:.4g} samples/s" if objective == "throughput"
              else f"p90 {m.p90_ms:.3g} ms")
    events.emit(ev.Phase(phase="tuning", detail=f"{done} measured; {m.config.text()}: {figure}", update=True))


def _threads(spec: TestSpec, cores: int) -> int | None:
    """The one thread count to measure, where there is one: the user's, or all cores where the backend
    fixes the count per process."""
    from .backends.base import backend_class

    if "threads" in spec.tune_fixed:
        return spec.threads
    return cores if backend_class(spec.backend).threads_per_process else None


def _pairs(spec: TestSpec, cores: int) -> list[tuple[int, int]]:
    """The splits (workers, threads) to measure; on a GPU the plan's workers with the framework's threads
    (0): the cores only feed it."""
    if not spec.device.startswith("cpu"):
        return [(spec.workers, 0)]
    return splits(cores, spec.workers if "workers" in spec.tune_fixed else None, _threads(spec, cores))


def _score(m: Measured, objective: str) -> float:
    return m.samples_per_s if objective == "throughput" else -m.p90_ms


def tune(spec: TestSpec, events: EventWriter, loader: Loader) -> Tuned:
    """Offline: the split of the cores, then the batch size; SingleStream/MultiStream: threads per query."""
    started = time.monotonic()
    cores = usable_cores()
    fixed = set(spec.tune_fixed)
    kind = scenario_type(spec.scenario)
    objective = "throughput" if kind.throughput else "latency"
    measured: list[Measured] = []
    notes: list[str] = []

    def left() -> float:
        return TUNE_BUDGET_S - (time.monotonic() - started)

    def run(workers: int, threads: int, batch: int) -> Measured | None:
        if loader.fixed_threads and threads != loader.fixed_threads:
            return None
        for m in measured:
            if m.config == SutConfig(workers, threads, batch):
                return m
        loaded = loader.get(threads)
        m = measure(loaded.infer, loader.batch(loaded, batch), workers=workers, threads=threads, batch_size=batch)
        measured.append(m)
        _progress(events, len(measured), m, objective)
        return m

    def best() -> Measured:
        return max(measured, key=lambda m: _score(m, objective))

    if objective == "throughput":
        b0 = spec.batch_size
        pairs = _pairs(spec, cores)
        # The thread counts the backend loads with, fewest loads first: one load per count.
        for workers, threads in sorted(pairs, key=lambda p: p[1]):
            if measured and left() <= 0:
                notes.append("the time budget ended before every split was measured")
                break
            run(workers, threads, b0)
        if "batch_size" not in fixed:
            w, t = best().workers, best().threads
            for direction in (2, 0.5):  # up while it helps, then down while it helps
                current = b0
                while left() > 0:
                    nxt = int(current * direction)
                    if nxt < 1 or nxt > max(BATCHES) or nxt > spec.performance_sample_count:
                        break
                    before = best().samples_per_s
                    m = run(w, t, nxt)
                    if m is None or m.samples_per_s <= before * 1.02:
                        break
                    current = nxt
    else:
        for threads in latency_threads(cores, _threads(spec, cores)):
            if measured and left() <= 0:
                notes.append("the time budget ended before every thread count was measured")
                break
            run(1, threads, spec.batch_size)
    if loader.fixed_threads:
        notes.append(f"{spec.backend} keeps one thread count per process: only {loader.fixed_threads} measured")
    # The two best measured again: one short measurement each is noisy, and the best of many noisy ones
    # is biased upwards; the choice is made on their average.
    ranked = sorted(measured, key=lambda m: _score(m, objective), reverse=True)[:2]
    if len(ranked) == 2 and left() > -10:
        for m in ranked:
            loaded = loader.get(m.threads)
            again = measure(loaded.infer, loader.batch(loaded, m.batch_size), workers=m.workers, threads=m.threads,
                            batch_size=m.batch_size)
            m.samples_per_s = round((m.samples_per_s + again.samples_per_s) / 2, 3)
            m.p50_ms, m.p90_ms = round((m.p50_ms + again.p50_ms) / 2, 4), round((m.p90_ms + again.p90_ms) / 2, 4)
            m.p99_ms = round(max(m.p99_ms, again.p99_ms), 4)
            m.calls += again.calls
    chosen = best()
    return Tuned(objective, chosen.config, measured, round(time.monotonic() - started, 2), notes=notes)


# --- Server ------------------------------------------------------------------------------------------

@dataclass
class Probe:
    """One short LoadGen Server run at a fixed arrival rate."""

    workers: int
    threads: int
    qps: float
    queries: int
    p99_ms: float | None
    completed_qps: float | None
    passed: bool
    loadgen_valid: bool
    kind: str
    """bisection | confirmation"""


@dataclass
class Searched:
    found: bool
    qps: float | None
    config: SutConfig | None
    bound_ms: float
    reason: str
    isolated: list[dict[str, Any]]
    probes: list[Probe]
    seconds: float
    basis: str = "probed"
    """probed (LoadGen runs found the rate) | modelled (the queueing model alone: too slow to probe)"""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["schema"] = 1
        return out


def _probe(spec: TestSpec, loaded: Loaded, qsl, out: Path, *, workers: int, qps: float, queries: int,
           kind: str, bound_ms: float) -> Probe:
    import mlperf_loadgen as lg

    from .loadgen_settings import probe_settings
    from .results import latency_summary, parse_detail
    from .sut import SUT, Stats, worker_warmup

    folder = out / f"probe-{len(list(out.glob('probe-*'))) + 1:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    min_s = min(PROBE_MIN_S, queries / max(qps, 1e-6))
    settings = probe_settings(spec, qps, queries, min_s, folder / "user.conf")
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(folder)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False
    failure: list[BaseException] = []
    sut = SUT(loaded.infer, qsl, "Server", batch_size=spec.batch_size, workers=workers, stats=Stats(),
              on_error=failure.append, pass_indices=getattr(loaded.task, "needs_indices", False),
              warmup=worker_warmup("Server", loaded.infer, staged_batch(loaded.staging, qsl.dataset, spec.batch_size),
                                   loaded.staging, qsl.dataset))
    try:
        lg.StartTestWithLogSettings(sut.handle, qsl.handle, settings, log_settings, str(folder / "no-audit.config"))
    finally:
        sut.destroy()
    if failure:
        raise failure[0]
    detail = parse_detail(folder / "mlperf_log_detail.txt")
    p99 = latency_summary(detail).get("p99")
    completed = detail.get("result_completed_samples_per_sec")
    passed = p99 is not None and p99 <= bound_ms * (PROBE_MARGIN if kind == "bisection" else 1.0)
    valid = detail.get("result_validity") == "VALID"
    judged_by_loadgen = kind == "confirmation"
    return Probe(workers, loaded.threads, round(qps, 3), queries, p99, float(completed) if completed else None,
                 passed and (valid or not judged_by_loadgen), valid, kind)


def _queries(rate: float, wanted: int, seconds: float) -> int | None:
    """Queries for a probe at ``rate`` within ``seconds``; None when not even the minimum fits."""
    fit = int(rate * seconds)
    if fit < MIN_PROBE_QUERIES or seconds <= 0:
        return None
    return min(wanted, fit)


def search(spec: TestSpec, events: EventWriter, loader: Loader, out: Path) -> Searched:
    """The highest Server arrival rate whose 99th percentile meets the model's bound, or why none does."""
    from .models.registry import MODELS
    from .sut import QSL

    started = time.monotonic()
    bound = float(MODELS[spec.model].server_latency_bound_ms)
    cores = usable_cores()
    pairs = _pairs(spec, cores)
    isolated: list[dict[str, Any]] = []
    # 1. Each split, one query at a time and then with every worker busy: the latency floor and the capacity.
    for workers, threads in sorted(pairs, key=lambda p: p[1]):
        if loader.fixed_threads and threads != loader.fixed_threads:
            continue
        loaded = loader.get(threads)
        one = measure(loaded.infer, loader.batch(loaded, 1), workers=1, threads=threads, batch_size=1)
        busy = measure(loaded.infer, loader.batch(loaded, 1), workers=workers, threads=threads, batch_size=1)
        capacity = busy.samples_per_s
        if spec.batch_size > 1:  # the SUT batches what queues up: the rate it can reach is the batched one
            full = measure(loaded.infer, loader.batch(loaded, spec.batch_size), workers=workers, threads=threads,
                           batch_size=spec.batch_size)
            capacity = max(capacity, full.samples_per_s)
        # The calls of the busy measurement: what a query costs while the other workers run too.
        predicted = model_rate(busy.durations_ms, workers, bound * PROBE_MARGIN, capacity)
        isolated.append({"workers": workers, "threads": threads, "alone_p50_ms": one.p50_ms,
                         "alone_p99_ms": one.p99_ms, "busy_p99_ms": busy.p99_ms,
                         "capacity_qps": round(capacity, 3), "model_qps": round(predicted, 3)})
        events.emit(ev.Phase(phase="searching", detail=f"{workers} x {threads or 'default'} threads: one query p99 "
                             f"{one.p99_ms:.3g} ms, capacity {capacity:.4g} queries/s, the bound ({bound:g} ms) "
                             f"allows about {predicted:.4g}", update=True))
    feasible = sorted((i for i in isolated if i["alone_p99_ms"] <= bound * PROBE_MARGIN),
                      key=lambda i: -i["model_qps"])
    if not feasible:
        fastest = min(isolated, key=lambda i: i["alone_p99_ms"])
        reason = (f"no arrival rate can meet the {bound:g} ms bound here: even one query at a time has a 99th "
                  f"percentile of {fastest['alone_p99_ms']:.3g} ms at best ({fastest['workers']} x "
                  f"{fastest['threads']} threads; median {fastest['alone_p50_ms']:.3g} ms)")
        return Searched(False, None, None, bound, reason, isolated, [], round(time.monotonic() - started, 2))
    # 2. Bisection with short LoadGen runs, on the two splits with the highest modelled rates.
    probes: list[Probe] = []
    jitter: list[str] = []
    impractical: list[str] = []
    best: tuple[float, SutConfig] | None = None
    modelled: tuple[float, SutConfig, dict[str, Any]] | None = None
    dataset_ready = loader.dataset

    def left() -> float:
        return SEARCH_BUDGET_S - (time.monotonic() - started)

    def say(p: Probe, what: str) -> None:
        p99 = f"{p.p99_ms:.3g} ms" if p.p99_ms is not None else "not measured"
        events.emit(ev.Phase(phase="searching", detail=f"{what} {p.workers} x {p.threads or 'default'} threads at "
                             f"{p.qps:.4g} queries/s: p99 {p99} ({'passed' if p.passed else 'failed'})",
                             update=True))

    for candidate in feasible[:2]:
        workers, threads = candidate["workers"], candidate["threads"]
        if best is not None and (candidate["capacity_qps"] <= best[0] or left() < SEARCH_BUDGET_S / 2):
            continue  # it cannot beat the rate already confirmed, or there is no time to find out
        predicted = candidate["model_qps"]
        if predicted * COMPLIANT_S < EARLY_STOPPING_QUERIES:
            most = (f"at most about {predicted:.3g} queries/s" if predicted > 0 else
                    f"under {candidate['capacity_qps'] * 0.004:.2g} queries/s")
            impractical.append(f"{workers} x {threads} threads (one query alone: p99 "
                               f"{candidate['alone_p99_ms']:.3g} ms, with every worker busy "
                               f"{candidate['busy_p99_ms']:.3g} ms): queueing lets the bound allow {most}")
            continue
        if _queries(predicted, PROBE_QUERIES, PROBE_MAX_S) is None:
            # Too slow a rate to probe in seconds: the model's figure is the answer, and the run decides.
            if modelled is None or predicted > modelled[0]:
                modelled = (predicted, SutConfig(workers, threads, spec.batch_size), candidate)
            continue
        loaded = loader.get(threads)
        qsl = QSL(dataset_ready, dataset_ready.count, spec.performance_sample_count, loaded.staging)
        try:
            lo, hi = 0.0, candidate["capacity_qps"]
            rate = min(predicted, hi * 0.95)
            for _ in range(STEPS_MAX):
                queries = _queries(rate, PROBE_QUERIES, min(PROBE_MAX_S, left()))
                if queries is None:
                    break
                p = _probe(spec, loaded, qsl, out, workers=workers, qps=rate, queries=queries, kind="bisection",
                           bound_ms=bound)
                probes.append(p)
                say(p, "probe")
                if p.passed:
                    lo = rate
                else:
                    hi = rate
                    if not lo and rate <= predicted * JITTER_FRACTION:
                        # Queueing as measured would keep this rate well within the bound: the tail is the
                        # SUT's own jitter (workers slowing each other down), which a lower rate hardly helps.
                        jitter.append(f"{workers} x {threads} threads: p99 {p.p99_ms:.3g} ms at {rate:.4g} "
                                      f"queries/s, where queueing behind the measured calls would allow "
                                      f"{predicted:.4g}")
                        break
                if lo and (hi - lo) / hi < TOLERANCE:
                    break
                rate = (lo + hi) / 2 if lo else rate * 0.5
            # 3. The best passing rate, confirmed by a run long enough for LoadGen's early stopping where the
            # time allows (about 700 queries with none over the bound), else by its 99th percentile alone.
            rate = lo
            for _ in range(4):
                queries = _queries(rate, CONFIRM_QUERIES, min(CONFIRM_MAX_S, left())) if rate > 0 else None
                if queries is None:
                    break
                kind = "confirmation" if queries >= EARLY_STOPPING_QUERIES else "confirmation (p99 only)"
                p = _probe(spec, loaded, qsl, out, workers=workers, qps=rate, queries=queries, kind=kind,
                           bound_ms=bound)
                probes.append(p)
                say(p, "confirming")
                if p.passed:
                    if best is None or rate > best[0]:
                        best = (rate, SutConfig(workers, threads, spec.batch_size))
                    break
                rate *= 0.85
        finally:
            qsl.destroy()
    seconds = round(time.monotonic() - started, 2)
    if best is None and modelled is not None:
        rate, config, candidate = modelled
        median = candidate["alone_p50_ms"]
        reason = (f"modelled: {rate:.4g} queries/s with {config.text()}, {rate / candidate['capacity_qps']:.1%} "
                  f"of its capacity: the {bound:g} ms bound leaves {bound - median:.3g} ms for waiting behind "
                  f"calls of {median:.3g} ms (the median), so queries must rarely meet. Estimated by a "
                  f"queueing model of the measured calls (Poisson arrivals, {config.workers} worker(s)), not probed: "
                  f"{MIN_PROBE_QUERIES} queries take {MIN_PROBE_QUERIES / rate:.0f} s at that rate; the run "
                  f"decides ({seconds:.0f} s)")
        return Searched(True, round(rate, 4), config, bound, reason, isolated, probes, seconds, "modelled")
    if best is None:
        confirming = [p for p in probes if p.kind.startswith("confirmation")]
        lowest = min(probes, key=lambda p: p.qps) if probes else None
        if confirming:
            tried = ", ".join(f"{p.qps:.4g} (p99 {p.p99_ms:.3g} ms)" if p.p99_ms is not None else f"{p.qps:.4g}"
                              for p in confirming)
            reason = (f"no rate was confirmed against the {bound:g} ms bound: short probes passed up to "
                      f"{max(p.qps for p in probes if p.passed):.4g} queries/s, but the longer runs at {tried} "
                      "queries/s were not VALID (LoadGen's early stopping counts every query over the bound): "
                      "the latency tail is unsteady here (other work on this machine?)")
        elif jitter or impractical:
            parts = []
            if jitter:
                parts.append(f"{'; '.join(jitter)}: the tail is the SUT's own jitter, which a lower rate "
                             "hardly shortens")
            if impractical:
                parts.append(f"{'; '.join(impractical)}, so a {COMPLIANT_S:.0f} s run has fewer than the "
                             f"{EARLY_STOPPING_QUERIES} queries LoadGen's early stopping needs")
            reason = f"no useful arrival rate meets the {bound:g} ms bound: {'; and '.join(parts)}"
        elif lowest is not None and lowest.p99_ms is not None:
            reason = (f"no rate met the {bound:g} ms bound down to {lowest.qps:.4g} queries/s (p99 "
                      f"{lowest.p99_ms:.3g} ms there)")
        else:
            reason = f"no rate met the {bound:g} ms bound within the search's {SEARCH_BUDGET_S:.0f} s"
        return Searched(False, None, None, bound, reason, isolated, probes, seconds)
    rate, config = best
    last = next(p for p in reversed(probes) if p.kind.startswith("confirmation") and p.passed)
    how = ("LoadGen VALID, early stopping met" if last.kind == "confirmation" else
           "its p99 alone: too few queries in the time for LoadGen's early stopping, the long run decides")
    reason = (f"searched: {rate:.4g} queries/s with {config.text()} met the {bound:g} ms bound in a "
              f"{last.queries}-query run (p99 {last.p99_ms:.3g} ms; {how}); {len(probes)} probe runs in "
              f"{seconds:.0f} s")
    return Searched(True, round(rate, 4), config, bound, reason, isolated, probes, seconds)


def run_step(spec: TestSpec, events: EventWriter, dataset_for: Callable[[Any], Any]) -> None:
    """The child's work for a ``tune`` or ``search`` step: measure, write the record, say what was found."""
    out = Path(spec.out_dir)
    loader = Loader(spec, events, dataset_for)
    if spec.mode == "tune":
        events.emit(ev.Phase(phase="tuning", detail=f"measuring {spec.backend}'s SUT settings for {spec.scenario} "
                             f"(at most about {TUNE_BUDGET_S:.0f} s)"))
        tuned = tune(spec, events, loader)
        (out / "tune.json").write_text(json.dumps(tuned.to_dict(), indent=2) + "\n", encoding="utf-8")
        events.emit(ev.Log(message=f"chose {tuned.best.text()}: {tuned.reason()}"))
    else:
        events.emit(ev.Phase(phase="searching", detail=f"probing Server rates against the latency bound "
                             f"(at most about {SEARCH_BUDGET_S:.0f} s)"))
        found = search(spec, events, loader, out)
        (out / "search.json").write_text(json.dumps(found.to_dict(), indent=2) + "\n", encoding="utf-8")
        events.emit(ev.Log(message=found.reason) if found.found else ev.Warn(message=found.reason))
    events.emit(ev.Phase(phase="done", detail="measured"))
