"""The tensorflow backend: frozen graphs in MLCommons' TensorFlow interfaces give the answers ONNX Runtime gives
on the same synthetic weights (the three tasks, as LoadGen receives them), bad files and devices are refused
with the reason, and real LoadGen runs go through the CLI with TensorFlow's own log kept out of the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from agreement import assert_same_detections, assert_same_spans  # noqa: E402

from harness.backends.base import load_backend  # noqa: E402
from harness.datasets.imagenet import SyntheticImageNet  # noqa: E402
from harness.errors import CoverageError, ModelError  # noqa: E402
from harness.models import tf_graph  # noqa: E402
from harness.models.bert import BertTask  # noqa: E402
from harness.models.families import build_synthetic  # noqa: E402
from harness.models.resnet50 import ResNet50Task  # noqa: E402
from harness.models.retinanet import RetinaNetTask  # noqa: E402

# Measured on the tiny models: TensorFlow (oneDNN) and ONNX Runtime sum in different orders.
LOGIT_ATOL = 1e-4
DETECTION_ATOL = 1e-4


class _Models(dict):
    """model -> its tiny synthetic frozen graph (the ONNX file it comes from beside it), built when first asked."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def __missing__(self, model: str) -> Path:
        path = self.folder / f"{model}.pb"
        build_synthetic(model, path, "tiny", "fp32")  # builds the .onnx beside it first
        self[model] = path
        return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _Models(tmp_path_factory.mktemp("models"))


def _pair(model: str, graph: Path, task):
    ort = load_backend("onnxruntime", graph.with_suffix(".onnx"), device="cpu", threads=2, outputs=task.outputs,
                       model=model)
    tf_backend = load_backend("tensorflow", graph, device="cpu", threads=2, outputs=task.outputs, model=model)
    return task(ort), task(tf_backend), tf_backend


def test_resnet50_gives_the_classes_of_onnxruntime_from_nhwc_images(models) -> None:
    ort, tf_task, backend = _pair("resnet50", models["resnet50"], ResNet50Task)
    assert backend.image_layout == "NHWC" and tf_task.layout == "NHWC" and ort.layout == "NCHW"
    nchw = np.stack([SyntheticImageNet(16, layout="NCHW").sample(i) for i in range(16)])
    nhwc = np.stack([SyntheticImageNet(16, layout="NHWC").sample(i) for i in range(16)])
    np.testing.assert_array_equal(nhwc, nchw.transpose(0, 2, 3, 1))
    expected = ort.infer(nchw)
    np.testing.assert_array_equal(tf_task.infer(nhwc), expected)
    np.testing.assert_array_equal(tf_task.infer(nhwc[:3]), expected[:3])  # any batch size


def test_bert_gives_the_logits_and_spans_of_onnxruntime(models) -> None:
    ort, tf_task, backend = _pair("bert", models["bert"], BertTask)
    assert backend.graph.dtypes == [np.dtype(np.int32)] * 3  # as the official model.pb: int64 feeds are cast
    assert_same_spans(ort, tf_task, LOGIT_ATOL)


def test_retinanet_gives_the_detections_of_onnxruntime(models) -> None:
    ort, tf_task, _ = _pair("retinanet", models["retinanet"], RetinaNetTask)
    assert_same_detections(ort, tf_task, DETECTION_ATOL)


def test_an_official_style_graph_with_other_nodes_and_names_loads(models, tmp_path) -> None:
    """A frozen graph is found by its tensor names: a file with more nodes than the task needs loads."""
    def network(x):
        y = tf.reduce_mean(x, axis=[1, 2])
        return (tf.identity(tf.argmax(y, axis=1), name="ArgMax"), tf.identity(tf.nn.softmax(y), name="other"))

    path = tmp_path / "resnet50_v1.pb"
    path.write_bytes(tf_graph.freeze(network, [tf.TensorSpec([None, 224, 224, 3], tf.float32,
                                                             name="input_tensor")]))
    backend = load_backend("tensorflow", path, device="cpu", threads=1, outputs=ResNet50Task.outputs,
                           model="resnet50")
    images = np.zeros((2, 224, 224, 3), np.float32)
    images[0, ..., 2] = 1.0
    assert backend.run({"image": images})["class"].tolist() == [2, 0]


