"""The synthetic BERT-large (fp32 and int8) built with onnx.helper, run through real onnxruntime sessions and
the harness's ONNX Runtime backend."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from harness.backends.onnxruntime import OnnxRuntimeBackend
from harness.datasets.squad import SyntheticSquad
from harness.errors import ModelError
from harness.models.bert import IO, BertTask
from harness.models.synthetic_bert import (
    CONFIGS,
    FP32_INPUTS,
    INT8_INPUTS,
    OUTPUTS,
    BuildInfo,
    build_bert_onnx,
    parameter_count,
    quantize_int8,
)

# BertModel (BERT-large uncased) has 335,141,888 parameters, its pooler (1024 x 1024 + 1024) included;
# BertForQuestionAnswering does not use the pooler (an ONNX export drops it) and adds qa_outputs (1024 x 2 + 2).
BERT_LARGE_QA_PARAMETERS = 335_141_888 - (1024 * 1024 + 1024) + (1024 * 2 + 2)


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic SQuAD features stacked as the SUT stacks them."""
    data = SyntheticSquad(n, seed=seed)
    samples = [data.sample(i) for i in range(n)]
    return tuple(np.stack([s[k] for s in samples]) for k in range(3))


def run(sess: ort.InferenceSession, inputs: tuple[np.ndarray, ...], names=FP32_INPUTS) -> tuple[np.ndarray, ...]:
    return tuple(sess.run(list(OUTPUTS), dict(zip(names, inputs, strict=True))))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> BuildInfo:
    return build_bert_onnx(tmp_path_factory.mktemp("tiny") / "bert-tiny.onnx", variant="tiny")


@pytest.fixture(scope="module")
def tiny_int8(tiny: BuildInfo, tmp_path_factory: pytest.TempPathFactory) -> BuildInfo:
    return quantize_int8(tiny.path, tmp_path_factory.mktemp("int8") / "bert-tiny-int8.onnx")


def io_signature(path: Path) -> tuple[list, list]:
    sess = session(path)
    return ([(i.name, i.type, i.shape) for i in sess.get_inputs()],
            [(o.name, o.type, o.shape) for o in sess.get_outputs()])


