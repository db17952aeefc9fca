"""The pytorch backend: the same seeded network as the ONNX stand-in, strict loading, no silent CPU fallback, and
real LoadGen runs through the CLI (CPU here; the CUDA tests need a GPU and skip without one)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.backends.base import load_backend  # noqa: E402
from harness.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from harness.datasets.imagenet import SyntheticImageNet  # noqa: E402
from harness.errors import CoverageError, ModelError  # noqa: E402
from harness.models import torch_resnet50  # noqa: E402
from harness.models.families import build_synthetic  # noqa: E402
from harness.models.resnet50 import ResNet50Task  # noqa: E402

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def tiny_resnet(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny synthetic ResNet50 as ONNX and as the .pt derived from it."""
    folder = tmp_path_factory.mktemp("resnet")
    build_synthetic("resnet50", folder / "r.pt", "tiny", "fp32")
    return folder / "r.onnx", folder / "r.pt"


def _classes(backend, images: np.ndarray) -> np.ndarray:
    return ResNet50Task(backend).infer(images).reshape(-1)


def test_pytorch_and_onnxruntime_give_the_same_classes(tiny_resnet) -> None:
    onnx_path, pt_path = tiny_resnet
    data = SyntheticImageNet(32)
    images = np.stack([data.sample(i) for i in range(32)])
    ort = OnnxRuntimeBackend(onnx_path, device="cpu", threads=2, outputs=ResNet50Task.outputs, model="resnet50")
    pt = load_backend("pytorch", pt_path, device="cpu", threads=2, outputs=ResNet50Task.outputs, model="resnet50")
    expected, got = _classes(ort, images), _classes(pt, images)
    assert len(set(expected.tolist())) > 3, "the stand-in should not give one class for every image"
    np.testing.assert_array_equal(got, expected)


def test_bf16_on_the_cpu_mostly_agrees(tiny_resnet) -> None:
    _, pt_path = tiny_resnet
    data = SyntheticImageNet(32)
    images = np.stack([data.sample(i) for i in range(32)])
    fp32 = load_backend("pytorch", pt_path, device="cpu", threads=2, outputs=ResNet50Task.outputs, model="resnet50")
    bf16 = load_backend("pytorch", pt_path, device="cpu", threads=2, outputs=ResNet50Task.outputs, model="resnet50",
                        precision="bf16")
    agree = float(np.mean(_classes(fp32, images) == _classes(bf16, images)))
    assert agree >= 0.75, agree  # bf16 keeps 8 bits of mantissa: near-ties between random logits may flip


def _torchvision_layout(classes: int = 1000) -> dict:
    """A state dict in torchvision's ResNet50 layout (as resnet50-19c8e357.pth has it), tiny widths."""
    module = torch_resnet50.ResNet50((1, 1, 1, 1), 8, classes)
    out = {}
    for key, value in module.state_dict().items():
        key = key.replace("conv1.bn_", "bn1.") if key.startswith("conv1.bn_") else key
        for i in (1, 2, 3):
            key = key.replace(f".conv{i}.bn_", f".bn{i}.").replace(f".conv{i}.conv.weight", f".conv{i}.weight")
        key = key.replace("downsample.conv.weight", "downsample.0.weight").replace("downsample.bn_", "downsample.1.")
        key = "conv1.weight" if key == "conv1.conv.weight" else key
        out[key] = torch.randn(value.shape) if key.endswith("weight") else value.clone()
    out["bn1.num_batches_tracked"] = torch.tensor(0)
    return out


def test_a_torchvision_layout_state_dict_loads_strictly() -> None:
    state = _torchvision_layout()
    module = torch_resnet50.build_module(state)
    assert module.background == 1  # 1000 classes: the module answers in the 1001-way ONNX convention
    (classes,) = module(torch.zeros(2, 3, 224, 224))
    assert ((classes >= 1) & (classes <= 1000)).all()


def test_missing_and_unexpected_keys_are_named() -> None:
    state = _torchvision_layout()
    del state["layer2.0.conv2.weight"]
    state["layer9.extra.weight"] = torch.zeros(1)
    with pytest.raises(ModelError) as caught:
        torch_resnet50.build_module(state)
    assert "layer2.0.conv2" in caught.value.message and "layer9.extra" in caught.value.message
    assert caught.value.fix


