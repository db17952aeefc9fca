"""Machine detection: the real backend probe in a child process, the real cache file, no mocks."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.detect import INFERENCE_ISA, Detection, detect
from harness.probe_backends import BACKENDS, installed_distribution

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "tensorflow", "onnxruntime", "numpy", "tvm")
HAS_NVIDIA = Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPERF_WIZARD_HOME", str(tmp_path))
    monkeypatch.delenv("MLPERF_WIZARD_RESULTS", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def probed_cache(tmp_path_factory) -> Path:
    """A real probe's cache file, made once for the module: the probe imports every installed framework."""
    root = tmp_path_factory.mktemp("probe-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLPERF_WIZARD_HOME", str(root))
        mp.delenv("MLPERF_WIZARD_RESULTS", raising=False)
        detect()
    return root / "cache" / "detect.json"


@pytest.fixture
def warm_home(home, probed_cache):
    """A home whose detection cache is already filled by the real probe."""
    (home / "cache").mkdir()
    shutil.copyfile(probed_cache, home / "cache" / "detect.json")
    return home


def _fresh_python(code: str, home: Path) -> dict:
    env = {**os.environ, "MLPERF_WIZARD_HOME": str(home)}
    env.pop("MLPERF_WIZARD_RESULTS", None)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_onnxruntime_found_with_cpu(home):
    d = detect(refresh=True)
    assert set(d.backends) == set(BACKENDS)
    ort = d.backends["onnxruntime"]
    assert ort.installed and ort.error is None
    assert ort.version == installed_distribution("onnxruntime")[1]
    assert "cpu" in ort.devices
    assert "CPUExecutionProvider" in ort.details["providers"]
    assert ort.install_command == "pip install onnxruntime"
    assert "onnxruntime-gpu" in ort.details["install_command_cuda"]
    assert d.backend_usable("onnxruntime", "cpu")
    if "cuda" not in ort.devices:  # the probe says why not, in its own words (the coverage shows them)
        assert "CUDAExecutionProvider" in ort.details["no_cuda_reason"]
    for name in ("pytorch",):
        info = d.backends[name]
        if info.installed and "cuda" not in info.devices:
            assert "torch" in info.details["no_cuda_reason"]
    assert not d.cached and d.probe_seconds > 0
    assert (home / "cache" / "detect.json").is_file()


def test_install_advice_only_for_devices_mlperf_wizard_implements(warm_home):
    """Issue 7 item 15: no advice to install what makes nothing runnable. Every backend is implemented now;
    TVM on the CPU only, so there is no advice for TVM on CUDA."""
    d = detect()
    assert d.backends["pytorch"].implemented == ["cpu", "cuda"]
    assert d.backends["tensorflow"].implemented == ["cpu", "cuda"]
    tvm = d.backends["tvm-onnx"]
    assert tvm.implemented == ["cpu"] and "install_command_cuda" not in tvm.details
    if importlib.util.find_spec("tvm") is None:
        assert tvm.install_command == "pip install 'mlperf-wizard[tvm]'"
    if importlib.util.find_spec("tensorflow") is None:
        assert d.backends["tensorflow"].install_command == "pip install 'mlperf-wizard[tf]'"


def test_second_call_is_cached_and_fast(home):
    first = detect()
    assert not first.cached
    start = time.perf_counter()
    second = detect()
    elapsed = time.perf_counter() - start
    assert second.cached
    assert second.probe_seconds == first.probe_seconds
    assert second.probed_at == first.probed_at
    assert second.backends == first.backends
    assert elapsed < 1.5
    assert not detect(refresh=True).cached


def test_corrupt_cache_is_ignored_and_rewritten(warm_home):
    cache = warm_home / "cache" / "detect.json"
    cache.write_text("{ half a file", encoding="utf-8")
    d = detect()
    assert not d.cached and d.backends["onnxruntime"].installed
    assert json.loads(cache.read_text(encoding="utf-8"))["backends"]["onnxruntime"]["installed"]
    assert detect().cached