class TestFp32:
    def test_official_io_signature(self, tiny: BuildInfo):
        inputs, outputs = io_signature(tiny.path)
        assert inputs == [(name, "tensor(int64)", ["batch_size", 384]) for name in FP32_INPUTS]
        assert outputs == [(name, "tensor(float)", ["batch_size", 384]) for name in OUTPUTS]

    def test_runs_and_gives_logits_per_token(self, tiny: BuildInfo):
        start, end = run(session(tiny.path), batch(3))
        for logits in (start, end):
            assert logits.shape == (3, 384) and logits.dtype == np.float32
            assert np.isfinite(logits).all()
            assert logits.std() > 0.01  # not a constant

    def test_architecture(self, tiny: BuildInfo):
        model = onnx.load(tiny.path)
        ops = Counter(n.op_type for n in model.graph.node)
        layers = CONFIGS["tiny"].layers
        assert ops["LayerNormalization"] == 2 * layers + 1  # embeddings + 2 per layer
        assert ops["Softmax"] == layers
        assert ops["Erf"] == layers  # exact GELU
        assert ops["Gather"] == 3  # word, position, token type embeddings
        assert {o.version for o in model.opset_import} == {17}
        assert tiny.parameters == parameter_count(CONFIGS["tiny"])
        shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
        assert shapes["bert.embeddings.word_embeddings.weight"] == (30522, 128)
        assert shapes["bert.embeddings.position_embeddings.weight"] == (512, 128)
        assert shapes["bert.embeddings.token_type_embeddings.weight"] == (2, 128)
        assert shapes["bert.encoder.layer.1.intermediate.dense.weight"] == (128, 512)
        assert shapes["qa_outputs.weight"] == (128, 2)

    def test_full_config_is_bert_large(self):
        cfg = CONFIGS["full"]
        assert (cfg.layers, cfg.hidden, cfg.heads, cfg.intermediate) == (24, 1024, 16, 4096)
        assert (cfg.vocab, cfg.max_positions, cfg.type_vocab) == (30522, 512, 2)
        assert parameter_count(cfg) == BERT_LARGE_QA_PARAMETERS

    def test_padding_is_masked(self, tiny: BuildInfo):
        """Keys where input_mask is 0 get -10000: what sits in the padding cannot change real tokens' logits."""
        ids, mask, segments = batch(1)
        n = int(mask.sum())
        other = ids.copy()
        other[0, n:] = np.arange(384 - n) + 2000
        sess = session(tiny.path)
        a, b = run(sess, (ids, mask, segments))[0], run(sess, (other, mask, segments))[0]
        np.testing.assert_allclose(a[0, :n], b[0, :n], rtol=0, atol=1e-5)
        assert not np.allclose(a[0, n:], b[0, n:])
        # While unmasking the same tokens does change them.
        c = run(sess, (other, np.ones_like(mask), segments))[0]
        assert not np.allclose(a[0, :n], c[0, :n], atol=1e-3)

    def test_segment_ids_are_used(self, tiny: BuildInfo):
        ids, mask, segments = batch(1)
        sess = session(tiny.path)
        assert not np.allclose(run(sess, (ids, mask, segments))[0], run(sess, (ids, mask, 1 - segments))[0])

    def test_batch_rows_are_independent(self, tiny: BuildInfo):
        inputs = batch(4)
        sess = session(tiny.path)
        together = run(sess, inputs)[0]
        alone = run(sess, tuple(x[2:3] for x in inputs))[0]
        np.testing.assert_allclose(together[2:3], alone, rtol=1e-4, atol=1e-5)

    def test_same_seed_is_byte_identical(self, tiny: BuildInfo, tmp_path: Path):
        again = build_bert_onnx(tmp_path / "again.onnx", variant="tiny")
        assert again.path.read_bytes() == tiny.path.read_bytes()
        assert again.md5 == tiny.md5 == hashlib.md5(tiny.path.read_bytes()).hexdigest()
        assert again.size_bytes == tiny.path.stat().st_size
        other = build_bert_onnx(tmp_path / "other.onnx", variant="tiny", seed=1)
        assert other.md5 != tiny.md5

    def test_atomic_write_leaves_only_the_model(self, tmp_path: Path):
        build_bert_onnx(tmp_path / "m.onnx", variant="tiny", precision="int8")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.integrity.json"]

    def test_unwritable_destination_is_a_model_error(self, tmp_path: Path):
        blocker = tmp_path / "file"
        blocker.write_text("not a folder")
        for precision in ("fp32", "int8"):
            with pytest.raises(ModelError, match="Could not write"):
                build_bert_onnx(blocker / "m.onnx", variant="tiny", precision=precision)

    def test_bad_arguments(self, tmp_path: Path):
        with pytest.raises(ValueError, match="variant"):
            build_bert_onnx(tmp_path / "m.onnx", variant="base")
        with pytest.raises(ValueError, match="precision"):
            build_bert_onnx(tmp_path / "m.onnx", variant="tiny", precision="fp16")


