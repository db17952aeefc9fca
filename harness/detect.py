"""What this machine has: CPU, memory, disk, NVIDIA GPUs, and which backends run on which device.

Hardware is read fresh on every call (it is cheap). Backends are probed in child processes
(``python -m harness.probe_backends``), because importing torch, TensorFlow, TVM or ONNX Runtime into
the caller (the TUI) is slow and noisy; the probe result is cached in ``<cache>/detect.json`` under a
fingerprint of the Python environment and the GPU driver, and reused until that fingerprint changes.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import psutil

from . import catalogue
from .coverage_table import implemented_devices
from .errors import ResultsError
from .fsutil import atomic_write_json
from .paths import locations
from .probe_backends import BACKENDS, MODULES, installed_distribution

CACHE_FILE = "detect.json"
CACHE_SCHEMA = 3
"""Bump when the probe's output changes meaning: old caches are then re-probed (3: details.no_cuda_reason)."""

PROBE_TIMEOUT_S = 180.0
"""A framework import that takes longer than this is reported as a probe error, not waited for."""

INSTALL_COMMANDS = {name: b.install["cpu"] for name, b in catalogue.BY_NAME.items()}
"""What to run when a backend is not installed here (the CPU flavour), from harness.catalogue."""

INFERENCE_ISA = (
    # x86
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
    "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
    # Arm
    "asimd", "neon", "sve", "sve2", "bf16", "i8mm",
)  # fmt: skip
"""CPU flags that change which kernels the inference runtimes can use."""

_ARM_IMPLEMENTERS = {
    "0x41": "ARM", "0x42": "Broadcom", "0x43": "Cavium", "0x46": "Fujitsu", "0x48": "HiSilicon",
    "0x4e": "NVIDIA", "0x51": "Qualcomm", "0x61": "Apple", "0xc0": "Ampere",
}  # fmt: skip

_CACHED_PACKAGES = tuple(d for b in catalogue.BACKENDS for d in b.distributions)
"""The distributions whose versions key the probe cache: a change to any of them means a new probe."""


def install_command(backend: str, device: str = "cpu", current_distribution: str | None = None) -> str | None:
    """The command that makes ``backend`` usable on ``device``; None where pip cannot do it.

    ``current_distribution`` is the pip distribution providing the backend now, if any (for
    onnxruntime: a CPU build must be removed before the GPU build goes in).
    """
    descriptor = catalogue.BY_NAME.get(backend)
    return descriptor.install_command(device, current_distribution) if descriptor else None


@dataclass
class CpuInfo:
    model: str = "unknown"
    vendor: str = "unknown"
    arch: str = ""
    physical_cores: int = 1
    logical_cores: int = 1
    isa: list[str] = field(default_factory=list)
    """Only the flags in INFERENCE_ISA that this CPU has, in that order."""
    affinity_cores: int | None = None
    """Logical cores this process may run on (taskset, Slurm, cgroups); None where unknown."""


@dataclass
class GpuInfo:
    index: int = 0
    name: str = ""
    memory_total_mib: int = 0
    driver: str = ""
    cuda_driver_version: str | None = None
    """The newest CUDA version the driver supports, e.g. '12.4'."""


@dataclass
class BackendInfo:
    name: str
    installed: bool = False
    version: str | None = None
    devices: list[str] = field(default_factory=list)
    """Devices the backend can run on here: 'cpu', 'cuda'."""
    details: dict = field(default_factory=dict)
    error: str | None = None
    """Why the import or the device query failed, if it did."""
    install_command: str = ""
    """What to run to install it (CPU flavour); see details['install_command_cuda'] for CUDA. Empty where
    mlperf-wizard does not implement the backend on the CPU: installing it would make nothing runnable."""
    implemented: list[str] = field(default_factory=list)
    """The devices on which mlperf-wizard implements this backend (from the coverage table)."""

    @property
    def advice(self) -> str:
        """What is true to tell a user about this backend when it is not usable here, in one line."""
        if not self.implemented:
            return "not implemented in mlperf-wizard yet"
        if not self.installed:
            return f"not installed: {self.install_command}" if self.install_command else "not installed"
        return self.error or ""


