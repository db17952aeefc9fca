"""The tvm-onnx backend: the same answers as ONNX Runtime on the same synthetic ONNX files (the three tasks,
as LoadGen receives them), a compiled library cached and rebuilt when damaged, refusals named, and a real
LoadGen run through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

tvm = pytest.importorskip("tvm")

from agreement import assert_same_detections, assert_same_spans  # noqa: E402

from harness import cache_integrity  # noqa: E402
from harness.backends.base import load_backend  # noqa: E402
from harness.datasets.imagenet import SyntheticImageNet  # noqa: E402
from harness.errors import CoverageError, ModelError  # noqa: E402
from harness.models.bert import BertTask  # noqa: E402
from harness.models.families import build_synthetic  # noqa: E402
from harness.models.resnet50 import ResNet50Task  # noqa: E402
from harness.models.retinanet import RetinaNetTask  # noqa: E402

# Measured on the tiny models: TVM and ONNX Runtime sum in different orders; BERT logits differ by ~4e-7,
# RetinaNet box corners by ~1e-4 px of 800 (normalised: ~2e-7), scores by ~2e-7.
LOGIT_ATOL = 1e-5
DETECTION_ATOL = 1e-4


@pytest.fixture(scope="module")
def tvm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tvm-home")


@pytest.fixture(autouse=True)
def _home(tvm_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPERF_WIZARD_HOME", str(tvm_home))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    out = {}
    for model in ("resnet50", "retinanet", "bert"):
        out[model] = folder / f"{model}.onnx"
        build_synthetic(model, out[model], "tiny", "fp32")
    return out


def _pair(model: str, path: Path, task):
    outputs = task.outputs
    ort = load_backend("onnxruntime", path, device="cpu", threads=2, outputs=outputs, model=model)
    tvm_backend = load_backend("tvm-onnx", path, device="cpu", threads=2, outputs=outputs, model=model)
    return task(ort), task(tvm_backend), tvm_backend


def test_resnet50_gives_the_classes_of_onnxruntime(models) -> None:
    ort, tvm_task, backend = _pair("resnet50", models["resnet50"], ResNet50Task)
    data = SyntheticImageNet(16)
    images = np.stack([data.sample(i) for i in range(16)])
    expected = ort.infer(images)
    np.testing.assert_array_equal(tvm_task.infer(images), expected)
    # One compiled library serves every batch size (the batch dimension stays symbolic).
    np.testing.assert_array_equal(tvm_task.infer(images[:3]), expected[:3])
    assert backend.library.is_file() and cache_integrity.check_file(backend.library) is None


def test_bert_gives_the_logits_and_spans_of_onnxruntime(models) -> None:
    ort, tvm_task, _ = _pair("bert", models["bert"], BertTask)
    assert_same_spans(ort, tvm_task, LOGIT_ATOL)


def test_retinanet_gives_the_detections_of_onnxruntime(models) -> None:
    ort, tvm_task, _ = _pair("retinanet", models["retinanet"], RetinaNetTask)
    assert_same_detections(ort, tvm_task, DETECTION_ATOL)


def test_the_compiled_library_is_reused_and_a_damaged_one_rebuilt(models) -> None:
    path = models["resnet50"]
    first = load_backend("tvm-onnx", path, device="cpu", threads=2, outputs=ResNet50Task.outputs,
                         model="resnet50")
    ResNet50Task(first).infer(np.stack([SyntheticImageNet(1).sample(0)]))  # compiles, if not cached yet
    again = load_backend("tvm-onnx", path, device="cpu", threads=2, outputs=ResNet50Task.outputs,
                         model="resnet50")
    assert again.vm is not None and again.warmup_short == "untimed batch"  # loaded, no compile to show
    # Damaged on disk (a new file in its place: this process has the old one mapped, and writing into a
    # mapped library would crash it, not test anything).
    damaged_copy = first.library.with_name("damaged.so")
    damaged_copy.write_bytes(first.library.read_bytes()[:1000])
    damaged_copy.replace(first.library)
    damaged = load_backend("tvm-onnx", path, device="cpu", threads=2, outputs=ResNet50Task.outputs,
                           model="resnet50")
    assert damaged.vm is None and "TVM compile" in damaged.warmup_text and not damaged.library.exists()
    image = np.stack([SyntheticImageNet(1).sample(0)])
    np.testing.assert_array_equal(ResNet50Task(damaged).infer(image), ResNet50Task(first).infer(image))
    assert cache_integrity.check_file(damaged.library) is None


def test_another_model_file_gets_its_own_library(models, tmp_path) -> None:
    import onnx

    proto = onnx.load(str(models["resnet50"]))
    proto.doc_string = "the same network, another file"
    other = tmp_path / "resnet50.onnx"
    onnx.save(proto, str(other))
    a = load_backend("tvm-onnx", models["resnet50"], device="cpu", threads=2, outputs=ResNet50Task.outputs,
                     model="resnet50")
    b = load_backend("tvm-onnx", other, device="cpu", threads=2, outputs=ResNet50Task.outputs, model="resnet50")
    assert a.library != b.library


def test_refusals_name_the_problem(models, tmp_path) -> None:
    path = models["resnet50"]
    with pytest.raises(CoverageError, match="CPU only"):
        load_backend("tvm-onnx", path, device="cuda", threads=None, outputs=ResNet50Task.outputs, model="resnet50")
    with pytest.raises(CoverageError, match="fp32 only"):
        load_backend("tvm-onnx", path, device="cpu", threads=None, outputs=ResNet50Task.outputs, model="resnet50",
                     precision="bf16")
    garbage = tmp_path / "bad.onnx"
    garbage.write_bytes(b"\x08\x07not a model" * 100)
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        load_backend("tvm-onnx", garbage, device="cpu", threads=None, outputs=ResNet50Task.outputs,
                     model="resnet50")
    with pytest.raises(ModelError, match="inputs"):  # a BERT file for ResNet50
        load_backend("tvm-onnx", models["bert"], device="cpu", threads=None, outputs=ResNet50Task.outputs,
                     model="resnet50")


def test_a_loadgen_run_on_tvm(cli) -> None:
    """Offline and SingleStream, accuracy and performance, through the CLI: the compile shown as such."""
    proc = cli("run", "--backend", "tvm-onnx", "--model", "resnet50", "--scenario", "Offline", "SingleStream",
               "--mode", "both", "--test-query-count", "32", "--dataset-size", "32", "--synthetic", "--json",
               timeout=600)
    assert proc.returncode in (0, 3), proc.stderr[-3000:]
    record = json.loads(proc.stdout)
    assert [(t["scenario"], t["mode"], t["status"]) for t in record["tests"]] == [
        ("Offline", "accuracy", "completed"), ("Offline", "performance", "completed"),
        ("SingleStream", "accuracy", "completed"), ("SingleStream", "performance", "completed")]
    assert "TVM compile of the model for llvm -mcpu=" in proc.stderr
