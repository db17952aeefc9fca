"""The SUT and QSL shared by every backend: batching, worker threads, response encoding.

The SUT never lets an exception reach LoadGen (that aborts the process): a failing batch is handed to
``on_error``, which reports it and ends the child. Live progress comes from the SUT's own counters
(LoadGen writes its detail log only at start and end).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import mlperf_loadgen as lg
import numpy as np

from .scenarios import scenario as scenario_type
from .staging import HostSamples, staged_batch

Infer = Callable[[np.ndarray], np.ndarray]


class Stats:
    """Counters and recent latencies, written by the SUT, read by the progress reporter."""

    def __init__(self) -> None:
        self.issued = 0
        self.completed = 0
        self.queries = 0
        self.latencies: list[float] = []
        """Seconds from issue to completion, one per query (list.append is atomic under the GIL)."""
        self.infer_times: list[float] = []
        """Seconds spent in the backend call alone, one per batch."""
        self.started = time.monotonic()


class QSL:
    """Query sample library: keeps the samples LoadGen asks for in memory, by index, in the staging's form."""

    def __init__(self, dataset, total: int, performance_count: int, staging: HostSamples | None = None):
        self.dataset = dataset
        self.staging = staging or HostSamples()
        self.samples: dict[int, object] = {}
        self.total = total
        self.handle = lg.ConstructQSL(total, min(performance_count, total), self.load, self.unload)

    def load(self, indices: list[int]) -> None:
        for i in indices:
            if i not in self.samples:
                self.samples[i] = self.staging.stage(self.dataset.sample(i))

    def unload(self, indices: list[int]) -> None:
        for i in indices:
            self.samples.pop(i, None)

    def destroy(self) -> None:
        lg.DestroyQSL(self.handle)


class SUT:
    """Runs queries for one scenario. SingleStream and MultiStream run inline in LoadGen's issue
    thread (nothing to overlap, fewest hand-offs); Offline and Server feed worker threads that batch."""

    def __init__(self, infer: Infer, qsl: QSL, scenario: str, *, batch_size: int, workers: int,
                 stats: Stats, on_error: Callable[[BaseException], None], pass_indices: bool = False,
                 warmup: Callable[[], None] | None = None):
        self.infer = infer
        self.pass_indices = pass_indices
        """Call ``infer(batch, indices)``: tasks whose responses carry the QSL index (RetinaNet)."""
        self.qsl = qsl
        self.staging = qsl.staging
        self.scenario = scenario
        self.batch_size = max(1, batch_size)
        self.stats = stats
        self.on_error = on_error
        self.queue: queue.Queue = queue.Queue()
        self.threads: list[threading.Thread] = []
        kind = scenario_type(scenario)
        self.one_query = kind.one_query
        """Offline: the samples of the one query are cut into batches here (decided once, not per issue)."""
        inline = not kind.throughput  # a latency scenario's next query waits for this one: run it at once
        if not inline:
            target = self._offline_worker if kind.one_query else self._server_worker
            count = max(1, workers)
            # Each worker's first call on its own thread pays for what a framework makes per thread (a CUDA
            # stream and its cuDNN/cuBLAS handles: tens of ms on an H200): paid here, before LoadGen's clock,
            # not by the first queries of the test. The constructor returns when every worker is warm.
            warmed = threading.Barrier(count + 1) if warmup is not None else None
            for n in range(count):
                t = threading.Thread(target=self._worker, args=(target, warmup, warmed), name=f"sut-worker-{n}",
                                     daemon=True)
                t.start()
                self.threads.append(t)
            if warmed is not None:
                try:
                    warmed.wait()
                except threading.BrokenBarrierError:
                    pass  # a worker's warm-up failed and was handed to on_error
        self.handle = lg.ConstructSUT(self._issue_inline if inline else self._issue_queued, self._flush)

    # LoadGen calls these -------------------------------------------------------------------------

    def _issue_inline(self, samples) -> None:
        self.stats.issued += len(samples)
        self._run(samples, (time.perf_counter(),))

    def _issue_queued(self, samples) -> None:
        now = time.perf_counter()
        self.stats.issued += len(samples)
        if self.one_query:
            for start in range(0, len(samples), self.batch_size):
                self.queue.put((samples[start:start + self.batch_size], now))
        else:
            for sample in samples:
                self.queue.put(([sample], now))

    def _flush(self) -> None:
        pass

    # Execution -----------------------------------------------------------------------------------

    def _run(self, samples, issued_at: tuple[float, ...]) -> None:
        """Infer ``samples`` as one batch and complete them; ``issued_at`` has one time per query.

        A sample is what the QSL's staging made of it (an array, or a tuple of arrays for models with
        several inputs, BERT; a backend may keep them on its device). The task returns a 2-D float32 array
        (one row per sample) or a list of per-sample arrays (detections)."""
        try:
            data = self.qsl.samples
            batch = self.staging.batch([data[s.index] for s in samples])
            started = time.perf_counter()
            raw = self.infer(batch, [s.index for s in samples]) if self.pass_indices else self.infer(batch)
            self.stats.infer_times.append(time.perf_counter() - started)
            if isinstance(raw, np.ndarray):
                responses = np.ascontiguousarray(raw, dtype=np.float32)
                row = responses.strides[0]
                base = responses.ctypes.data
                lg.QuerySamplesComplete(
                    [lg.QuerySampleResponse(s.id, base + i * row, row) for i, s in enumerate(samples)])
            else:
                # The arrays must stay alive until QuerySamplesComplete has copied them: `raw` holds them.
                arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in raw]
                lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, a.ctypes.data, a.nbytes)
                                         for s, a in zip(samples, arrays, strict=True)])
        except BaseException as exc:  # never let it reach LoadGen: that aborts the process
            self.on_error(exc)
            return
        done = time.perf_counter()
        stats = self.stats
        stats.completed += len(samples)
        stats.queries += len(issued_at)
        stats.latencies.extend(done - t for t in issued_at)

    def _worker(self, loop: Callable[[], None], warmup: Callable[[], None] | None,
                warmed: threading.Barrier | None) -> None:
        if warmup is not None and warmed is not None:
            try:
                warmup()
            except BaseException as exc:  # reported like a failing query: the test cannot run
                warmed.abort()
                self.on_error(exc)
                return
            warmed.wait()
        loop()

    def _offline_worker(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            self._run(item[0], (item[1],))

    def _server_worker(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            samples, issued_at = list(item[0]), [item[1]]
            # Dynamic batching: take what has queued up meanwhile, up to the batch size.
            while len(samples) < self.batch_size:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)
                    break
                samples.extend(nxt[0])
                issued_at.append(nxt[1])
            self._run(samples, tuple(issued_at))

    def destroy(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for t in self.threads:
            t.join(timeout=5)
        lg.DestroySUT(self.handle)


def worker_warmup(scenario: str, infer, batch, staging, dataset):
    """What each SUT worker runs once on its own thread before a Server test, whose tail latency the first
    calls would spoil: the batch, and one sample (the size dynamic batching sends most at low rates). None
    elsewhere: an Offline run amortises a worker's first call, and the stream scenarios have no workers."""
    if not scenario_type(scenario).scheduled:
        return None
    one = staged_batch(staging, dataset, 1)
    return lambda: (infer(batch), infer(one))
