"""ONNX Runtime's CUDA session never falls back to the CPU unsaid: the strict session's provider list is one
ONNX Runtime accepts, and its refusal of CPU nodes is recognised by ONNX Runtime's own words. Checked with the
real onnxruntime here (its CPU build: the CUDA provider places nothing, so every node would need the CPU)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from harness.backends.onnxruntime import CPU_NODES_REFUSED, OnnxRuntimeBackend, _CpuFallback, providers
from harness.models.families import build_synthetic


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ort") / "resnet50.onnx"
    build_synthetic("resnet50", path, "tiny", "fp32")
    return path


def test_the_strict_cuda_session_lists_the_cuda_provider_alone() -> None:
    assert providers("cuda:1", cpu_fallback=False) == [("CUDAExecutionProvider", {"device_id": 1})]
    assert providers("cuda") == [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    assert providers("cpu") == ["CPUExecutionProvider"]


def test_onnx_runtime_refuses_the_cpu_provider_beside_a_disabled_fallback(model) -> None:
    """Why the strict list has no CPU provider: ONNX Runtime refuses that configuration outright, in words
    that must not be taken for "part of the graph needs the CPU" (measured on the H200 with 1.31.1)."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    with pytest.raises(Exception) as refused:
        ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    assert "Conflicting session configuration" in str(refused.value)
    assert CPU_NODES_REFUSED not in str(refused.value)


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="a CUDA build of onnxruntime")
def test_nodes_the_cuda_provider_does_not_take_are_recognised_as_such(model) -> None:
    with pytest.raises(_CpuFallback) as fallback:
        OnnxRuntimeBackend._session(model, "cuda", 1, strict=True)
    assert CPU_NODES_REFUSED in str(fallback.value)