def test_an_official_file_that_is_not_a_state_dict_is_refused(tmp_path) -> None:
    bad = tmp_path / "resnet50-19c8e357.pth"
    bad.write_bytes(b"not a zip or a pickle")
    with pytest.raises(ModelError, match="not a PyTorch state dict"):
        torch_resnet50.load_official(bad)


@pytest.mark.skipif(CUDA, reason="this machine has a GPU: the refusal is for machines without one")
def test_cuda_without_a_gpu_stops_before_loadgen_instead_of_running_on_the_cpu(tiny_resnet) -> None:
    _, pt_path = tiny_resnet
    with pytest.raises(CoverageError, match="CUDA") as caught:
        load_backend("pytorch", pt_path, device="cuda", threads=2, outputs=ResNet50Task.outputs, model="resnet50")
    assert "--device cpu" in caught.value.fix


def test_fp16_on_the_cpu_is_refused_with_the_alternatives(tiny_resnet) -> None:
    _, pt_path = tiny_resnet
    with pytest.raises(CoverageError, match="fp16") as caught:
        load_backend("pytorch", pt_path, device="cpu", threads=2, outputs=ResNet50Task.outputs, model="resnet50",
                     precision="fp16")
    assert "bf16" in caught.value.fix


@pytest.mark.skipif(not CUDA, reason="no CUDA GPU on this machine (CI and the 2-core hosts have none)")
@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "bf16"])
def test_cuda_runs_on_the_gpu_and_agrees_with_the_cpu(tiny_resnet, precision) -> None:
    _, pt_path = tiny_resnet
    data = SyntheticImageNet(32)
    images = np.stack([data.sample(i) for i in range(32)])
    cpu = load_backend("pytorch", pt_path, device="cpu", threads=2, outputs=ResNet50Task.outputs, model="resnet50")
    gpu = load_backend("pytorch", pt_path, device="cuda", threads=2, outputs=ResNet50Task.outputs, model="resnet50",
                       precision=precision)
    assert next(gpu.module.parameters()).is_cuda
    agree = float(np.mean(_classes(cpu, images) == _classes(gpu, images)))
    assert agree >= (0.99 if precision == "fp32" else 0.75), agree


@pytest.mark.parametrize("model", ["resnet50", "retinanet", "bert"])
def test_a_loadgen_run_on_pytorch(cli, home, model) -> None:
    """Accuracy and performance through LoadGen on the CPU, with the PyTorch stand-in built from the ONNX one."""
    proc = cli("run", "--model", model, "--backend", "pytorch", "--device", "cpu", "--scenario", "Offline",
               "--mode", "both", "--style", "short", "--test-query-count", "8", "--dataset-size", "16",
               "--threads", "2", "--json", timeout=600)
    assert proc.returncode in (0, 3), proc.stdout[-2000:] + proc.stderr[-3000:]
    record = json.loads(proc.stdout)
    assert "-pytorch-cpu" in record["run_id"]
    tests = {t["mode"]: t for t in record["tests"]}
    assert tests["accuracy"]["accuracy"]["value"] is not None, tests["accuracy"]
    assert tests["performance"]["value"] > 0
    assert list(home.rglob(f"{model}-tiny-seed0.pt")), "the PyTorch stand-in should be cached"


@pytest.mark.parametrize("device", ["cpu", "cpu-channels-last", "cuda"])
def test_samples_staged_on_the_device_give_the_same_classes_as_host_arrays(tiny_resnet, device) -> None:
    """The QSL keeps the torch backend's samples as tensors on its device (cast once, channels-last on CUDA);
    a batch of them gives the classes a host numpy batch gives."""
    if device == "cuda" and not CUDA:
        pytest.skip("no CUDA GPU on this machine (CI and the 2-core hosts have none)")
    _, pt_path = tiny_resnet
    data = SyntheticImageNet(12)
    images = [data.sample(i) for i in range(12)]
    backend = load_backend("pytorch", pt_path, device=device.partition("-")[0], threads=2,
                           outputs=ResNet50Task.outputs, model="resnet50", precision="fp32")
    if device == "cpu-channels-last":  # the CUDA layout, on the CPU: CI checks the code the GPU runs
        backend.channels_last = True
        backend.module = backend.module.to(memory_format=torch.channels_last)
    device = device.partition("-")[0]
    staging = backend.staging()
    staged = [staging.stage(image) for image in images]
    assert all(isinstance(s, torch.Tensor) and s.device.type == device for s in staged)
    batch = staging.batch(staged)
    assert batch.shape == (12, *images[0].shape)
    if backend.channels_last:
        assert batch.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_array_equal(_classes(backend, batch), _classes(backend, np.stack(images)))
    one = staging.batch(staged[:1])
    np.testing.assert_array_equal(_classes(backend, one), _classes(backend, np.stack(images[:1])))


