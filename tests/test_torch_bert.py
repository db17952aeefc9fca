"""The project's PyTorch BERT runs the same network as the synthetic ONNX BERT and loads weights strictly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.errors import ModelError  # noqa: E402
from harness.models import torch_bert  # noqa: E402
from harness.models.synthetic_bert import build_bert_onnx  # noqa: E402

SEQ = 384
VOCAB = 30522
# Measured on the tiny model: max |ORT - torch| 2.7e-7 on logits of magnitude ~0.5 (fp32).
FP32_ATOL = 1e-5
# Measured: bf16 vs fp32 max |diff| ~4.4e-3 on logits of magnitude ~0.5; 8 mantissa bits, so a loose bound.
BF16_ATOL = 3e-2


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bert") / "b.onnx"
    build_bert_onnx(path, seed=0, variant="tiny")
    return path


@pytest.fixture(scope="module")
def state(onnx_path: Path) -> dict[str, torch.Tensor]:
    return torch_bert.state_dict_from_onnx(onnx_path)


@pytest.fixture(scope="module")
def features() -> dict[str, np.ndarray]:
    """Four features: seeded token ids, a random number of real tokens then padding, segment 0 then 1."""
    rng = np.random.default_rng(7)
    ids = rng.integers(0, VOCAB, (4, SEQ), dtype=np.int64)
    mask = np.zeros((4, SEQ), np.int64)
    segments = np.zeros((4, SEQ), np.int64)
    for i in range(4):
        real = int(rng.integers(32, SEQ + 1))
        question = int(rng.integers(8, real // 2))
        mask[i, :real] = 1
        segments[i, question:real] = 1
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


def _torch_logits(module: torch.nn.Module, f: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        start, end = module(*(torch.from_numpy(f[k]) for k in ("input_ids", "input_mask", "segment_ids")))
    return start.float().numpy(), end.float().numpy()


def _best_spans(start: np.ndarray, end: np.ndarray, f: dict[str, np.ndarray]) -> list[tuple[int, int]]:
    """Argmax start and argmax end over the valid (real, context) positions of each feature."""
    valid = (f["input_mask"] == 1) & (f["segment_ids"] == 1)
    return [(int(np.argmax(np.where(v, s, -np.inf))), int(np.argmax(np.where(v, e, -np.inf))))
            for s, e, v in zip(start, end, valid, strict=True)]


def test_matches_onnx_runtime(onnx_path: Path, state: dict[str, torch.Tensor],
                              features: dict[str, np.ndarray]) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ort_start, ort_end = session.run(None, features)
    start, end = _torch_logits(torch_bert.build_module(state), features)
    assert start.shape == end.shape == (4, SEQ) and start.dtype == np.float32
    np.testing.assert_allclose(start, ort_start, rtol=0, atol=FP32_ATOL)
    np.testing.assert_allclose(end, ort_end, rtol=0, atol=FP32_ATOL)
    assert _best_spans(start, end, features) == _best_spans(ort_start, ort_end, features)


def test_config_is_read_from_the_weights(state: dict[str, torch.Tensor]) -> None:
    module = torch_bert.build_module(state)
    assert len(module.bert.encoder.layer) == 2
    assert module.bert.encoder.layer[0].attention.self.heads == 2
    assert module.bert.encoder.layer[0].intermediate.dense.out_features == 512
    assert module.bert.embeddings.position_embeddings.num_embeddings == 512


def test_strict_loading_names_missing_and_unexpected_keys(state: dict[str, torch.Tensor]) -> None:
    broken = dict(state)
    del broken["bert.encoder.layer.1.output.dense.bias"]
    broken["cls.predictions.bias"] = torch.zeros(VOCAB)
    with pytest.raises(ModelError) as err:
        torch_bert.build_module(broken)
    assert "bert.encoder.layer.1.output.dense.bias" in err.value.message
    assert "cls.predictions.bias" in err.value.message
    assert "zenodo 3733896" in err.value.fix


def test_wrong_shape_is_refused(state: dict[str, torch.Tensor]) -> None:
    broken = dict(state, **{"qa_outputs.weight": torch.zeros(3, 128)})
    with pytest.raises(ModelError, match="wrong shape qa_outputs.weight"):
        torch_bert.build_module(broken)


def test_old_checkpoint_spelling_is_accepted(state: dict[str, torch.Tensor], features: dict[str, np.ndarray]) -> None:
    old = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
           for k, v in state.items()}
    assert any(k.endswith("LayerNorm.gamma") for k in old)
    old["bert.embeddings.position_ids"] = torch.arange(512).unsqueeze(0)
    old["bert.pooler.dense.weight"] = torch.zeros(128, 128)
    old["bert.pooler.dense.bias"] = torch.zeros(128)
    expected = _torch_logits(torch_bert.build_module(state), features)
    got = _torch_logits(torch_bert.build_module(old), features)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_bfloat16_is_close_to_float32(state: dict[str, torch.Tensor], features: dict[str, np.ndarray]) -> None:
    fp32 = _torch_logits(torch_bert.build_module(state), features)
    module = torch_bert.build_module(state).to(torch.bfloat16)
    with torch.inference_mode():
        start, _ = module(*(torch.from_numpy(features[k]) for k in ("input_ids", "input_mask", "segment_ids")))
    assert start.dtype == torch.bfloat16
    bf16 = _torch_logits(module, features)
    np.testing.assert_allclose(bf16[0], fp32[0], rtol=0, atol=BF16_ATOL)
    np.testing.assert_allclose(bf16[1], fp32[1], rtol=0, atol=BF16_ATOL)


def test_load_official_unwraps_and_refuses(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    wrapped = tmp_path / "model.pytorch"
    torch.save({"model": state}, wrapped)
    loaded = torch_bert.load_official(wrapped)
    assert set(loaded) == set(state)
    torch.save(state, plain := tmp_path / "plain.pytorch")
    assert set(torch_bert.load_official(plain)) == set(state)
    (bad := tmp_path / "bad.pytorch").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="bad.pytorch") as err:
        torch_bert.load_official(bad)
    assert "--model-source synthetic" in err.value.fix
    torch.save([1, 2], listed := tmp_path / "list.pytorch")
    with pytest.raises(ModelError, match="list.pytorch"):
        torch_bert.load_official(listed)