def test_changed_environment_fingerprint_reprobes(warm_home):
    assert detect().cached
    cache = warm_home / "cache" / "detect.json"
    data = json.loads(cache.read_text(encoding="utf-8"))
    data["fingerprint"]["packages"]["onnxruntime"] = "0.0.1"  # as if onnxruntime were upgraded since
    cache.write_text(json.dumps(data), encoding="utf-8")
    assert not detect().cached
    assert detect().cached


def test_fresh_process_imports_no_framework(home):
    code = (
        "import json, sys, time\n"
        "t = time.perf_counter()\n"
        "from harness.detect import detect\n"
        "d = detect()\n"
        "elapsed = time.perf_counter() - t\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'cached': d.cached, 'elapsed': elapsed,\n"
        "                  'ort': d.backends['onnxruntime'].installed}))\n"
    )
    cold = _fresh_python(code, home)
    assert cold == {**cold, "heavy": [], "cached": False, "ort": True}
    warm = _fresh_python(code, home)
    assert warm["heavy"] == [] and warm["cached"]
    assert warm["elapsed"] < 1.5, f"warm detect() took {warm['elapsed']:.2f} s in a fresh process"


def test_import_alone_pulls_in_no_framework(home):
    code = (
        "import json, sys\nimport harness.detect\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    assert _fresh_python(code, home) == []


def test_gpus_listed_without_error(warm_home):
    d = detect()
    assert isinstance(d.gpus, list)
    if HAS_NVIDIA:
        for gpu in d.gpus:
            assert gpu.name and gpu.memory_total_mib > 0 and gpu.driver
    else:
        assert d.gpus == []
        assert not d.backend_usable("onnxruntime", "cuda")


def test_hardware_fields(warm_home, tmp_path):
    d = detect(disk_path=tmp_path / "not" / "yet" / "there")
    assert d.cpu.logical_cores >= 1 and 1 <= d.cpu.physical_cores <= d.cpu.logical_cores
    assert d.cpu.model and d.cpu.arch
    assert set(d.cpu.isa) <= set(INFERENCE_ISA)
    assert d.memory_total_bytes >= d.memory_available_bytes > 0
    assert d.disk_path == str(tmp_path) and d.disk_free_bytes > 0
    assert d.created_at and d.probed_at


def test_round_trip_through_json(warm_home):
    d = detect()
    assert Detection.from_dict(json.loads(json.dumps(d.to_dict()))) == d


def test_probe_module_prints_only_json():
    proc = subprocess.run(
        [sys.executable, "-m", "harness.probe_backends"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)) == set(BACKENDS)
    bad = subprocess.run(
        [sys.executable, "-m", "harness.probe_backends", "caffe"], cwd=REPO, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "caffe" in bad.stderr


def _stand_in_packages(root: Path, packages: dict[str, str]) -> Path:
    for name, source in packages.items():
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(source, encoding="utf-8")
    return root


def test_backend_that_fails_or_crashes_is_reported_not_fatal(home, tmp_path, monkeypatch):
    # Real packages on PYTHONPATH standing in for broken installs: one raises on import, one kills its
    # process (a native crash), one imports but fails the device query.
    stand_ins = _stand_in_packages(
        tmp_path / "site",
        {
            "tensorflow": "raise ImportError('libcudart.so.12: cannot open shared object file')\n",
            "torch": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
            "tvm": ("__version__ = '0.0-stand-in'\nclass runtime:\n    @staticmethod\n    def enabled(target):\n"
                    "        raise RuntimeError('no CUDA runtime')\n"),
        },
    )
    original = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(stand_ins), original) if p))
    d = detect(refresh=True)
    tf = d.backends["tensorflow"]
    assert tf.installed and tf.devices == [] and "libcudart" in tf.error
    torch = d.backends["pytorch"]
    assert torch.installed and torch.devices == [] and "signal 9" in torch.error
    tvm = d.backends["tvm-onnx"]
    assert tvm.installed and tvm.version == "0.0-stand-in" and tvm.devices == ["cpu"]
    assert "no CUDA runtime" in tvm.error
    assert d.backends["onnxruntime"].installed and d.backend_usable("onnxruntime", "cpu")
    if original is None:
        monkeypatch.delenv("PYTHONPATH")
    else:
        monkeypatch.setenv("PYTHONPATH", original)
    assert not detect().cached  # the stand-ins' probe is not reused once they are off the path
