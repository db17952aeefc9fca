"""LoadGen's TestSettings for one test, built the same way for the run and for the plan.

The child runs a test with :func:`test_settings`; the plan (and ``--dry-run``) asks :func:`test_size` what that
test will be: how many samples LoadGen will issue and about how long it will take, before anything runs. Both
read the mlperf.conf LoadGen embeds (explicitly, every time: LoadGen applies it implicitly only to the first
FromConfig of a process) and the same user.conf lines.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import WizardError
from .scenarios import scenario as scenario_type

if TYPE_CHECKING:
    from .plan import TestSpec


def user_conf_lines(spec: TestSpec, target: float | None) -> list[str]:
    """The user.conf for this test, in the ``model.Scenario.key = value`` syntax LoadGen accepts."""
    prefix = f"{spec.conf_key}.{spec.scenario}"
    lines = []
    if spec.style == "short" and spec.mode == "performance":
        lines.append(f"{prefix}.min_duration = 0")
        lines.append(f"{prefix}.min_query_count = {spec.test_query_count}")
    if spec.performance_sample_count < 1_000_000:
        lines.append(f"{prefix}.performance_sample_count_override = {spec.performance_sample_count}")
    if target is not None:
        key = "target_qps" if spec.target_kind == "target_qps" else "target_latency"
        lines.append(f"{prefix}.{key} = {target:.6g}")
    return lines


def test_settings(spec: TestSpec, target: float | None, conf: Path):
    """The TestSettings of ``spec``: mlperf.conf, then the user.conf written to ``conf``; scenario and mode set."""
    import mlperf_loadgen as lg

    conf.write_text("\n".join(user_conf_lines(spec, target)) + "\n", encoding="utf-8")
    settings = lg.TestSettings()
    rc = settings.FromConfig("", spec.conf_key, spec.scenario, 0)  # the embedded mlperf.conf
    if rc == 0:
        rc = settings.FromConfig(str(conf), spec.conf_key, spec.scenario)
    if rc != 0:
        raise WizardError(f"LoadGen rejected {conf} (FromConfig returned {rc}).",
                          "this is a bug in mlperf-wizard's user.conf writer: please report it with the file.")
    settings.scenario = getattr(lg.TestScenario, spec.scenario)
    settings.mode = lg.TestMode.AccuracyOnly if spec.mode == "accuracy" else lg.TestMode.PerformanceOnly
    return settings


def probe_settings(spec: TestSpec, qps: float, queries: int, min_s: float, conf: Path):
    """A short Server performance run at ``qps``: mlperf.conf's latency bound and percentile, at least
    ``queries`` queries and ``min_s`` seconds (a probe of the Server search, not a result)."""
    import mlperf_loadgen as lg

    prefix = f"{spec.conf_key}.Server"
    lines = [f"{prefix}.min_duration = {int(min_s * 1000)}", f"{prefix}.min_query_count = {queries}",
             f"{prefix}.target_qps = {qps:.6g}",
             f"{prefix}.performance_sample_count_override = {spec.performance_sample_count}"]
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = lg.TestSettings()
    rc = settings.FromConfig("", spec.conf_key, "Server", 0)
    if rc == 0:
        rc = settings.FromConfig(str(conf), spec.conf_key, "Server")
    if rc != 0:
        raise WizardError(f"LoadGen rejected {conf} (FromConfig returned {rc}).",
                          "this is a bug in mlperf-wizard's user.conf writer: please report it with the file.")
    settings.scenario = lg.TestScenario.Server
    settings.mode = lg.TestMode.PerformanceOnly
    return settings


def expected_samples(spec: TestSpec, settings) -> int:
    """How many samples LoadGen will issue (at least), for progress bars, ETAs and the plan."""
    if spec.mode == "accuracy":
        return spec.dataset_count
    min_s = settings.min_duration_ms / 1000
    kind = scenario_type(spec.scenario)
    if kind.one_query:
        return int(max(settings.min_query_count, math.ceil(settings.offline_expected_qps * min_s)))
    if kind.throughput:
        return int(max(settings.min_query_count, math.ceil(settings.server_target_qps * min_s)))
    return _stream_queries(spec, settings) * _per_query(spec, settings)


def _per_query(spec: TestSpec, settings) -> int:
    """Samples per query: MultiStream's from mlperf.conf (8), one otherwise (Offline counts samples)."""
    return int(settings.multi_stream_samples_per_query) if scenario_type(spec.scenario).batched_queries else 1