@pytest.mark.parametrize("layout", ["contiguous", "channels-last"])
def test_a_compiled_module_agrees_with_eager_and_pads_a_short_batch(tiny_resnet, tmp_path, monkeypatch,
                                                                   layout) -> None:
    """torch.compile (default mode) on the CPU: the classes of eager mode; the first batch fixes the shape, a
    shorter one is padded and cut back without a recompile, also in the channels-last layout of CUDA runs
    (a padded batch in another memory format recompiled mid-run on the H200); the compiled kernels go to
    the cache folder."""
    monkeypatch.setenv("MLPERF_WIZARD_HOME", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    _, pt_path = tiny_resnet
    data = SyntheticImageNet(8)
    images = np.stack([data.sample(i) for i in range(8)])
    eager = load_backend("pytorch", pt_path, device="cpu", threads=2, outputs=ResNet50Task.outputs,
                         model="resnet50")
    compiled = load_backend("pytorch", pt_path, device="cpu", threads=2, outputs=ResNet50Task.outputs,
                            model="resnet50", compile_mode="default")
    if layout == "channels-last":  # the CUDA layout, on the CPU (the compile happens at the first call)
        compiled.channels_last = True
        compiled.module.to(memory_format=torch.channels_last)
    assert "torch.compile (default)" in compiled.warmup_text and str(tmp_path) in compiled.warmup_text
    expected = _classes(eager, images)
    np.testing.assert_array_equal(_classes(compiled, images), expected)
    assert compiled.fixed_batch == 8
    with torch._dynamo.config.patch(error_on_recompile=True):
        short = _classes(compiled, images[:5])
    assert short.shape == (5,)
    np.testing.assert_array_equal(short, expected[:5])
    cache = tmp_path / "cache" / "torch-compile"
    assert any(p.is_file() for p in cache.rglob("*")), "the compiled kernels should be cached"


def test_compile_is_refused_for_a_backend_without_a_compile_step() -> None:
    """Refused when the plan is made (a form may pass through the combination while the user picks); the
    guidance turns it off when the backend changes."""
    from harness.guidance import nearest_runnable
    from harness.plan import make_plan
    from harness.profile import make_profile

    profile = make_profile({"backend": "onnxruntime", "compile": "max-autotune", "model_source": "synthetic",
                            "dataset_source": "synthetic"})
    with pytest.raises(CoverageError) as caught:
        make_plan(profile)
    assert "onnxruntime" in str(caught.value) and "--backend pytorch" in caught.value.fix
    assert nearest_runnable(profile).compile == "off"
    assert make_profile({"backend": "pytorch", "compile": "on"}).compile == "default"


@pytest.mark.skipif(not CUDA, reason="no CUDA GPU on this machine (CI and the 2-core hosts have none)")
@pytest.mark.parametrize("compile_mode", ["off", "default"])
def test_a_loadgen_run_on_cuda(cli, home, compile_mode) -> None:
    """Offline accuracy and performance on the GPU in fp16 through LoadGen: samples staged on the GPU, two SUT
    worker threads sharing the (compiled) module, the run recorded as a cuda run."""
    proc = cli("run", "--model", "resnet50", "--backend", "pytorch", "--device", "cuda", "--precision", "fp16",
               "--compile", compile_mode, "--scenario", "Offline", "--mode", "both", "--style", "short",
               "--test-query-count", "512", "--dataset-size", "64", "--batch-size", "32", "--json", timeout=900)
    assert proc.returncode in (0, 3), proc.stdout[-2000:] + proc.stderr[-3000:]
    record = json.loads(proc.stdout)
    assert "-pytorch-cuda" in record["run_id"]
    tests = {t["mode"]: t for t in record["tests"]}
    assert tests["accuracy"]["accuracy"]["value"] is not None, tests["accuracy"]
    assert tests["performance"]["value"] > 0
