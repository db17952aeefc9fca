"""fp16 ONNX models from the fp32 ones (harness.models.onnx_fp16): the same answers as fp32 within fp16's
rounding, fp32 feeds and results, the heavy operators' weights stored in fp16; run through the real
onnxruntime backend (its CPU provider here; the CUDA provider on the GPU machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from agreement import assert_same_spans
from onnx import TensorProto

from harness.backends.base import load_backend
from harness.datasets.imagenet import SyntheticImageNet
from harness.models.bert import BertTask
from harness.models.families import build_synthetic
from harness.models.resnet50 import ResNet50Task


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("fp16")
    out = {}
    for model in ("resnet50", "bert"):
        half = folder / f"{model}-tiny-seed0-fp16.onnx"
        build_synthetic(model, half, "tiny", "fp16")  # builds the fp32 file beside it first
        out[model] = (folder / f"{model}-tiny-seed0.onnx", half)
    return out


def _tasks(model: str, files, task):
    fp32, fp16 = files[model]
    return [task(load_backend("onnxruntime", f, device="cpu", threads=2, outputs=task.outputs, model=model))
            for f in (fp32, fp16)]


def test_the_fp16_file_keeps_fp32_feeds_and_results_and_stores_weights_in_fp16(files) -> None:
    for model in ("resnet50", "bert"):
        fp32, fp16 = (onnx.load(str(p)) for p in files[model])
        onnx.checker.check_model(fp16)
        assert [(i.name, i.type.tensor_type.elem_type) for i in fp16.graph.input] == [
            (i.name, i.type.tensor_type.elem_type) for i in fp32.graph.input]
        assert [(o.name, o.type.tensor_type.elem_type) for o in fp16.graph.output] == [
            (o.name, o.type.tensor_type.elem_type) for o in fp32.graph.output]
        heavy = {i for n in fp16.graph.node if n.op_type in ("Conv", "MatMul", "Gemm") for i in n.input}
        types = {t.name: t.data_type for t in fp16.graph.initializer if t.name in heavy}
        assert types and set(types.values()) == {TensorProto.FLOAT16}, model
        assert files[model][1].stat().st_size < 0.6 * files[model][0].stat().st_size


def test_resnet50_fp16_gives_the_fp32_classes(files) -> None:
    full, half = _tasks("resnet50", files, ResNet50Task)
    data = SyntheticImageNet(16)
    images = np.stack([data.sample(i) for i in range(16)])
    # fp16 rounding may flip a near tie between two classes; the synthetic network has none on these images.
    np.testing.assert_array_equal(half.infer(images), full.infer(images))


def test_bert_fp16_gives_the_fp32_spans(files) -> None:
    full, half = _tasks("bert", files, BertTask)
    # Measured: ~2.5e-4 on logits of ~0.5 (fp16 keeps 11 bits).
    assert_same_spans(full, half, atol=5e-3)
