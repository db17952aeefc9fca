"""Reading LoadGen's detail log and explaining it, on hand-written ``:::MLLOG`` lines."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.plan import TestSpec as Spec  # aliased: pytest would try to collect Test*
from harness.results import TestResult as Result  # aliased: pytest would try to collect Test*
from harness.results import explain, metric_of, parse_detail, parse_test, summary_lines


def _line(key: str, value: Any, *, error: bool = False, warning: bool = False) -> str:
    record = {"key": key, "value": value, "time_ms": 1.0, "namespace": "mlperf::logging",
              "event_type": "POINT_IN_TIME",
              "metadata": {"is_error": error, "is_warning": warning, "file": "results.cc", "line_no": 1,
                           "pid": 1, "tid": 1}}
    return ":::MLLOG " + json.dumps(record)


def _detail(tmp_path: Path, values: dict[str, Any], *extra: str) -> Path:
    path = tmp_path / "mlperf_log_detail.txt"
    lines = [_line(k, v) for k, v in values.items()] + list(extra)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _unmet(findings, rule: str):
    matches = [f for f in findings if f.rule == rule and not f.met]
    assert matches, f"no unmet {rule} finding in {findings}"
    return matches[0]


def _number_after(flag: str, text: str) -> float:
    match = re.search(re.escape(flag) + r" (?:to about )?([0-9][0-9.,]*)", text)
    assert match, f"no number after {flag} in {text!r}"
    return float(match.group(1).replace(",", ""))


OFFLINE_VALID = {
    "effective_scenario": "Offline", "effective_min_duration_ms": 0, "effective_min_query_count": 256,
    "result_validity": "VALID", "result_samples_per_second": 1519.62, "result_min_duration_met": True,
    "result_min_queries_met": True, "result_min_latency_ns": 900000, "result_max_latency_ns": 168000000,
    "result_99.00_percentile_latency_ns": 166000000, "num_errors": 0,
}


class TestParseDetail:
    def test_last_value_of_each_key_wins_and_noise_is_skipped(self, tmp_path: Path):
        path = _detail(tmp_path, {"result_validity": "INVALID"},
                       "some native library chatter", ":::MLLOG {not json", _line("result_validity", "VALID"),
                       ":::MLLOG " + json.dumps({"value": "no key"}))
        detail = parse_detail(path)
        assert detail["result_validity"] == "VALID"
        assert detail["_errors"] == [] and detail["_warnings"] == []

    def test_missing_file_gives_no_values(self, tmp_path: Path):
        assert parse_detail(tmp_path / "absent.txt") == {"_errors": [], "_warnings": []}

    def test_errors_and_warnings_are_collected(self, tmp_path: Path):
        path = _detail(tmp_path, {"result_validity": "INVALID"},
                       _line("error_runtime", "Ending early: Ran out of generated queries to issue before "
                             "the minimum query count and test duration were reached.", error=True),
                       _line("generic_message", "SUT reported an invalid sample", error=True),
                       _line("warning_generic_message", "Multiple conf files are used", warning=True))
        detail = parse_detail(path)
        assert len(detail["_errors"]) == 2
        assert detail["_errors"][0].startswith("error_runtime: Ending early: Ran out of generated queries")
        assert "SUT reported an invalid sample" in detail["_errors"][1]
        assert detail["_warnings"] == ["warning_generic_message: Multiple conf files are used"]


class TestMetric:
    def test_offline_throughput(self, tmp_path: Path):
        detail = parse_detail(_detail(tmp_path, OFFLINE_VALID))
        assert metric_of("Offline", detail) == ("Offline throughput", 1519.62, "samples/s")

    def test_server_completed_queries_per_second(self):
        name, value, unit = metric_of("Server", {"result_completed_samples_per_sec": 812.5})
        assert (value, unit) == (812.5, "queries/s") and "Server" in name

    def test_singlestream_early_stopping_estimate_in_ms(self):
        name, value, unit = metric_of("SingleStream", {"early_stopping_latency_ss": 1020121,
                                                       "early_stopping_met": True,
                                                       "result_90.00_percentile_latency_ns": 900000})
        assert unit == "ms" and value == pytest.approx(1.020121)
        assert "early stopping" in name and "not met" not in name

    def test_multistream_early_stopping_estimate_in_ms(self):
        name, value, unit = metric_of("MultiStream", {"early_stopping_latency_ms": 24168957,
                                                      "early_stopping_met": True})
        assert unit == "ms" and value == pytest.approx(24.168957)

    def test_stream_metric_falls_back_to_the_percentile_without_early_stopping(self):
        detail = {"early_stopping_latency_ms": 0, "early_stopping_met": False,
                  "result_99.00_percentile_per_query_latency_ns": 24168957,
                  "result_99.00_percentile_latency_ns": 20000000}  # per sample: not MultiStream's metric
        name, value, _ = metric_of("MultiStream", detail)
        assert value == pytest.approx(24.168957)
        assert "early stopping not met" in name


class TestExplain:
    def test_valid_offline_has_no_unmet_rule(self, tmp_path: Path):
        detail = parse_detail(_detail(tmp_path, OFFLINE_VALID))
        findings = explain("Offline", "resnet50", "short", detail, test_query_count=256, target=1400.0)
        assert findings and all(f.met for f in findings)
        assert {f.rule for f in findings} >= {"min_duration", "min_queries", "short_run"}

    def test_server_over_the_bound_even_at_its_fastest(self, tmp_path: Path):
        detail = parse_detail(_detail(tmp_path, {
            "result_validity": "INVALID", "result_completed_samples_per_sec": 40.0,
            "result_min_duration_met": True, "result_min_queries_met": True,
            "result_perf_constraints_met": False, "result_min_latency_ns": 21_000_000,
            "result_99.00_percentile_latency_ns": 48_000_000}))
        finding = _unmet(explain("Server", "resnet50", "short", detail, target=50.0), "latency_bound")
        assert "15 ms" in finding.text
        assert "no target QPS can meet it" in finding.fix
        assert "21 ms" in finding.fix

    def test_server_over_the_bound_suggests_a_lower_target(self, tmp_path: Path):
        detail = parse_detail(_detail(tmp_path, {
            "result_validity": "INVALID", "result_completed_samples_per_sec": 200.0,
            "result_min_duration_met": True, "result_min_queries_met": True,
            "result_perf_constraints_met": False, "result_min_latency_ns": 2_000_000,
            "result_99.00_percentile_latency_ns": 31_000_000}))
        finding = _unmet(explain("Server", "resnet50", "short", detail, target=260.0), "latency_bound")
        suggested = _number_after("--target-qps", finding.fix)
        assert 0 < suggested < 200
        assert suggested == pytest.approx(160)

    def test_singlestream_early_stopping_names_a_query_count(self, tmp_path: Path):
        detail = parse_detail(_detail(tmp_path, {
            "result_validity": "INVALID", "result_min_duration_met": True, "result_min_queries_met": True,
            "early_stopping_met": False, "early_stopping_latency_ss": 0,
            "early_stopping_result": " * Run unsuccessful.  * Processed 64 queries.  * Would need to run at "
                                     "least 395 more queries,  with the run being successful if every "
                                     "additional  query were under latency.",
            "result_90.00_percentile_latency_ns": 1_500_000}))
        finding = _unmet(explain("SingleStream", "resnet50", "short", detail, test_query_count=64),
                         "early_stopping")
        assert "395" in finding.text
        assert "--test-query-count" in finding.fix
        assert _number_after("--test-query-count", finding.fix) >= 64 + 395

    def test_multistream_early_stopping_names_a_query_count(self, tmp_path: Path):
        detail = parse_detail(_detail(tmp_path, {
            "result_validity": "INVALID", "result_min_duration_met": True, "result_min_queries_met": True,
            "early_stopping_met": False, "early_stopping_latency_ms": 0,
            "early_stopping_result": " * Only processed 64 queries.  * Need to process at least 662 queries "
                                     "for early stopping.",
            "result_99.00_percentile_latency_ns": 24_000_000}))
        finding = _unmet(explain("MultiStream", "resnet50", "short", detail, test_query_count=64),
                         "early_stopping")
        assert "--test-query-count" in finding.fix
        assert _number_after("--test-query-count", finding.fix) >= 662

    def test_offline_min_duration_not_met_suggests_a_target_qps(self, tmp_path: Path):
        detail = parse_detail(_detail(tmp_path, {
            "result_validity": "INVALID", "effective_min_duration_ms": 600000,
            "result_samples_per_second": 1500.0, "result_min_duration_met": False,
            "result_min_queries_met": True}))
        finding = _unmet(explain("Offline", "resnet50", "full", detail, target=1000.0), "min_duration")
        assert "600 s" in finding.text
        assert _number_after("--target-qps", finding.fix) >= 1500

    def test_loadgen_errors_are_reported_with_a_fix(self, tmp_path: Path):
        detail = parse_detail(_detail(
            tmp_path, {"result_validity": "INVALID", "result_min_duration_met": True,
                       "result_min_queries_met": False, "effective_min_query_count": 1,
                       "effective_min_sample_count": 24576},
            _line("error_runtime", "Ending early: Ran out of generated queries to issue before the minimum "
                  "query count and test duration were reached.", error=True)))
        findings = explain("Offline", "resnet50", "full", detail)
        error = _unmet(findings, "loadgen_error")
        assert "Ran out of generated queries" in error.text
        assert "--target-qps" in error.fix
        assert "24576 required" in _unmet(findings, "min_queries").text  # Offline: samples, not its 1 query


def _spec(tmp_path: Path, scenario: str, mode: str = "performance") -> Spec:
    return Spec(scenario=scenario, mode=mode, rel_dir="sys/resnet50/" + scenario, model="resnet50",
                conf_key="resnet50", backend="onnxruntime", device="cpu", precision="fp32", style="short",
                model_path=str(tmp_path / "m.onnx"), model_synthetic=True, model_variant="tiny",
                dataset_count=500, dataset_synthetic=True, batch_size=1, workers=1, threads=None,
                test_query_count=64, target=None, target_reason="", performance_sample_count=500)


def test_parse_test_builds_the_record_and_the_summary_says_the_fix(tmp_path: Path):
    _detail(tmp_path, {
        "result_validity": "INVALID", "result_min_duration_met": True, "result_min_queries_met": True,
        "early_stopping_met": False, "early_stopping_latency_ms": 0,
        "early_stopping_result": " * Only processed 64 queries.  * Need to process at least 662 queries for "
                                 "early stopping.",
        "result_min_latency_ns": 4_000_000, "result_99.00_percentile_latency_ns": 24_000_000,
        "result_99.00_percentile_per_query_latency_ns": 24_000_000})
    result = parse_test(_spec(tmp_path, "MultiStream"), tmp_path, "completed")
    assert (result.validity, result.unit, result.value) == ("INVALID", "ms", 24.0)
    assert result.latency_ms["min"] == 4.0 and result.latency_ms["p99"] == 24.0
    assert result.synthetic and result.synthetic_model and result.synthetic_data
    text = "\n".join(summary_lines(result))
    assert "INVALID" in text and "--test-query-count" in text and "NOT an MLPerf result" in text


def test_parse_test_of_an_accuracy_run_reads_accuracy_json(tmp_path: Path):
    _detail(tmp_path, {"effective_test_mode": "AccuracyOnly"},
            _line("error_invalid_test_settings", "bad setting", error=True))
    (tmp_path / "accuracy.json").write_text(json.dumps({"metric": "top-1 accuracy", "value": 70.0, "good": 7,
                                                        "total": 10}), encoding="utf-8")
    result = parse_test(_spec(tmp_path, "Offline", "accuracy"), tmp_path, "completed")
    assert result.validity is None
    assert result.accuracy["good"] == 7 and result.accuracy["total"] == 10
    assert [f.rule for f in result.findings] == ["loadgen_error"]
    assert "70.000%" in "\n".join(summary_lines(result))


@pytest.mark.parametrize("value", [None, "high", [1], float("nan")])
def test_a_damaged_accuracy_record_is_shown_not_a_crash(value) -> None:
    """Found by tests/test_history_corruption.py: run.json's accuracy value replaced by null."""
    r = Result(scenario="Offline", mode="accuracy", status="completed", directory="",
               accuracy={"metric": "top-1 accuracy", "value": value, "target": value, "total": 500})
    lines = summary_lines(r)
    assert lines[0] == "Offline accuracy: top-1 accuracy = n/a over 500 questions"
