"""SUT settings found by measurement, per machine, and remembered: the seed's per-``hw_name`` SUT
configurations, kept current by the tool instead of by hand.

Why: ONNX Runtime's intra-op scaling at batch 8 is poor on many cores. On the GPU machine's 16 CPU cores one
worker with 16 intra-op threads reached 127 samples/s on ResNet50 where MLCommons' reference, running 16
concurrent calls, reached 177; on 2 cores the same fixed choice is as good as any. No fixed rule is right on
both, so the CPU's split between concurrent calls (workers) and intra-op threads per call, and the batch
size, are measured on the machine itself:

- ``tune`` (Offline; SingleStream and MultiStream for threads): a short, bounded search, run in the test's
  child process (the framework is there anyway). Offline measures each split of the cores (workers x
  threads, workers x threads <= cores) at one batch size, then the batch sizes at the best split; the
  stream scenarios measure the latency of one query per thread count. Each candidate runs for about a
  second after an untimed call; the whole search stops at :data:`TUNE_BUDGET_S` with the best so far.
- ``search`` (Server, target ``auto``): the highest arrival rate whose 99th percentile latency meets the
  model's bound (mlperf.conf's, e.g. ResNet50 15 ms), found by probing: first each split's latency with
  one query at a time (if no split answers an isolated query within the bound, no rate can: that is said
  at once, with the figures), then a queueing model of the measured calls (:func:`model_rate`) gives the
  rate to probe first, short LoadGen Server runs bisect between 0 and the split's measured capacity, and
  one confirmation run long enough for LoadGen's early-stopping estimate checks the best.

What is found is remembered in the state folder (``tuning.json``) per machine (CPU model and usable
cores), model file, backend and version, device, precision and scenario, with every measurement behind
it; a changed machine, backend version or model file gives a different key, so an old result is never
reused for it. Explicit ``--workers``, ``--threads`` and ``--batch-size`` always win: only the settings
left unset are searched.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .fsutil import atomic_write_json, read_json_object
from .paths import locations
from .targets import key_text

TUNE_BUDGET_S = 45.0
"""The most a first tune spends measuring (the issue's goal: under 60 s on 2 cores, loads included)."""
SEARCH_BUDGET_S = 150.0
"""The most a Server search spends on probe runs before it settles for the best rate found so far."""
MEASURE_S = 1.0
"""Each candidate's timed span, after one untimed call per worker."""
BATCHES = (1, 2, 4, 8, 16, 32, 64)
SCHEMA = 1


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_id() -> dict[str, str]:
    """What makes a measurement stale when it changes: the CPU and the cores this process may use."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": str(usable_cores())}


def model_id(path: str, synthetic: bool, variant: str | None, precision: str) -> str:
    """The model file as a key: a synthetic model is fixed by its variant and seed; a file by its size and
    modification time (hashing a 1.3 GB BERT at every plan would cost seconds)."""
    if synthetic:
        return f"synthetic:{variant or 'full'}:{precision}"
    try:
        st = os.stat(path)
    except OSError:
        return f"file:{path}:missing"
    return f"file:{path}:{st.st_size}:{st.st_mtime_ns}"


@dataclass(frozen=True)
class SutConfig:
    """How the SUT runs a scenario: concurrent inference calls, intra-op threads per call, samples per call."""

    workers: int
    threads: int
    batch_size: int

    def text(self) -> str:
        w, t = self.workers, self.threads
        threads = "the framework's threads" if t == 0 else f"{t} thread{'s' if t != 1 else ''}"
        return f"{w} worker{'s' if w != 1 else ''} x {threads}, batch {self.batch_size}"


@dataclass
class Measured:
    """One candidate's measurement."""

    workers: int
    threads: int
    batch_size: int
    samples_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    calls: int
    durations_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)
    """Every timed call (kept in memory for the Server search's queueing model, not stored)."""

    @property
    def config(self) -> SutConfig:
        return SutConfig(self.workers, self.threads, self.batch_size)

    def text(self) -> str:
        return (f"{self.config.text()}: {self.samples_per_s:.4g} samples/s, call p50 {self.p50_ms:.3g} ms, "
                f"p90 {self.p90_ms:.3g} ms ({self.calls} calls)")


RECORDED = tuple(k for k in Measured.__dataclass_fields__ if k != "durations_ms")


def _recorded(m: Measured) -> dict[str, Any]:
    return {k: getattr(m, k) for k in RECORDED}


