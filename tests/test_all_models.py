"""Every benchmark through the real CLI in every scenario MLPerf defines for it, both modes, on the tiny
synthetic models and generated data (the issue's `--style short` matrix)."""

from __future__ import annotations

import json

import pytest

MATRIX = {
    "retinanet": ("fp32", ["Offline", "Server", "SingleStream", "MultiStream"], "mAP"),
    "bert": ("fp32", ["Offline", "Server", "SingleStream"], "F1"),
}


@pytest.mark.parametrize("model", MATRIX)
def test_every_scenario_both_modes(home, cli, model):
    precision, scenarios, metric = MATRIX[model]
    done = cli("run", "--model", model, "--backend", "onnxruntime", "--device", "cpu", "--precision", precision,
               "--scenario", *scenarios, "--mode", "both", "--style", "short", "--test-query-count", "4",
               "--dataset-size", "8", "--json", timeout=600)
    tests = json.loads(done.stdout)["tests"]
    # Short stream/Server runs may be INVALID (early stopping): exit 3 then, else 0.
    assert done.returncode == (3 if any(t["validity"] == "INVALID" for t in tests) else 0), done.stderr
    expected = [(s, m) for s in scenarios for m in ("accuracy", "performance")]
    assert [(t["scenario"], t["mode"]) for t in tests] == expected
    for t in tests:
        assert t["status"] == "completed", t["error"]
        assert t["synthetic_model"] and t["synthetic_data"]
        if t["mode"] == "accuracy":
            assert t["accuracy"]["metric"] == metric
        else:
            assert t["validity"] in ("VALID", "INVALID") and t["value"] and t["value"] > 0


def test_bert_int8_runs(home, cli):
    done = cli("run", "--model", "bert", "--precision", "int8", "--scenario", "Offline", "--mode", "both",
               "--test-query-count", "8", "--dataset-size", "8", "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    accuracy, performance = json.loads(done.stdout)["tests"]
    assert accuracy["accuracy"]["metric"] == "F1" and performance["validity"] == "VALID"


def test_multistream_is_refused_for_bert(home, cli):
    done = cli("run", "--model", "bert", "--scenario", "MultiStream", "--dry-run")
    assert done.returncode == 2
    assert "no MultiStream" in done.stderr and "Traceback" not in done.stderr