def _stream_queries(spec: TestSpec, settings) -> int:
    """SingleStream/MultiStream queries: enough for the minimum duration at the expected latency, and at
    least the minimum query count."""
    expected_s = (settings.multi_stream_expected_latency_ns if scenario_type(spec.scenario).batched_queries
                  else settings.single_stream_expected_latency_ns) / 1e9
    for_duration = math.ceil(settings.min_duration_ms / 1000 / max(expected_s, 1e-9))
    return int(max(settings.min_query_count, for_duration))


@dataclass(frozen=True)
class TestSize:
    """What a test will be, before it runs."""

    samples: int
    """Samples LoadGen issues (at least)."""
    queries: int
    """Queries (Offline: 1; SingleStream: one per sample; MultiStream: 8 samples each)."""
    min_duration_s: float
    expected_s: float | None
    """About how long LoadGen will run, from the target; None where the target is measured first."""

    def to_dict(self) -> dict:
        return asdict(self)

    def count_text(self, spec: TestSpec) -> str:
        """E.g. "24,576 samples", "50,000 queries (400,000 samples)"; "at least" where the minimum duration
        may ask for more at a target that is not known yet."""
        at_least = "at least " if self.min_duration_s and self.expected_s is None else ""
        if scenario_type(spec.scenario).one_query or spec.mode == "accuracy":
            return f"{at_least}{self.samples:,} samples"
        if self.queries != self.samples:
            return f"{at_least}{self.queries:,} queries ({self.samples:,} samples)"
        return f"{at_least}{self.queries:,} queries"

    def duration_text(self, spec: TestSpec) -> str:
        if self.expected_s is None and spec.mode == "accuracy" and not scenario_type(spec.scenario).scheduled:
            return "set by the model's speed (this accuracy run uses no target)"
        if self.expected_s is None:
            return "set by the target measured before the test"
        return f"about {duration_words(self.expected_s)} at the target"


def test_size(spec: TestSpec) -> TestSize:
    """How many samples LoadGen will issue for ``spec`` and about how long that takes at its target."""
    from .tuning import SEARCH_BUDGET_S, TUNE_BUDGET_S

    if spec.mode in ("tune", "search"):  # a measuring step: no LoadGen test of its own, bounded in time
        return TestSize(0, 0, 0.0, TUNE_BUDGET_S if spec.mode == "tune" else SEARCH_BUDGET_S)
    with tempfile.TemporaryDirectory(prefix="mlperf-wizard-plan-") as folder:
        settings = test_settings(spec, spec.target, Path(folder) / "user.conf")
    samples = expected_samples(spec, settings)
    min_s = settings.min_duration_ms / 1000 if spec.mode == "performance" else 0.0
    per_query = _per_query(spec, settings)
    queries = 1 if scenario_type(spec.scenario).one_query else math.ceil(samples / per_query)
    expected = None
    if spec.target is not None and spec.target > 0:
        if spec.target_kind == "target_qps":  # queries per second; an Offline query's samples count each
            expected = samples / spec.target
        else:  # target latency, in ms per query
            expected = queries * spec.target / 1000
        expected = max(expected, min_s)
    return TestSize(samples, queries, min_s, expected)


def duration_words(seconds: float) -> str:
    """``seconds`` as a user reads a duration: 45 s, 11 min, 1 h 5 min."""
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"