def test_refusals_name_the_problem(models, tmp_path) -> None:
    path = models["resnet50"]
    outputs = ResNet50Task.outputs
    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(CoverageError, match="sees no GPU"):
            load_backend("tensorflow", path, device="cuda", threads=None, outputs=outputs, model="resnet50")
    with pytest.raises(CoverageError, match="fp32 only"):
        load_backend("tensorflow", path, device="cpu", threads=None, outputs=outputs, model="resnet50",
                     precision="bf16")
    garbage = tmp_path / "bad.pb"
    garbage.write_bytes(b"\x08\x07not a graph" * 100)
    with pytest.raises(ModelError, match="not a readable TensorFlow frozen graph"):
        load_backend("tensorflow", garbage, device="cpu", threads=None, outputs=outputs, model="resnet50")
    missing = tmp_path / "absent.pb"
    with pytest.raises(ModelError, match="not a readable TensorFlow frozen graph"):
        load_backend("tensorflow", missing, device="cpu", threads=None, outputs=outputs, model="resnet50")
    with pytest.raises(ModelError, match="expected inputs input_tensor:0"):  # a BERT graph for ResNet50
        load_backend("tensorflow", models["bert"], device="cpu", threads=None, outputs=outputs, model="resnet50")


@pytest.mark.parametrize("model", ["resnet50", "bert", "retinanet"])
def test_a_loadgen_run_on_tensorflow(cli, model) -> None:
    """Offline and SingleStream, accuracy and performance, through the CLI; TensorFlow's C++ log lines go
    to the run's log, not to the terminal."""
    proc = cli("run", "--backend", "tensorflow", "--model", model, "--scenario", "Offline", "SingleStream",
               "--mode", "both", "--test-query-count", "16", "--dataset-size", "16", "--synthetic", "--json",
               timeout=600)
    assert proc.returncode in (0, 3), proc.stderr[-3000:]
    record = json.loads(proc.stdout)
    assert [(t["scenario"], t["mode"], t["status"]) for t in record["tests"]] == [
        ("Offline", "accuracy", "completed"), ("Offline", "performance", "completed"),
        ("SingleStream", "accuracy", "completed"), ("SingleStream", "performance", "completed")]
    terminal = proc.stdout + proc.stderr
    assert "oneDNN" not in terminal and "absl::InitializeLog" not in terminal
    logs = "".join(p.read_text(errors="replace") for p in Path(record["run_dir"]).rglob("run.log"))
    assert "oneDNN" in logs or "tensorflow" in logs.lower()


def test_pytorch_retinanet_weights_are_converted_into_the_tensorflow_graph(models, tmp_path) -> None:
    """MLCommons publishes RetinaNet for PyTorch and ONNX only: its PyTorch weights become the project's
    TensorFlow graph (on first use, cached), with the detections of ONNX Runtime on the same weights."""
    torch = pytest.importorskip("torch")
    from harness.models.families import convert_official
    from harness.models.torch_retinanet import state_dict_from_onnx

    onnx_file = models["retinanet"].with_suffix(".onnx")
    weights = tmp_path / "resnext50_32x4d_fpn.pth"
    torch.save(state_dict_from_onnx(onnx_file), weights)
    graph = tmp_path / "converted.pb"
    info = convert_official("retinanet", weights, graph)
    assert graph.is_file() and info.size_bytes == graph.stat().st_size
    ort = RetinaNetTask(load_backend("onnxruntime", onnx_file, device="cpu", threads=2,
                                     outputs=RetinaNetTask.outputs, model="retinanet"))
    converted = RetinaNetTask(load_backend("tensorflow", graph, device="cpu", threads=2,
                                           outputs=RetinaNetTask.outputs, model="retinanet"))
    assert_same_detections(ort, converted, DETECTION_ATOL)


def test_a_pytorch_file_given_for_tensorflow_retinanet_is_planned_as_a_conversion(cli, tmp_path) -> None:
    weights = tmp_path / "my-retinanet.pth"
    weights.write_bytes(b"not read by a dry run")
    proc = cli("run", "--backend", "tensorflow", "--model", "retinanet", "--model-path", weights, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert f"weights from {weights} in mlperf-wizard's tensorflow graph" in proc.stdout
    refused = cli("run", "--backend", "tensorflow", "--model", "retinanet", "--model-source", "official",
                  "--dry-run")
    assert refused.returncode == 2 and "resnext50_32x4d_fpn.pth" in refused.stderr
    assert "mlperf-wizard models fetch retinanet" in refused.stderr
