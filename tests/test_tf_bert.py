"""The project's TensorFlow BERT, frozen in the official model.pb's interface, runs the synthetic ONNX BERT's
network and checks the weights it is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from harness.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from harness.datasets.squad import SyntheticSquad  # noqa: E402
from harness.errors import ModelError  # noqa: E402
from harness.models import tf_bert, tf_graph  # noqa: E402
from harness.models.bert import BertTask  # noqa: E402
from harness.models.families import build_synthetic  # noqa: E402
from harness.models.synthetic_bert import SEQ_LEN, reference_state  # noqa: E402

SAMPLES = 4
# Measured on the tiny model: max |ORT - TF| 2.4e-7 on logits of magnitude ~0.7 (fp32, oneDNN on).
FP32_ATOL = 1e-5


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bert") / "b.onnx"
    build_synthetic("bert", path, "tiny", "fp32")
    return path


@pytest.fixture(scope="module")
def state(onnx_path: Path) -> dict[str, np.ndarray]:
    return reference_state(onnx_path)


@pytest.fixture(scope="module")
def graph(state: dict[str, np.ndarray]) -> tf.compat.v1.GraphDef:
    return tf_graph.parse(tf_bert.graph_def(state))


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SyntheticSquad features as the QSL stages them: int64 [N, 384] ids, mask, segments (padding included)."""
    squad = SyntheticSquad(SAMPLES)
    samples = [squad.sample(i) for i in range(SAMPLES)]
    ids, mask, segments = (np.stack([sample[k] for sample in samples]) for k in range(3))
    assert ids.dtype == np.int64 and (mask == 0).any()
    return ids, mask, segments


def _best_spans(logits: np.ndarray, mask: np.ndarray, segments: np.ndarray) -> list[tuple[int, int]]:
    """Argmax start and argmax end over the valid (real, context) positions of each feature ([N, 384, 2])."""
    valid = (mask == 1) & (segments == 1)
    return [(int(np.argmax(np.where(v, s[:, 0], -np.inf))), int(np.argmax(np.where(v, s[:, 1], -np.inf))))
            for s, v in zip(logits, valid, strict=True)]


def test_interface_is_the_official_model_pb(graph: tf.compat.v1.GraphDef) -> None:
    assert sorted(tf_graph.placeholders(graph)) == sorted(tf_bert.INPUTS)
    nodes = {n.name: n for n in graph.node}
    for name in tf_bert.INPUTS:
        placeholder = nodes[name.split(":")[0]]
        assert tf.dtypes.as_dtype(placeholder.attr["dtype"].type) == tf.int32
        assert [d.size for d in placeholder.attr["shape"].shape.dim] == [-1, SEQ_LEN]
    assert tf_bert.OUTPUTS == ("logits:0",) and "logits" in nodes


def test_matches_onnx_runtime(onnx_path: Path, graph: tf.compat.v1.GraphDef,
                              batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    run = tf_graph.load(graph, list(tf_bert.INPUTS), list(tf_bert.OUTPUTS))
    (logits,) = run(batch)  # fed int64, cast to the placeholders' int32
    assert logits.shape == (SAMPLES, SEQ_LEN, 2) and logits.dtype == np.float32
    task = BertTask(OnnxRuntimeBackend(onnx_path, device="cpu", threads=2, outputs=BertTask.outputs, model="bert"))
    responses = task.infer(batch)  # [N, 768]: start and end interleaved, as the reference SUT sends them
    expected = responses.reshape(SAMPLES, SEQ_LEN, 2)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=FP32_ATOL)
    assert _best_spans(logits, batch[1], batch[2]) == _best_spans(expected, batch[1], batch[2])


def test_missing_key_is_named(state: dict[str, np.ndarray]) -> None:
    broken = dict(state)
    del broken["bert.encoder.layer.1.output.dense.bias"]
    with pytest.raises(ModelError, match="missing bert.encoder.layer.1.output.dense.bias") as err:
        tf_bert.graph_def(broken)
    assert "zenodo 3733896" in err.value.fix


def test_wrong_shape_is_named(state: dict[str, np.ndarray]) -> None:
    broken = dict(state, **{"qa_outputs.weight": np.zeros((3, 128), np.float32)})
    with pytest.raises(ModelError, match="wrong shape qa_outputs.weight"):
        tf_bert.graph_def(broken)


def test_reference_state_refuses_what_is_not_the_synthetic_bert(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    (garbage := tmp_path / "garbage.onnx").write_bytes(b"not an ONNX model")
    with pytest.raises(ModelError, match="garbage.onnx is not a readable ONNX model"):
        reference_state(garbage)
    weight = numpy_helper.from_array(np.zeros((4, 3, 7, 7), np.float32), "conv1.weight")
    x, y = (helper.make_tensor_value_info(name, TensorProto.FLOAT, [1]) for name in ("x", "y"))
    other = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "other", [x], [y],
                                                initializer=[weight]))
    onnx.save(other, foreign := tmp_path / "foreign.onnx")
    with pytest.raises(ModelError, match="unknown weight conv1.weight"):
        reference_state(foreign)