@dataclass
class Tuned:
    """A finished tune: the choice, why, and every measurement behind it."""

    objective: str
    """throughput (Offline) or latency (SingleStream, MultiStream: the p90 of one query)"""
    best: SutConfig
    measured: list[Measured]
    seconds: float
    when: str = ""
    notes: list[str] = field(default_factory=list)

    def best_measure(self) -> Measured:
        return next(m for m in self.measured if m.config == self.best)

    def reason(self) -> str:
        m = self.best_measure()
        figure = (f"{m.samples_per_s:.4g} samples/s" if self.objective == "throughput"
                  else f"p90 {m.p90_ms:.3g} ms per query")
        when = f" on {self.when[:10]}" if self.when else ""
        return f"tuned{when}: {figure}, the best of {len(self.measured)} settings measured in {self.seconds:.0f} s"

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "objective": self.objective, "best": asdict(self.best),
                "measured": [_recorded(m) for m in self.measured], "seconds": self.seconds, "when": self.when,
                "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, data: Any) -> Tuned | None:
        """None for anything that is not a whole record of this schema (a damaged or older file)."""
        try:
            if data.get("schema") != SCHEMA:
                return None
            measured = [Measured(**{k: m[k] for k in RECORDED}) for m in data["measured"]]
            best = SutConfig(**{k: int(data["best"][k]) for k in ("workers", "threads", "batch_size")})
            tuned = cls(str(data["objective"]), best, measured, float(data["seconds"]), str(data.get("when") or ""),
                        [str(n) for n in data.get("notes") or []])
            tuned.best_measure()
            if min(best.workers, best.threads, best.batch_size) < 1:
                return None
            return tuned
        except (AttributeError, KeyError, TypeError, ValueError, StopIteration):
            return None


# --- the store ---------------------------------------------------------------------------------------

def _store_path() -> Path:
    return locations().state / "tuning.json"


def _read_store() -> dict:
    return read_json_object(_store_path())


def lookup(key: dict[str, str]) -> Tuned | None:
    entry = _read_store().get(key_text(key))
    return Tuned.from_dict(entry.get("tuned")) if isinstance(entry, dict) else None


def remember(key: dict[str, str], tuned: Tuned) -> None:
    data = _read_store()
    data[key_text(key)] = {"key": key, "tuned": tuned.to_dict()}
    atomic_write_json(_store_path(), data)


def remember_search(key: dict[str, str], searched: dict[str, Any]) -> None:
    """Keep a Server search's outcome (found or not, with its probes) for the next plan."""
    data = _read_store()
    data[key_text(key)] = {"key": key, "search": {**searched,
                                                   "when": datetime.now(timezone.utc).isoformat(timespec="seconds")}}
    atomic_write_json(_store_path(), data)


def lookup_search(key: dict[str, str]) -> tuple[SutConfig | None, float | None, str] | None:
    """(the split, the rate, why) of a remembered Server search; (None, None, why not) when it found no rate
    meeting the bound; None when there is none (or it is damaged)."""
    entry = _read_store().get(key_text(key))
    found = entry.get("search") if isinstance(entry, dict) else None
    if not isinstance(found, dict):
        return None
    when = str(found.get("when") or "")[:10]
    why = f"{found.get('reason')}" + (f" (on {when}; `mlperf-wizard tune --force` searches again)" if when else "")
    try:
        if not found.get("found"):
            return None, None, why
        c = found["config"]
        config = SutConfig(int(c["workers"]), int(c["threads"]), int(c["batch_size"]))
        rate = float(found["qps"])
    except (KeyError, TypeError, ValueError):
        return None
    if rate <= 0 or min(config.workers, config.batch_size) < 1 or config.threads < 0:
        return None
    return config, rate, why


def forget(key: dict[str, str]) -> bool:
    data = _read_store()
    if data.pop(key_text(key), None) is None:
        return False
    atomic_write_json(_store_path(), data)
    return True


# --- candidates ---------------------------------------------------------------------------------------