class TestInt8:
    def test_official_int8_io_signature(self, tiny_int8: BuildInfo):
        inputs, outputs = io_signature(tiny_int8.path)
        assert inputs == [(name, "tensor(int64)", ["batch_size", 384]) for name in INT8_INPUTS]
        assert outputs == [(name, "tensor(float)", ["batch_size", 384]) for name in OUTPUTS]

    def test_weights_are_int8(self, tiny_int8: BuildInfo, tiny: BuildInfo):
        model = onnx.load(tiny_int8.path)
        ops = Counter(n.op_type for n in model.graph.node)
        assert ops["MatMulInteger"] + ops["DynamicQuantizeMatMul"] >= 6 * CONFIGS["tiny"].layers
        by_type = Counter()
        for t in model.graph.initializer:
            by_type[t.data_type] += int(np.prod(t.dims))
        # MatMul weights are QInt8; ORT stores the quantized embedding tables as uint8.
        assert by_type[onnx.TensorProto.INT8] >= 6 * 128 * 128 * CONFIGS["tiny"].layers
        assert by_type[onnx.TensorProto.INT8] + by_type[onnx.TensorProto.UINT8] > 0.99 * tiny.parameters
        assert tiny_int8.size_bytes < tiny.size_bytes / 3
        assert (tiny_int8.variant, tiny_int8.seed, tiny_int8.precision) == ("tiny", 0, "int8")

    def test_outputs_close_to_fp32(self, tiny: BuildInfo, tiny_int8: BuildInfo):
        inputs = batch(4)
        fp32 = np.stack(run(session(tiny.path), inputs))
        int8 = np.stack(run(session(tiny_int8.path), inputs, INT8_INPUTS))
        assert np.isfinite(int8).all()
        assert np.corrcoef(fp32.ravel(), int8.ravel())[0, 1] > 0.95
        assert np.abs(fp32 - int8).max() < 0.5 * np.abs(fp32).max()

    def test_deterministic(self, tiny: BuildInfo, tiny_int8: BuildInfo, tmp_path: Path):
        assert quantize_int8(tiny.path, tmp_path / "again.onnx").md5 == tiny_int8.md5
        built = build_bert_onnx(tmp_path / "built.onnx", variant="tiny", precision="int8")
        assert built.md5 == tiny_int8.md5


class TestTask:
    @pytest.mark.parametrize("which", ["fp32", "int8"])
    def test_responses_interleave_start_and_end(self, which: str, tiny: BuildInfo, tiny_int8: BuildInfo):
        info = tiny if which == "fp32" else tiny_int8
        backend = OnnxRuntimeBackend(info.path, device="cpu", threads=2, outputs=BertTask.outputs, model="bert")
        task = BertTask(backend)
        file_names = FP32_INPUTS if which == "fp32" else INT8_INPUTS
        assert [file for _, file in backend.inputs] == list(file_names)
        inputs = batch(3)
        responses = task.infer(inputs)
        assert responses.shape == (3, 768) and responses.dtype == np.float32
        start, end = run(session(info.path), inputs, file_names)
        # The reference SUT's encoding: np.stack([start, end], axis=-1), i.e. [384, 2] per sample.
        np.testing.assert_array_equal(responses.reshape(3, 384, 2), np.stack([start, end], axis=-1))
        assert task.response_width == 768

    def test_the_official_name_sets_are_recognised_in_any_order(self):
        names = IO.names_in("onnx", ["segment_ids", "input_ids", "input_mask"], OUTPUTS, "model.onnx")
        assert [names[n] for n in IO.inputs] == list(FP32_INPUTS)
        names = IO.names_in("onnx", ["input_ids", "attention_mask", "token_type_ids"], OUTPUTS, "q.onnx")
        assert [names[n] for n in IO.inputs] == list(INT8_INPUTS)
        with pytest.raises(ModelError, match="input_ids:0") as caught:
            IO.names_in("onnx", ["input_ids:0", "input_mask:0", "segment_ids:0"], OUTPUTS, "tf.onnx")
        assert "fp32 model.onnx" in caught.value.message and "int8" in caught.value.message


@pytest.mark.slow
def test_full_model(tmp_path: Path):
    """BERT-large at full size: parameter count, file size, I/O and one batch in ONNX Runtime."""
    info = build_bert_onnx(tmp_path / "bert.onnx", variant="full")
    assert info.parameters == BERT_LARGE_QA_PARAMETERS
    assert 1.30e9 < info.size_bytes < 1.40e9
    inputs, outputs = io_signature(info.path)
    assert [i[0] for i in inputs] == list(FP32_INPUTS) and [o[0] for o in outputs] == list(OUTPUTS)
    start, end = run(session(info.path), batch(1))
    assert start.shape == end.shape == (1, 384) and np.isfinite(start).all()
    int8 = quantize_int8(info.path, tmp_path / "bert-int8.onnx")
    assert int8.size_bytes < info.size_bytes / 3
    start8, _ = run(session(int8.path), batch(1), INT8_INPUTS)
    assert np.corrcoef(start.ravel(), start8.ravel())[0, 1] > 0.9