@dataclass
class Detection:
    cpu: CpuInfo = field(default_factory=CpuInfo)
    memory_total_bytes: int = 0
    memory_available_bytes: int = 0
    disk_free_bytes: int = 0
    disk_path: str = ""
    gpus: list[GpuInfo] = field(default_factory=list)
    backends: dict[str, BackendInfo] = field(default_factory=dict)
    probe_seconds: float = 0.0
    """How long the backend probe took (the original probe's time when the result came from cache)."""
    cached: bool = False
    created_at: str = ""
    """When this detection was made (hardware is read fresh every time)."""
    probed_at: str = ""
    """When the backends were probed (earlier than created_at when the probe came from cache)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Detection:
        """Rebuild a detection; missing keys take their defaults, so a partial dict describes a machine."""
        d = dict(d)
        cpu = _build(CpuInfo, d.pop("cpu", None) or {})
        gpus = [_build(GpuInfo, g) for g in d.pop("gpus", None) or []]
        # What mlperf-wizard implements and the install advice are derived here, never read back.
        backends = {name: _backend_info(name, info) for name, info in (d.pop("backends", None) or {}).items()}
        return _build(cls, {**d, "cpu": cpu, "gpus": gpus, "backends": backends})

    def backend_usable(self, backend: str, device: str) -> bool:
        """True when ``backend`` is installed, imports, and can run on ``device`` here."""
        info = self.backends.get(backend)
        if info is None or not info.installed or device not in info.devices:
            return False
        if device == "cuda":
            # ONNX Runtime lists the CUDA provider whenever the build has it, GPU or not.
            return bool(self.gpus) or int(info.details.get("cuda_device_count") or 0) > 0
        return True


def _build(cls, d: dict):
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in known})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_cpu() -> CpuInfo:
    """CPU model, vendor, cores and the ISA flags that matter for inference."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                key = key.strip().lower()
                # The first processor's block is enough; some Arm kernels put 'Hardware' at the end.
                if sep and key not in info:
                    info[key] = value.strip()
    except OSError:
        pass
    arch = platform.machine() or ""
    flags = set((info.get("flags") or info.get("features") or "").split())
    vendor = info.get("vendor_id") or _ARM_IMPLEMENTERS.get(info.get("cpu implementer", "").lower(), "")
    model = info.get("model name") or info.get("hardware") or info.get("cpu model") or platform.processor()
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return CpuInfo(
        model=model or arch or "unknown",
        vendor=vendor or "unknown",
        arch=arch,
        physical_cores=int(physical),
        logical_cores=int(logical),
        isa=[f for f in INFERENCE_ISA if f in flags],
        affinity_cores=affinity,
    )


def read_gpus() -> tuple[list[GpuInfo], str | None]:
    """NVIDIA GPUs through NVML, and the driver version; ([], None) when NVML is absent or fails."""
    try:
        import pynvml
    except ImportError:
        return [], None
    try:
        pynvml.nvmlInit()
    except Exception:  # no library, no driver, no device: a machine without NVIDIA GPUs
        return [], None
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        try:
            cuda_int = int(pynvml.nvmlSystemGetCudaDriverVersion())
            cuda = f"{cuda_int // 1000}.{(cuda_int % 1000) // 10}"
        except Exception:
            cuda = None
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                name = _text(pynvml.nvmlDeviceGetName(handle))
                mem = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // (1024 * 1024)
            except Exception:  # a GPU NVML cannot talk to (lost, MIG-misconfigured): list what we can
                name, mem = "unavailable", 0
            gpus.append(
                GpuInfo(index=i, name=name, memory_total_mib=mem, driver=driver, cuda_driver_version=cuda)
            )
        return gpus, driver
    except Exception:
        return [], None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _disk_free(disk_path: Path | None) -> tuple[int, str]:
    path = Path(disk_path) if disk_path is not None else locations().results
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return int(psutil.disk_usage(str(path)).free), str(path)
    except OSError:
        return 0, str(path)