def splits(cores: int, workers: int | None = None, threads: int | None = None) -> list[tuple[int, int]]:
    """(workers, threads) pairs that use the cores: threads per call from the divisors of ``cores`` (at most
    six, spread from 1 to all), workers filling the rest. A given value is kept and only the other one is
    chosen."""
    if workers and threads:
        return [(workers, threads)]
    if threads:
        return [(max(1, cores // threads), threads)]
    if workers:
        return [(workers, max(1, cores // workers))]
    divisors = [d for d in range(1, cores + 1) if cores % d == 0]
    if len(divisors) > 6:  # both ends, and four spread between them
        divisors = [divisors[i] for i in sorted({round(i * (len(divisors) - 1) / 5) for i in range(6)})]
    return [(cores // d, d) for d in divisors]


def latency_threads(cores: int, threads: int | None = None) -> list[int]:
    """Thread counts for one query at a time: powers of two up to the cores, and the cores."""
    if threads:
        return [threads]
    out = sorted({min(cores, 2 ** i) for i in range(cores.bit_length() + 1)} | {cores})
    return out


# --- measuring (in the child) ---------------------------------------------------------------------------

def measure(infer, batch, *, workers: int, threads: int, batch_size: int, seconds: float = MEASURE_S) -> Measured:
    """``workers`` threads calling ``infer(batch)`` back to back for about ``seconds`` (each after one
    untimed call): samples/s over the span and the per-call latency percentiles."""
    import numpy as np

    for_all = threading.Barrier(workers + 1)
    deadline = [0.0]
    times: list[list[float]] = [[] for _ in range(workers)]
    errors: list[BaseException] = []

    def loop(n: int) -> None:
        try:
            infer(batch)  # untimed: a worker's first call may allocate or pick kernels
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
        for_all.wait()
        mine = times[n]
        while not errors:
            t = time.perf_counter()
            if t >= deadline[0]:
                break
            try:
                infer(batch)
            except BaseException as exc:
                errors.append(exc)
                break
            mine.append(time.perf_counter() - t)

    pool = [threading.Thread(target=loop, args=(n,), name=f"tune-{n}", daemon=True) for n in range(workers)]
    for t in pool:
        t.start()
    # The clock starts when every worker is warm: the span is steady-state work only.
    deadline[0] = time.perf_counter() + 3600
    for_all.wait()
    start = time.perf_counter()
    deadline[0] = start + seconds
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    calls = [x for mine in times for x in mine]
    if not calls:
        raise RuntimeError("no inference call completed while tuning")
    p50, p90, p99 = (float(v) * 1000 for v in np.percentile(np.array(calls), [50, 90, 99]))
    return Measured(workers, threads, batch_size, round(len(calls) * batch_size / max(elapsed, 1e-9), 3),
                    round(p50, 4), round(p90, 4), round(p99, 4), len(calls),
                    tuple(round(x * 1000, 4) for x in calls))


# --- the Server queueing model ---------------------------------------------------------------------------

MODEL_QUERIES = 20000
"""Simulated queries per rate: the 99th percentile then rests on 200 of them."""


def queue_p99_ms(service_ms: Sequence[float], servers: int, rate: float, *, queries: int = MODEL_QUERIES,
                 seed: int = 0) -> float:
    """The 99th percentile of a query's latency (wait + service) in a first-come first-served queue with
    Poisson arrivals at ``rate`` queries/s (LoadGen's Server schedule) and ``servers`` workers, each query
    taking a duration drawn from the measured calls ``service_ms``. Batching is left out (the SUT batches what
    has queued: more throughput, but a longer call), and so is the harness's own work per query: the
    model gives where to probe first and what bounds the answer, and LoadGen's probes decide."""
    import heapq

    import numpy as np

    if rate <= 0 or not service_ms or servers < 1:
        raise ValueError("queue_p99_ms needs a positive rate, measured calls and at least one worker")
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, queries)).tolist()
    service = (rng.choice(np.asarray(service_ms, dtype=float), queries) / 1000.0).tolist()
    free = [0.0] * servers  # when each worker is next free (a heap)
    latency = np.empty(queries)
    for i, (arrival, took) in enumerate(zip(arrivals, service, strict=True)):
        done = max(arrival, free[0]) + took
        heapq.heapreplace(free, done)
        latency[i] = done - arrival
    return float(np.percentile(latency, 99)) * 1000.0


def model_rate(service_ms: Sequence[float], servers: int, bound_ms: float, capacity: float) -> float:
    """The highest arrival rate, up to ``capacity``, whose modelled 99th percentile is within ``bound_ms``
    (0 when not even a trickle of queries is: the calls themselves are too slow). The same random numbers
    serve every rate, so the modelled latency grows with the rate and bisection is sound."""
    if capacity <= 0:
        return 0.0
    if queue_p99_ms(service_ms, servers, capacity) <= bound_ms:
        return capacity
    lo, hi = 0.0, capacity
    while hi - lo > max(capacity * 0.002, 1e-3):
        mid = (lo + hi) / 2
        if queue_p99_ms(service_ms, servers, mid) <= bound_ms:
            lo = mid
        else:
            hi = mid
    return lo


def read_step(directory: Path, mode: str) -> dict[str, Any] | None:
    """What a finished step wrote, or None (not finished, damaged)."""
    try:
        data = json.loads((directory / ("tune.json" if mode == "tune" else "search.json")).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
