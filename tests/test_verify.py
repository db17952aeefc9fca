"""`mlperf-wizard verify`: real smoke runs of the combinations that can run here, recorded for the coverage
with the backend's version (a failure with its reason), and refusals of choices that cannot run."""

from __future__ import annotations

import json

from harness.faults import FAULT_ENV


def _cell(cli, model: str, backend: str, device: str = "cpu", precision: str = "fp32") -> dict:
    rows = json.loads(cli("coverage", "--json").stdout)
    return next(r for r in rows if (r["model"], r["backend"], r["device"], r["precision"])
                == (model, backend, device, precision))


def test_a_working_combination_is_recorded_verified_with_its_version(cli) -> None:
    before = _cell(cli, "resnet50", "onnxruntime")
    assert before["here"] == "works"
    proc = cli("verify", "--model", "resnet50", "--backend", "ort", "--device", "cpu", "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (outcome,) = json.loads(proc.stdout)["outcomes"]
    assert outcome["ok"] and outcome["backend"] == "onnxruntime" and outcome["run_id"]
    assert "[1/1] resnet50 + onnxruntime + cpu + fp32" in proc.stderr
    assert "resnet50 + onnxruntime + cpu + fp32: works" in proc.stderr
    import onnxruntime

    after = _cell(cli, "resnet50", "onnxruntime")
    assert after["here"] == "verified" and after["verified_at"]
    assert f"with onnxruntime {onnxruntime.__version__}" in after["reason"]


def test_a_failing_combination_is_recorded_with_its_reason(cli) -> None:
    proc = cli("verify", "--model", "resnet50", "--backend", "onnxruntime", env={FAULT_ENV: "raise-after:0"},
               timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "resnet50 + onnxruntime + cpu + fp32: fails: Offline accuracy failed" in " ".join(proc.stdout.split())
    cell = _cell(cli, "resnet50", "onnxruntime")
    assert cell["here"] == "works" and "the last run on this machine failed" in cell["reason"]
    assert "injected fault" in cell["reason"]


def test_choices_that_cannot_run_are_refused(cli) -> None:
    nothing = cli("verify", "--backend", "tvm-onnx", "--device", "cuda")  # TVM runs on the CPU only
    assert nothing.returncode == 2 and "Nothing to verify" in nothing.stdout
    bad = cli("verify", "--backend", "foo")
    assert bad.returncode == 2 and "unknown value 'foo'" in bad.stderr and "Traceback" not in bad.stderr