def fingerprint(gpus: list[GpuInfo], nvml_driver: str | None) -> dict:
    """What the probe result depends on; read without importing any framework."""
    packages = {}
    for dist in _CACHED_PACKAGES:
        try:
            packages[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            packages[dist] = None
    modules = {}
    for backend, module in MODULES.items():
        # Catches source builds (TVM often is one) that pip's metadata does not list.
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        modules[backend] = (
            None if spec is None else str(spec.origin or list(spec.submodule_search_locations or []))
        )
    return {
        "schema": CACHE_SCHEMA,
        "python": sys.executable,
        "python_version": sys.version,
        "packages": packages,
        "modules": modules,
        "nvml_driver": nvml_driver,
        "gpus": [g.name for g in gpus],
        # A home folder shared by cluster nodes must not hand one node's probe to another.
        "host": socket.gethostname(),
        # The probe's child inherits these; they change what it imports and which GPUs it sees.
        "pythonpath": os.environ.get("PYTHONPATH"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def _probe_one(backend: str) -> dict:
    """Run the probe for one backend in its own process, so a crash or a hang costs only that backend."""
    package_root = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "harness.probe_backends", backend],
            # cwd is the folder holding harness/: `-m` puts it first on sys.path, and nothing there
            # shadows a framework (a `torch/` checkout in the user's cwd would).
            cwd=package_root,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        failure = _probe_failure(backend, f"the probe did not finish within {PROBE_TIMEOUT_S:.0f} s")
        failure["details"]["probe_timed_out"] = True  # maybe a cold disk: not cached, tried again next time
        return failure
    except OSError as exc:
        return _probe_failure(backend, f"could not start the probe: {exc}")
    try:
        return json.loads(proc.stdout)[backend]
    except (ValueError, KeyError, TypeError):
        tail = (proc.stderr or "").strip().splitlines()[-5:]
        how = f"exit code {proc.returncode}" if proc.returncode >= 0 else f"signal {-proc.returncode}"
        return _probe_failure(backend, f"the probe process failed ({how}): " + " | ".join(tail))


def _probe_failure(backend: str, error: str) -> dict:
    dist, version = installed_distribution(backend)
    return {
        "installed": True,
        "version": version,
        "devices": [],
        "details": {"distribution": dist},
        "error": error,
    }


def probe_backends() -> tuple[dict[str, dict], float]:
    """Probe every backend (in parallel child processes); return the raw results and the seconds taken."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(BACKENDS)) as pool:
        results = dict(zip(BACKENDS, pool.map(_probe_one, BACKENDS), strict=True))
    return results, time.perf_counter() - start


def _backend_info(name: str, raw: dict) -> BackendInfo:
    info = _build(BackendInfo, {**raw, "name": name})
    info.implemented = implemented_devices(name)
    info.install_command = INSTALL_COMMANDS.get(name, "") if "cpu" in info.implemented else ""
    cuda_cmd = install_command(name, "cuda", info.details.get("distribution")) if "cuda" in info.implemented else None
    if cuda_cmd and cuda_cmd != info.install_command:
        info.details["install_command_cuda"] = cuda_cmd
    return info


def _read_cache(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("backends"), dict):
        return None
    backends = data["backends"]
    if set(backends) != set(BACKENDS):
        return None
    for raw in backends.values():
        if not (
            isinstance(raw, dict)
            and isinstance(raw.get("installed"), bool)
            and isinstance(raw.get("devices"), list)
            and isinstance(raw.get("details"), dict)
        ):
            return None
    return data


def detect(refresh: bool = False, disk_path: Path | None = None) -> Detection:
    """Describe this machine. ``refresh=True`` re-probes the backends instead of using the cache."""
    gpus, driver = read_gpus()
    fp = fingerprint(gpus, driver)
    cache_path = locations().cache / CACHE_FILE
    cache = None if refresh else _read_cache(cache_path)
    if cache is not None and cache.get("fingerprint") == fp:
        raw, cached = cache["backends"], True
        seconds = cache.get("probe_seconds")
        seconds = float(seconds) if isinstance(seconds, int | float) else 0.0
        probed_at = str(cache.get("probed_at", ""))
    else:
        raw, seconds = probe_backends()
        probed_at, cached = _now(), False
        payload = {
            "fingerprint": fp,
            "probe_seconds": seconds,
            "probed_at": probed_at,
            "backends": raw,
        }
        if not any(r["details"].get("probe_timed_out") for r in raw.values()):
            try:
                atomic_write_json(cache_path, payload)
            except ResultsError:
                pass  # an unwritable cache costs a re-probe next time, not the detection
    mem = psutil.virtual_memory()
    free, disk = _disk_free(disk_path)
    return Detection(
        cpu=read_cpu(),
        memory_total_bytes=int(mem.total),
        memory_available_bytes=int(mem.available),
        disk_free_bytes=free,
        disk_path=disk,
        gpus=gpus,
        backends={name: _backend_info(name, raw[name]) for name in BACKENDS},
        probe_seconds=seconds,
        cached=cached,
        created_at=_now(),
        probed_at=probed_at,
    )
