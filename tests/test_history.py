"""The run history: real runs made through the CLI, and hand-built run directories whose numbers are known.

Real runs use LoadGen, onnxruntime and the tiny synthetic ResNet50 (about 2 s each); the hand-built
ones exercise compare's arithmetic and the damaged-directory paths on values chosen here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import history
from harness.errors import ProfileError, ResultsError
from harness.models.registry import SYNTHETIC_VARIANT_ENV
from harness.paths import HOME_ENV, RESULTS_ENV
from harness.plan import TUNE_ENV
from harness.profile import dump_profile, make_profile
from harness.results import TestResult as Result  # aliased: pytest would try to collect Test*

BASE = ("run", "--model", "resnet50", "--backend", "onnxruntime", "--device", "cpu", "--style", "short",
        "--synthetic", "--test-query-count", "16", "--json")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != RESULTS_ENV}
    env.update({HOME_ENV: str(home), SYNTHETIC_VARIANT_ENV: "tiny", TUNE_ENV: "off"})
    return env


def _cli(home: Path, *args: str, module: str = "wizard.cli", timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], env=_env(home), cwd=home,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


# Three real runs, made once: two in the results folder, one in a --results-dir elsewhere ----------------

@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("history-home")
    elsewhere = home.parent / f"{home.name}-elsewhere"
    made = []
    for extra in (("--scenario", "Offline", "SingleStream", "--system-name", "sysA"),
                  ("--scenario", "Offline", "--target-qps", "400", "--system-name", "sysB"),
                  ("--scenario", "Offline", "--mode", "accuracy", "--dataset-size", "16",
                   "--results-dir", str(elsewhere))):
        proc = _cli(home, *BASE, *extra)
        assert proc.returncode in (0, 3), proc.stderr[-3000:]  # 3: a short SingleStream run is INVALID
        made.append(json.loads(proc.stdout))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(HOME_ENV, str(home))
        mp.setenv(SYNTHETIC_VARIANT_ENV, "tiny")
        mp.setenv(TUNE_ENV, "off")
        mp.delenv(RESULTS_ENV, raising=False)
        yield {"home": home, "records": made, "elsewhere": elsewhere, "module": "wizard.cli"}


def _ids(runs) -> list[str]:
    return [r.run_id for r in runs]


class TestRealRuns:
    def test_list_newest_first_including_another_results_dir(self, real):
        found = history.list_runs()
        a, b, c = real["records"]
        assert _ids(found) == [c["run_id"], b["run_id"], a["run_id"]]
        assert found.warnings == []
        assert str(real["elsewhere"].resolve()) in found.roots
        assert [len(r.tests) for r in found] == [1, 1, 2]
        only_elsewhere = history.list_runs(real["elsewhere"])
        assert _ids(only_elsewhere) == [c["run_id"]]

    def test_summaries_carry_the_records_numbers_and_choices(self, real):
        runs = {r.run_id: r for r in history.list_runs()}
        for record in real["records"]:
            summary = runs[record["run_id"]]
            assert summary.status == "completed" and summary.synthetic is True
            assert (summary.model, summary.backend, summary.device, summary.precision, summary.style) == (
                "resnet50", "onnxruntime", "cpu", "fp32", "short")
            assert [(t.scenario, t.mode, t.validity, t.value, t.unit) for t in summary.tests] == [
                (t["scenario"], t["mode"], t["validity"], t["value"], t["unit"]) for t in record["tests"]]
        a, b, c = (runs[r["run_id"]] for r in real["records"])
        assert (a.system_name, b.system_name) == ("sysA", "sysB")
        assert a.scenarios == ["Offline", "SingleStream"]
        accuracy = c.tests[0]
        assert accuracy.mode == "accuracy" and accuracy.accuracy == c_accuracy(real)
        assert accuracy.accuracy_passed is False  # random weights: far below the closed-division target

    def test_filter(self, real):
        runs = history.list_runs().runs
        a, b, c = (r["run_id"] for r in real["records"])
        assert _ids(history.filter_runs(runs, scenario="SingleStream")) == [a]
        assert _ids(history.filter_runs(runs, scenario=["singlestream", "Offline"])) == [c, b, a]
        assert _ids(history.filter_runs(runs, validity="INVALID", scenario="SingleStream")) == [a]
        assert _ids(history.filter_runs(runs, validity="invalid", scenario="Offline")) == []
        assert _ids(history.filter_runs(runs, text="SYSB")) == [b]
        assert _ids(history.filter_runs(runs, model="resnet", backend="ort", device="cpu")) == [c, b, a]
        assert _ids(history.filter_runs(runs, device="cuda")) == []
        assert _ids(history.filter_runs(runs, status="failed")) == []
        with pytest.raises(ProfileError, match="Did you mean 'bert'"):
            history.filter_runs(runs, model="bart")
        with pytest.raises(ProfileError, match="VALID or INVALID"):
            history.filter_runs(runs, validity="maybe")

    def test_sort(self, real):
        runs = history.list_runs().runs
        a, b, c = (r["run_id"] for r in real["records"])
        assert _ids(history.sort_runs(runs, "started")) == [a, b, c]
        assert _ids(history.sort_runs(runs, "started", reverse=True)) == [c, b, a]
        offline = {r["run_id"]: r["tests"][0]["value"] for r in real["records"][:2]}
        by_value = _ids(history.sort_runs(runs, "value"))
        assert by_value[:2] == sorted(offline, key=offline.get) and by_value[2] == c  # no value: last
        assert _ids(history.sort_runs(runs, "value", reverse=True))[2] == c
        with pytest.raises(ResultsError, match="Did you mean 'model'"):
            history.sort_runs(runs, "modle")

    def test_load_run_by_id_prefix_directory_latest_previous(self, real):
        a, b, c = real["records"]
        detail = history.load_run(a["run_id"])
        assert isinstance(detail, history.RunDetail) and detail.warnings == []
        assert [isinstance(t, Result) for t in detail.record.tests] == [True, True]
        assert detail.record.to_dict()["tests"] == a["tests"]
        assert detail.profile.scenarios == ("Offline", "SingleStream") and detail.profile.system_name == "sysA"
        assert detail.environment["packages"]["mlcommons-loadgen"]
        assert detail.plan and len(detail.plan["tests"]) == 2
        assert history.load_run(a["run_dir"]).run_id == a["run_id"]
        assert history.load_run(Path(a["run_dir"]) / "run.json").run_id == a["run_id"]
        assert history.load_run("latest").run_id == c["run_id"]
        assert history.load_run("previous").run_id == b["run_id"]
        unique = a["run_id"][:-1]  # every id differs in its stamp, so all but the last character is unique
        assert history.load_run(unique).run_id == a["run_id"]

    def test_unknown_run_suggests_the_closest_ids(self, real):
        a = real["records"][0]["run_id"]
        wrong = a.replace("resnet50", "resnet5O")
        with pytest.raises(history.UnknownRunError) as info:
            history.load_run(wrong)
        assert isinstance(info.value, ResultsError)
        assert "Did you mean" in info.value.message and a in info.value.message
        assert "results list" in info.value.fix

    def test_ambiguous_prefix_lists_the_candidates(self, real):
        shared = os.path.commonprefix([r["run_id"] for r in real["records"]])
        with pytest.raises(history.UnknownRunError, match="is the start of 3 run ids"):
            history.resolve_run(shared)

    def test_compare_real_runs(self, real):
        a, b, _ = real["records"]
        result = history.compare(a["run_id"], b["run_id"])
        rows = {(m.scenario, m.mode): m for m in result.metrics}
        offline = rows[("Offline", "performance")]
        assert offline.value_a == a["tests"][0]["value"] and offline.value_b == b["tests"][0]["value"]
        assert offline.ratio == pytest.approx(b["tests"][0]["value"] / a["tests"][0]["value"])
        assert offline.better == ("b" if offline.value_b > offline.value_a else "a")
        single = rows[("SingleStream", "performance")]
        assert single.value_b is None and single.ratio is None and single.note == "only in run a"
        changed = {d.field: (d.a, d.b) for d in result.profile}
        assert changed["scenarios"] == (["Offline", "SingleStream"], ["Offline"])
        assert changed["target_qps"] == ("auto", 400.0)
        assert changed["system_name"] == ("sysA", "sysB")
        assert result.environment == []  # the same machine and packages
        assert any("Synthetic" in n for n in result.notes)

    def test_export_formats_parse_back(self, real):
        runs = history.list_runs().runs
        rows = history.export_rows(runs)
        assert len(rows) == 4
        parsed_csv = list(csv.DictReader(io.StringIO(history.export(runs, "csv"))))
        assert [tuple(r) for r in parsed_csv] == [history.EXPORT_COLUMNS] * 4
        for row, expected in zip(parsed_csv, rows, strict=True):
            assert row["run_id"] == expected["run_id"] and row["scenario"] == expected["scenario"]
            assert row["value"] == ("" if expected["value"] is None else str(expected["value"]))
            assert row["synthetic"] == "true"
        assert json.loads(history.export(runs, "json")) == rows
        lines = history.export(runs, "markdown").splitlines()
        header, rule, *body = lines
        assert [c.strip() for c in header.strip("|").split("|")] == list(history.EXPORT_COLUMNS)
        table = [[c.strip() for c in line.strip("|").split("|")] for line in body[:4]]
        assert [dict(zip(history.EXPORT_COLUMNS, cells, strict=True))["mode"] for cells in table] == [
            r["mode"] for r in rows]
        assert "NOT MLPerf results" in lines[-1]
        by_run = {r["run_id"]: r for r in rows}
        a, b, _ = real["records"]
        assert by_run[a["run_id"]]["system_name"] == "sysA" and by_run[b["run_id"]]["system_name"] == "sysB"
        assert {r["style"] for r in rows} == {"short"} and {r["test_query_count"] for r in rows} == {16}
        assert all(isinstance(r["duration_s"], float) and r["duration_s"] > 0 for r in rows)
        with pytest.raises(ResultsError, match="Unknown export format"):
            history.export(runs, "xlsx")


def c_accuracy(real) -> float:
    return real["records"][2]["tests"][0]["accuracy"]["value"]


class TestCommandLine:
    def test_list_json_and_table(self, real):
        home, module = real["home"], real["module"]
        proc = _cli(home, "results", "list", "--json", module=module)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert [r["run_id"] for r in data["runs"]] == [r["run_id"] for r in reversed(real["records"])]
        assert data["total"] == 3 and data["warnings"] == []
        proc = _cli(home, "results", "list", "--scenario", "SingleStream", "--json", module=module)
        assert [r["run_id"] for r in json.loads(proc.stdout)["runs"]] == [real["records"][0]["run_id"]]
        table = _cli(home, "results", "list", module=module)
        assert table.returncode == 0, table.stderr
        assert all(len(line) <= 80 for line in table.stdout.splitlines()), table.stdout
        assert "SingleStream" in table.stdout and "NOT MLPerf" in table.stdout
        assert "1 of 3 runs" in _cli(home, "results", "list", "--validity", "INVALID", module=module).stdout

    def test_show(self, real):
        home, module = real["home"], real["module"]
        a = real["records"][0]
        proc = _cli(home, "results", "show", a["run_id"][:-1], "--json", module=module)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["run_id"] == a["run_id"] and data["record"]["tests"] == a["tests"]
        assert data["environment"]["packages"] and data["files"]["run.json"].endswith("run.json")
        text = _cli(home, "results", "show", "previous", module=module)
        assert text.returncode == 0, text.stderr
        b = real["records"][1]
        assert f"Run {b['run_id']}: completed" in text.stdout
        assert "Offline performance: VALID" in text.stdout and "mlcommons-loadgen" in text.stdout
        assert str(Path(b["run_dir"]) / "environment.json") in text.stdout

    def test_compare(self, real):
        home, module = real["home"], real["module"]
        a, b, _ = real["records"]
        proc = _cli(home, "results", "compare", a["run_id"], "previous", "--json", module=module)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert (data["a"]["run_id"], data["b"]["run_id"]) == (a["run_id"], b["run_id"])
        offline = next(m for m in data["metrics"] if m["scenario"] == "Offline")
        assert offline["ratio"] == pytest.approx(b["tests"][0]["value"] / a["tests"][0]["value"])
        assert {"field": "target_qps", "a": "auto", "b": 400.0} in data["profile"]
        text = _cli(home, "results", "compare", a["run_id"], "previous", module=module)
        assert text.returncode == 0 and "target_qps" in text.stdout and "only in run a" in text.stdout

    def test_export_to_file_refuses_to_overwrite(self, real, tmp_path):
        home, module = real["home"], real["module"]
        out = tmp_path / "runs.json"
        proc = _cli(home, "results", "export", "--output", out, module=module)
        assert proc.returncode == 0, proc.stderr
        rows = json.loads(out.read_text())  # the format follows the file's extension
        assert len(rows) == 4 and {r["run_id"] for r in rows} == {r["run_id"] for r in real["records"]}
        out.write_text("keep me")
        again = _cli(home, "results", "export", "--output", out, module=module)
        assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
        assert out.read_text() == "keep me" and "Traceback" not in again.stderr
        forced = _cli(home, "results", "export", "--format", "csv", "--output", out, "--force", "--scenario",
                      "SingleStream", module=module)
        assert forced.returncode == 0, forced.stderr
        parsed = list(csv.DictReader(io.StringIO(out.read_text())))
        assert [(r["scenario"], r["unit"]) for r in parsed] == [("SingleStream", "ms")]
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind

    def test_export_to_stdout_in_markdown(self, real):
        proc = _cli(real["home"], "results", "export", "latest", "--format", "markdown", module=real["module"])
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("| run_id |") and real["records"][2]["run_id"] in proc.stdout

    def test_unknown_run_is_a_clear_error(self, real):
        wrong = real["records"][0]["run_id"].replace("resnet50", "resnet5O")
        proc = _cli(real["home"], "results", "show", wrong, "--json", module=real["module"])
        assert proc.returncode == 2 and proc.stdout == ""
        assert "Did you mean" in proc.stderr and real["records"][0]["run_id"] in proc.stderr
        assert "Traceback" not in proc.stderr


# Hand-built run directories: numbers chosen here --------------------------------------------------------

def _test(scenario: str, value: float | None, unit: str | None, *, mode: str = "performance",
          validity: str | None = "VALID", metric: str | None = None, status: str = "completed",
          accuracy: float | None = None) -> dict[str, Any]:
    return {"scenario": scenario, "mode": mode, "status": status, "directory": "", "validity": validity,
            "metric": metric or f"{scenario} metric", "value": value, "unit": unit, "findings": [],
            "accuracy": None if accuracy is None else {"metric": "top-1 accuracy", "value": accuracy,
                                                       "target": 75.6954, "passed": accuracy >= 75.6954},
            "synthetic": False, "synthetic_model": False, "synthetic_data": False, "error": None,
            "target": None, "duration_s": 1.0, "latency_ms": {}}


def _env_record(onnxruntime: str = "1.17.0", cpu: str = "Xeon", gpus: list[dict] | None = None) -> dict:
    return {"mlperf_wizard": "0.1.0", "python": "3.11.7", "os": "Linux", "machine": "x86_64",
            "packages": {"mlcommons-loadgen": "6.0.17", "onnxruntime": onnxruntime},
            "hardware": {"cpu": {"model": cpu, "physical_cores": 8, "logical_cores": 16, "isa": ["avx2"]},
                         "memory_total_bytes": 16 * 2**30, "gpus": gpus or [], "backends": {}}}


def make_run(root: Path, run_id: str, started: str, tests: list[dict], *, profile: dict | None = None,
             environment: dict | None = None, status: str = "completed", system: str = "box") -> Path:
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    for t in tests:
        t["directory"] = str(run_dir / system / "resnet50" / t["scenario"] / t["mode"])
    record = {"run_id": run_id, "run_dir": str(run_dir), "started": started, "finished": started, "status": status,
              "synthetic": False, "tests": tests}
    (run_dir / "run.json").write_text(json.dumps(record), encoding="utf-8")
    (run_dir / "profile.yaml").write_text(dump_profile(make_profile(profile or {})), encoding="utf-8")
    (run_dir / "environment.json").write_text(json.dumps(environment or _env_record()), encoding="utf-8")
    return run_dir


ES_MET = "SingleStream 90th percentile latency (early stopping)"
ES_NOT_MET = "SingleStream 90th percentile latency (measured; early stopping not met)"


@pytest.fixture
def pair(home: Path) -> tuple[history.RunDetail, history.RunDetail]:
    results = home / "results"
    make_run(results, "20250101-100000-a", "2025-01-01T10:00:00+00:00", [
        _test("Offline", 100.0, "samples/s"),
        _test("SingleStream", 2.0, "ms", metric=ES_MET),
        _test("Server", 50.0, "queries/s"),
        _test("MultiStream", 8.0, "ms", validity="INVALID"),
        _test("Offline", None, None, mode="accuracy", validity=None, accuracy=75.0),
    ], profile={"scenarios": ["Offline", "SingleStream", "Server", "MultiStream"], "batch_size": 8},
        environment=_env_record())
    make_run(results, "20250102-100000-b", "2025-01-02T10:00:00+00:00", [
        _test("Offline", 125.0, "samples/s"),
        _test("SingleStream", 1.0, "ms", metric=ES_MET),
        _test("Server", 40.0, "queries/s", validity="INVALID"),
        _test("Offline", None, None, mode="accuracy", validity=None, accuracy=76.0),
    ], profile={"scenarios": ["Offline", "SingleStream", "Server"], "batch_size": 16, "device": "cuda"},
        environment=_env_record("1.18.1", "EPYC", [{"name": "H200", "memory_total_mib": 141000, "driver": "560"}]))
    return history.load_run("20250101"), history.load_run("20250102")


class TestCompareKnownNumbers:
    def test_different_models_or_precisions_are_warned_about(self, home):
        results = home / "results"
        make_run(results, "20250101-100000-a", "2025-01-01T10:00:00+00:00", [_test("Offline", 100.0, "samples/s")])
        make_run(results, "20250102-100000-b", "2025-01-02T10:00:00+00:00", [_test("Offline", 9.0, "samples/s")],
                 profile={"model": "bert", "precision": "int8"})
        make_run(results, "20250103-100000-c", "2025-01-03T10:00:00+00:00", [_test("Offline", 99.0, "samples/s")])
        notes = history.compare("20250101", "20250102").notes
        assert any(n.startswith("Different models (resnet50 vs bert)") for n in notes)
        assert any(n.startswith("Different precisions (fp32 vs int8)") for n in notes)
        assert not any("Different" in n for n in history.compare("20250101", "20250103").notes)

    def test_ratios_directions_and_differences(self, pair):
        result = history.compare(*pair)
        rows = {(m.scenario, m.mode): m for m in result.metrics}
        offline = rows[("Offline", "performance")]
        assert (offline.ratio, offline.difference, offline.percent) == (1.25, 25.0, 25.0)
        assert offline.higher_is_better is True and offline.better == "b"
        assert offline.verdict == "b is 1.25x faster (+25.0%)"
        single = rows[("SingleStream", "performance")]
        assert (single.ratio, single.difference, single.percent) == (0.5, -1.0, -50.0)
        assert single.higher_is_better is False and single.better == "b"
        assert single.verdict == "b is 2x faster (-50.0% latency)"
        server = rows[("Server", "performance")]
        assert server.ratio == pytest.approx(0.8) and server.better == "a"
        assert server.note == "validity differs (VALID vs INVALID)"
        assert server.verdict == "b is 1.25x slower (-20.0%)"
        multi = rows[("MultiStream", "performance")]
        assert multi.ratio is None and multi.value_b is None and multi.note == "only in run a"
        accuracy = rows[("Offline", "accuracy")]
        assert (accuracy.value_a, accuracy.value_b, accuracy.unit_a) == (75.0, 76.0, "%")
        assert accuracy.difference == 1.0 and accuracy.better == "b"

    def test_profile_and_environment_differences(self, pair):
        result = history.compare(*pair)
        profile = {d.field: (d.a, d.b) for d in result.profile}
        assert profile == {"device": ("cpu", "cuda"), "batch_size": (8, 16),
                           "scenarios": (["Offline", "SingleStream", "Server", "MultiStream"],
                                         ["Offline", "SingleStream", "Server"])}
        env = {d.field: (d.a, d.b) for d in result.environment}
        assert env["package onnxruntime"] == ("1.17.0", "1.18.1")
        assert env["cpu"] == ("Xeon", "EPYC")
        assert env["gpus"] == ("none", "H200 (141000 MiB)") and env["gpu driver"] == (None, "560")
        assert "package mlcommons-loadgen" not in env and "python" not in env
        as_json = json.loads(json.dumps(result.to_dict()))
        assert as_json["metrics"][0]["verdict"] == "b is 1.25x faster (+25.0%)"

    def test_no_ratio_between_different_metrics_or_units(self, home):
        results = home / "results"
        make_run(results, "20250101-100000-a", "2025-01-01T10:00:00+00:00",
                 [_test("SingleStream", 2.0, "ms", metric=ES_MET), _test("Offline", 0.0, "samples/s")])
        make_run(results, "20250102-100000-b", "2025-01-02T10:00:00+00:00",
                 [_test("SingleStream", 1.0, "ms", metric=ES_NOT_MET), _test("Offline", 10.0, "samples/s")])
        rows = {m.scenario: m for m in history.compare("20250101", "20250102").metrics}
        assert rows["SingleStream"].ratio is None and "different metrics" in rows["SingleStream"].note
        assert rows["SingleStream"].better is None
        assert rows["Offline"].ratio is None and rows["Offline"].difference == 10.0
        assert "0" in rows["Offline"].note

    def test_same_values_are_the_same(self, home):
        results = home / "results"
        for rid, day in (("20250101-100000-a", "01"), ("20250102-100000-b", "02")):
            make_run(results, rid, f"2025-01-{day}T10:00:00+00:00", [_test("Offline", 100.0, "samples/s")])
        (row,) = history.compare("20250101", "20250102").metrics
        assert row.ratio == 1.0 and row.better == "same" and row.verdict == "the same"


class TestDamagedHistory:
    def test_corrupt_run_json_is_skipped_with_a_warning(self, home, cli):
        results = home / "results"
        make_run(results, "20250101-100000-good", "2025-01-01T10:00:00+00:00", [_test("Offline", 1.0, "samples/s")])
        for name, text in (("20250102-100000-half", '{"run_id": "20250102-100000-half", "tests": [{"sce'),
                           ("20250103-100000-empty", ""), ("20250104-100000-list", "[1, 2]")):
            (results / name).mkdir()
            (results / name / "run.json").write_text(text)
        found = history.list_runs()
        assert _ids(found) == ["20250101-100000-good"]
        assert len(found.warnings) == 3
        assert any("half" in w and "not valid JSON" in w for w in found.warnings)
        assert any("empty" in w and "is empty" in w for w in found.warnings)
        assert any("list" in w and "not an mlperf-wizard run record" in w for w in found.warnings)
        with pytest.raises(ResultsError, match="not valid JSON"):
            history.load_run(results / "20250102-100000-half")
        proc = cli("results", "list", "--json")
        if proc.returncode == 2 and "invalid choice" in proc.stderr:  # the CLI does not carry `results` yet
            proc = subprocess.run([sys.executable, "-m", "wizard.cli", "results", "list", "--json"],
                                  capture_output=True, text=True, env=os.environ.copy(), timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert [r["run_id"] for r in json.loads(proc.stdout)["runs"]] == ["20250101-100000-good"]
        assert proc.stderr.count("warning: skipped") == 3

    def test_missing_profile_and_environment_still_list_and_load(self, home):
        run_dir = make_run(home / "results", "20250101-100000-bare", "2025-01-01T10:00:00+00:00",
                           [_test("Offline", 1.0, "samples/s")])
        (run_dir / "profile.yaml").unlink()
        (run_dir / "environment.json").write_text("{not json")
        (summary,) = history.list_runs()
        assert summary.model is None and summary.system_name == "box"
        detail = history.load_run("latest")
        assert detail.profile is None and detail.environment == {}
        assert len(detail.warnings) == 3  # profile, environment, plan
        assert history.environment_digest(detail.environment) == {}

    def test_an_alias_bomb_in_a_run_profile_neither_hangs_nor_floods(self, home, cli):
        bomb = "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9) if p else 'x, x, x, x, x, x, x, x, x'}]\n"
                       for p, c in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh", strict=True))
        run_dir = make_run(home / "results", "20250101-100000-bomb", "2025-01-01T10:00:00+00:00",
                           [_test("Offline", 1.0, "samples/s")])
        (run_dir / "profile.yaml").write_text(bomb + "version: 1\nmodel: *h\nscenarios: *h\n",
                                                encoding="utf-8")
        listed = cli("results", "list", "--json", timeout=30)
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert [r["run_id"] for r in json.loads(listed.stdout)["runs"]] == ["20250101-100000-bomb"]
        shown = cli("results", "show", "latest", timeout=30)
        assert shown.returncode == 0, shown.stderr[-2000:]
        assert "bomb" in shown.stdout and len(shown.stdout) + len(shown.stderr) < 20_000

    def test_one_bad_value_flags_only_its_own_run(self, home, cli):
        """Issue 7 item 4's cases: a bad scalar in one run's profile.yaml, a non-string inside a list of
        environment.json, a mistyped test value, one broken saved profile: every run stays visible."""
        results = home / "results"
        make_run(results, "20250101-100000-good", "2025-01-01T10:00:00+00:00", [_test("Offline", 1.0, "samples/s")])
        bad = make_run(results, "20250102-100000-bad", "2025-01-02T10:00:00+00:00",
                       [_test("Offline", 2.0, "samples/s"), _test("Server", 3.0, "queries/s")])
        (bad / "profile.yaml").write_text("version: 1\nmodel: [1, 2]\nprecision: {a: b}\nbackend: onnxruntime\n")
        env = _env_record()
        env["hardware"]["cpu"]["isa"] = [1, {"x": 2}, "avx2"]
        env["hardware"]["gpus"] = ["H200", None]
        env["packages"] = ["onnxruntime"]
        (bad / "environment.json").write_text(json.dumps(env))
        record = json.loads((bad / "run.json").read_text())
        record["tests"][1].update(value="fast", latency_ms=[1], validity=7, findings=[{"rule": 1}])
        record["started"] = ["not", "a", "time"]
        (bad / "run.json").write_text(json.dumps(record))
        profiles = home / "config" / "profiles"
        profiles.mkdir(parents=True)
        (profiles / "broken.yaml").write_text("model: [\n")
        (profiles / "folder.yaml").mkdir()

        found = history.list_runs()
        assert set(_ids(found)) == {"20250101-100000-good", "20250102-100000-bad"}
        flagged = {r.run_id: r for r in found}["20250102-100000-bad"]
        assert flagged.model is None and flagged.precision is None and flagged.backend == "onnxruntime"
        assert [t.value for t in flagged.tests] == [2.0, None] and flagged.tests[1].validity is None
        assert any("profile.yaml: model is [1, 2]" in w for w in found.warnings)
        assert any("run.json: Server performance: unreadable" in w and "value" in w for w in found.warnings)
        assert all("20250101-100000-good" not in w for w in found.warnings)
        detail = history.load_run("20250102-100000-bad")
        assert history.environment_digest(detail.environment)["cpu isa"] == "1, avx2"
        for args in (("list",), ("show", "20250102-100000-bad"), ("compare", "20250101", "20250102"),
                     ("export", "--format", "csv"), ("show", "20250102", "--json")):
            done = cli("results", *args)
            assert done.returncode == 0, (args, done.stderr)
            assert "internal error" not in done.stderr and "20250102-100000-bad" in done.stderr + done.stdout

    def test_deleted_run_directory_is_dropped(self, home, tmp_path):
        elsewhere = tmp_path / "elsewhere"
        kept = make_run(elsewhere, "20250101-100000-kept", "2025-01-01T10:00:00+00:00",
                        [_test("Offline", 1.0, "samples/s")])
        gone = make_run(elsewhere, "20250102-100000-gone", "2025-01-02T10:00:00+00:00",
                        [_test("Offline", 2.0, "samples/s")])
        index = home / "state" / "runs.jsonl"
        index.parent.mkdir(parents=True)
        index.write_text("".join(json.dumps({"run_id": p.name, "run_dir": str(p)}) + "\n" for p in (kept, gone))
                         + '{"run_id": "torn', encoding="utf-8")
        assert _ids(history.list_runs()) == ["20250102-100000-gone", "20250101-100000-kept"]
        shutil.rmtree(gone)
        found = history.list_runs()
        assert _ids(found) == ["20250101-100000-kept"] and found.warnings == []
        with pytest.raises(history.UnknownRunError):
            history.load_run("20250102-100000-gone")

    def test_empty_history(self, home):
        found = history.list_runs()
        assert found.runs == [] and found.warnings == []
        with pytest.raises(history.UnknownRunError, match="no latest run"):
            history.load_run("latest")
        with pytest.raises(history.UnknownRunError, match="no runs in the history"):
            history.load_run("20250101")


class TestListingDetails:
    def test_profile_name_is_found_when_a_saved_profile_matches(self, home):
        saved = home / "config" / "profiles" / "nightly.yaml"
        saved.parent.mkdir(parents=True)
        saved.write_text("version: 1\nscenarios: [Server]\nbatch_size: 4\n")
        make_run(home / "results", "20250101-100000-a", "2025-01-01T10:00:00+00:00",
                 [_test("Server", 10.0, "queries/s")], profile={"scenarios": ["Server"], "batch_size": 4})
        make_run(home / "results", "20250102-100000-b", "2025-01-02T10:00:00+00:00",
                 [_test("Server", 10.0, "queries/s")], profile={"scenarios": ["Server"], "batch_size": 8})
        names = {r.run_id: (r.profile_name, r.profile_path) for r in history.list_runs()}
        assert names == {"20250101-100000-a": ("nightly", str(saved)), "20250102-100000-b": (None, None)}

    def test_failed_run_without_tests_is_listed_and_exported(self, home):
        make_run(home / "results", "20250101-100000-f", "2025-01-01T10:00:00+00:00", [], status="failed")
        (run,) = history.list_runs()
        assert run.status == "failed" and run.tests == [] and run.primary is None
        assert _ids(history.filter_runs([run], status="FAILED")) == [run.run_id]
        (row,) = history.export_rows([run])
        assert row["status"] == "failed" and row["scenario"] is None

    def test_list_keeps_whole_words_at_80_columns(self, home, cli):
        """The widest usual rows: long names, a five-digit rate, an accuracy test and a cancelled one."""
        profile = {"model": "retinanet", "backend": "onnxruntime", "device": "cuda",
                   "scenarios": ["Offline", "SingleStream"]}
        make_run(home / "results", "20250101-100000-a", "2025-01-01T10:00:00+00:00", [
            _test("Offline", 12345.6, "samples/s"),
            _test("SingleStream", None, None, mode="accuracy", accuracy=12.5),
            _test("SingleStream", None, None, mode="accuracy", status="cancelled", validity=None),
        ], profile=profile)
        make_run(home / "results", "20250102-100000-b", "2025-01-02T10:00:00+00:00", [], status="failed",
                 profile=profile)
        for columns in ("80", "100"):
            proc = cli("results", "list", env={"COLUMNS": columns})
            assert proc.returncode == 0, proc.stderr
            lines = proc.stdout.splitlines()
            assert all(len(line) <= int(columns) for line in lines), proc.stdout
            words = proc.stdout.split()
            # The scenario, result and verdict stay whole; only the backend's name gives way, at 80.
            for word in ("retinanet", "cuda", "SingleStream", "12,346", "CANCELLED", "FAILED", "(accuracy)",
                         "accuracy", "BELOW", "VALID") + (("onnxruntime",) if columns == "100" else ()):
                assert word in words, (columns, word, proc.stdout)

    def test_sort_keeps_runs_without_a_value_last_both_ways(self, home):
        results = home / "results"
        make_run(results, "20250101-100000-a", "2025-01-01T10:00:00+00:00", [_test("Offline", 5.0, "samples/s")])
        make_run(results, "20250102-100000-b", "2025-01-02T10:00:00+00:00", [], status="failed")
        make_run(results, "20250103-100000-c", "2025-01-03T10:00:00+00:00", [_test("Offline", 9.0, "samples/s")])
        runs = history.list_runs().runs
        assert _ids(history.sort_runs(runs, "value")) == ["20250101-100000-a", "20250103-100000-c",
                                                          "20250102-100000-b"]
        assert _ids(history.sort_runs(runs, "value", reverse=True)) == ["20250103-100000-c",
                                                                        "20250101-100000-a", "20250102-100000-b"]

    def test_markdown_escapes_pipes(self, home):
        make_run(home / "results", "20250101-100000-a", "2025-01-01T10:00:00+00:00",
                 [_test("Offline", 1.0, "samples/s", metric="a | b")])
        body = history.export(history.list_runs().runs, "markdown").splitlines()[2]
        assert "a \\| b" in body

    def test_short_ids_are_unique_prefixes(self):
        from wizard.results_cmd import short_ids

        ids = ["20250101-100000-a", "20250101-100000-a-1", "20250101-100000-b", "20250102-090000-x"]
        short = short_ids(ids)
        assert short["20250102-090000-x"] == "20250102-090000"
        for rid, prefix in short.items():
            assert [o for o in ids if o.startswith(prefix)] == [rid] or prefix == rid


def test_history_engine_imports_no_front_end():
    code = ("import sys, harness.history; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('textual', 'rich', 'questionary', 'wizard')); print(','.join(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr
