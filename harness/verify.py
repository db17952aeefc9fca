"""``mlperf-wizard verify``: a smoke test of every combination that can run here, recorded for the coverage.

Each (model, backend, device, precision) cell that the coverage table and this machine's detection say is
runnable gets one short real run: the synthetic model and data, Offline, accuracy and performance, a few
samples. Its outcome, the backend's version and the time it took go to the coverage's record of this
machine (``<state>/verified.json``), which ``coverage``, the TUI's guidance and the choices read: a cell
then reads "verified" with when and with which version, or says why its last run failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from . import coverage
from .coverage_table import label
from .detect import Detection
from .models.registry import synthetic_variant
from .profile import Profile, make_profile

SMOKE_SAMPLES = 8
"""Samples in each smoke run's dataset and in its performance test: enough to go through every stage."""


@dataclass(frozen=True)
class Outcome:
    key: tuple[str, str, str, str]
    ok: bool
    reason: str
    """Why it failed (empty when it worked)."""
    duration_s: float
    run_id: str | None

    @property
    def label(self) -> str:
        return label(*self.key)

    def to_dict(self) -> dict:
        model, backend, device, precision = self.key
        return {"model": model, "backend": backend, "device": device, "precision": precision, "ok": self.ok,
                "reason": self.reason, "duration_s": self.duration_s, "run_id": self.run_id}


def cells(detection: Detection, *, models: Iterable[str] = (), backends: Iterable[str] = (),
          devices: Iterable[str] = ()) -> list[tuple[str, str, str, str]]:
    """The runnable cells here, in the table's order, restricted to the given models/backends/devices."""
    wanted = [set(models), set(backends), set(devices)]
    out = []
    for verdict in coverage.merged_table(detection):
        if not verdict.runnable or verdict.row is None:
            continue
        key = verdict.row.key
        if all(not want or value in want for want, value in zip(wanted, key[:3], strict=True)):
            out.append(key)
    return out


def smoke_profile(key: tuple[str, str, str, str]) -> Profile:
    model, backend, device, precision = key
    return make_profile({"model": model, "backend": backend, "device": device, "precision": precision,
                         "scenarios": ["Offline"], "mode": "both", "style": "short",
                         "test_query_count": SMOKE_SAMPLES, "dataset_size": SMOKE_SAMPLES,
                         "model_source": "synthetic", "dataset_source": "synthetic",
                         "tune": "off"})  # a smoke test of the path: nothing to gain from measuring settings


def outcome_of(key: tuple[str, str, str, str], record, duration_s: float) -> Outcome:
    """Worked: every test of the run completed (a short run's INVALID and a synthetic model's accuracy
    are expected); else the first test that did not, and why."""
    for test in record.tests:
        if test.status != "completed":
            why = f"{test.scenario} {test.mode} {test.status}" + (f": {test.error}" if test.error else "")
            return Outcome(key, False, why, duration_s, record.run_id)
    if not record.tests:
        return Outcome(key, False, f"the run {record.status} before any test", duration_s, record.run_id)
    return Outcome(key, True, "", duration_s, record.run_id)


def remember(outcome: Outcome, detection: Detection) -> None:
    """Record ``outcome`` for the coverage, with the backend's version and the run's duration."""
    info = detection.backends.get(outcome.key[1])
    details = {"backend_version": info.version if info else None, "duration_s": round(outcome.duration_s, 1),
               "source": "verify", "run_id": outcome.run_id, "variant": synthetic_variant()}
    if not outcome.ok:
        details["reason"] = outcome.reason
    coverage.record_verified(*outcome.key, ok=outcome.ok, details=details)
