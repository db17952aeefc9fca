"""Advice per scenario, only where the tool has reason to believe it fixes the rule (issue 7, item 12)."""

from __future__ import annotations

from harness.results import Finding, explain, suggestions
from harness.results import TestResult as Record


def _result(scenario: str, findings: list[Finding]) -> Record:
    return Record(scenario=scenario, mode="performance", status="completed", directory="/x",
                      findings=findings)


def test_a_server_bound_no_rate_can_meet_gets_no_query_count_suggestion() -> None:
    detail = {"result_perf_constraints_met": False, "result_99.00_percentile_latency_ns": 40e6,
              "result_min_latency_ns": 20e6, "result_50.00_percentile_latency_ns": 25e6,
              "early_stopping_met": False,
              "early_stopping_result": "Run unsuccessful. ... at least 6800 more queries"}
    findings = explain("Server", "resnet50", "short", detail, test_query_count=100, target=50)
    found, blocked = suggestions([_result("Server", findings)])
    assert found == []
    assert blocked and blocked[0].scenario == "Server" and "no target QPS" in blocked[0].why


def test_each_scenario_gets_its_own_query_count_with_how_sure() -> None:
    ss = explain("SingleStream", "resnet50", "short", {"early_stopping_met": False, "early_stopping_result":
                                                     "need at least 570 more queries"}, test_query_count=100)
    ms = explain("MultiStream", "resnet50", "short", {"early_stopping_met": False, "early_stopping_result":
                                                    "Only processed 100 queries. Need to process at least "
                                                    "13000 queries"}, test_query_count=100)
    offline = explain("Offline", "resnet50", "short", {"result_validity": "VALID"}, test_query_count=100)
    found, blocked = suggestions([_result("SingleStream", ss), _result("MultiStream", ms),
                                  _result("Offline", offline)])
    assert blocked == []
    by = {s.scenario: s for s in found}
    assert set(by) == {"SingleStream", "MultiStream"}
    assert by["SingleStream"].values == {"test_query_count": 670}
    assert by["MultiStream"].values["test_query_count"] >= 13000
    assert by["SingleStream"].profile_values["scenarios"] == ["SingleStream"]
    assert all(s.confidence.startswith("likely") for s in found)


def test_a_server_tail_from_queueing_is_a_possible_fix_not_a_sure_one() -> None:
    detail = {"result_perf_constraints_met": False, "result_99.00_percentile_latency_ns": 40e6,
              "result_min_latency_ns": 2e6, "result_50.00_percentile_latency_ns": 3e6,
              "result_completed_samples_per_sec": 100.0}
    found, _ = suggestions([_result("Server", explain("Server", "resnet50", "short", detail, target=120))])
    assert found[0].values == {"target_qps": 80.0} and found[0].confidence.startswith("possible")
