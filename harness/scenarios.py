"""The four LoadGen scenarios as types: what each one measures and how its queries come, in one place.

Code asks a scenario what it is (``scenario("Server").scheduled``) instead of comparing names: a rule
about "the scenarios whose queries arrive on a schedule" is written once, and reads as that rule.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    name: str
    """LoadGen's spelling (TestScenario is case-sensitive)."""
    throughput: bool
    """Measured in samples or queries per second, declared with target_qps (Offline, Server); else a
    latency scenario, declared with target_latency (SingleStream, MultiStream)."""
    one_query: bool
    """All of the test's samples come in one query (Offline): the SUT batches them itself."""
    scheduled: bool
    """Queries arrive on LoadGen's schedule at the target rate (Server): the target matters even in an
    accuracy run, and a result is only worth remembering if the latency bound held."""
    metric_key: str
    """The detail-log key of the scenario's metric."""
    unit: str
    metric_name: str
    percentile_key: str | None = None
    """The detail-log key reported when early stopping is not met (latency scenarios)."""
    batched_queries: bool = False
    """A query holds several samples that the SUT runs as one batch (MultiStream)."""

    @property
    def target_kind(self) -> str:
        return "target_qps" if self.throughput else "target_latency"

    @property
    def early_stopping(self) -> bool:
        """LoadGen checks early stopping for every scenario but Offline."""
        return not self.one_query


SCENARIO_TYPES: tuple[Scenario, ...] = (
    Scenario("Offline", throughput=True, one_query=True, scheduled=False,
             metric_key="result_samples_per_second", unit="samples/s", metric_name="Offline throughput"),
    Scenario("Server", throughput=True, one_query=False, scheduled=True,
             metric_key="result_completed_samples_per_sec", unit="queries/s",
             metric_name="Server completed queries per second"),
    Scenario("SingleStream", throughput=False, one_query=False, scheduled=False,
             metric_key="early_stopping_latency_ss", unit="ms",
             metric_name="SingleStream 90th percentile latency (early stopping)",
             percentile_key="result_90.00_percentile_latency_ns"),
    # MultiStream is defined on the latency of a query (its slowest sample), not of one sample: LoadGen
    # logs both, and the per-sample figure is lower whenever a query's samples complete at different times.
    Scenario("MultiStream", throughput=False, one_query=False, scheduled=False,
             metric_key="early_stopping_latency_ms", unit="ms",
             metric_name="MultiStream 99th percentile latency (early stopping)",
             percentile_key="result_99.00_percentile_per_query_latency_ns", batched_queries=True),
)
BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIO_TYPES}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def scenario(name: str) -> Scenario:
    """The scenario called ``name`` (LoadGen's spelling; KeyError otherwise)."""
    return BY_NAME[name]


def any_throughput(names) -> bool:
    return any(BY_NAME[n].throughput for n in names if n in BY_NAME)


def any_latency(names) -> bool:
    return any(not BY_NAME[n].throughput for n in names if n in BY_NAME)
