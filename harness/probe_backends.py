"""Probe which inference backends are installed and on which devices they can run.

Run as ``python -m harness.probe_backends [NAME ...]``: it prints one JSON object, keyed by backend
name, on stdout. Heavy frameworks are imported here, in a child process, never in the process that
asked (the TUI): TensorFlow writes to the C-level stderr on import and torch takes seconds to load.
Everything native libraries print while loading is sent to stderr so that stdout carries only the JSON.

This module imports nothing from outside the standard library at module level (harness.catalogue is
standard library only).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import sys
from collections.abc import Callable

from .catalogue import BY_NAME, NAMES

BACKENDS = NAMES
"""Backend names, spelled as the profile and the coverage table spell them (from harness.catalogue)."""

MODULES = {name: b.module for name, b in BY_NAME.items()}
"""The top-level Python module each backend imports."""

DISTRIBUTIONS = {name: b.distributions for name, b in BY_NAME.items()}
"""The pip distributions that provide each backend's module (read without importing it)."""

_MAX_ERROR_CHARS = 2000


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


NO_CUDA = "no_cuda_reason"
"""The details key of a device query's answer to "why not CUDA?", when it lists no cuda device: the coverage
shows it as the reason, so no other module needs to know each backend's ways."""


def installed_distribution(backend: str) -> tuple[str | None, str | None]:
    """(distribution name, version) of the first installed pip distribution providing ``backend``."""
    for dist in DISTRIBUTIONS[backend]:
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None, None


def _onnxruntime(mod) -> tuple[list[str], dict]:
    providers = list(mod.get_available_providers())
    devices = ["cpu"]
    if "CUDAExecutionProvider" in providers:
        devices.append("cuda")
    details = {
        "providers": providers,
        "tensorrt": "TensorrtExecutionProvider" in providers,
        # Providers are what the build contains; the CUDA one still needs the CUDA libraries and a GPU.
        "cuda_provider_built": "CUDAExecutionProvider" in providers,
    }
    if "cuda" not in devices:
        details[NO_CUDA] = (f"this onnxruntime build has no CUDAExecutionProvider (providers: "
                            f"{', '.join(providers) or 'none'})")
    return devices, details


def _pytorch(mod) -> tuple[list[str], dict]:
    details: dict = {"cuda_build": getattr(mod.version, "cuda", None)}
    devices = ["cpu"]
    if mod.cuda.is_available():
        count = mod.cuda.device_count()
        details["cuda_device_count"] = count
        details["cuda_device_names"] = [mod.cuda.get_device_name(i) for i in range(count)]
        if count:
            devices.append("cuda")
    else:
        details["cuda_device_count"] = 0
    if "cuda" not in devices:
        details[NO_CUDA] = ("this torch build has no CUDA support (a CPU-only wheel)" if details["cuda_build"] is None
                            else "torch.cuda.is_available() is False (driver too old for this torch's CUDA build?)")
    return devices, details


def _tensorflow(mod) -> tuple[list[str], dict]:
    gpus = mod.config.list_physical_devices("GPU")
    details = {
        "built_with_cuda": bool(mod.test.is_built_with_cuda()),
        "cuda_device_count": len(gpus),
        "cuda_device_names": [d.name for d in gpus],
    }
    if not gpus:
        details[NO_CUDA] = "TensorFlow sees no GPU (tensorflow-cpu has no CUDA support)"
    return (["cpu", "cuda"] if gpus else ["cpu"]), details


def _tvm(mod) -> tuple[list[str], dict]:
    # tvm-onnx reads the model through TVM's ONNX frontend, which needs the onnx package too.
    details: dict = {"onnx_installed": importlib.util.find_spec("onnx") is not None}
    try:
        details["use_cuda"] = str(mod.support.libinfo().get("USE_CUDA", "unknown"))
    except Exception as exc:  # libinfo is informational only
        details["libinfo_error"] = _error_text(exc)
    runtime = bool(mod.runtime.enabled("cuda"))
    has_cuda = runtime and bool(mod.cuda(0).exist)
    details["cuda_device_count"] = 1 if has_cuda else 0
    if not runtime:
        details[NO_CUDA] = "this TVM build has no CUDA runtime (tvm.runtime.enabled('cuda') is false)"
    elif not has_cuda:
        details[NO_CUDA] = "TVM sees no CUDA device"
    return (["cpu", "cuda"] if has_cuda else ["cpu"]), details


def _cpu_only(mod) -> tuple[list[str], dict]:
    """A backend without a device query of its own: it imports, so it runs on the CPU."""
    return ["cpu"], {NO_CUDA: "mlperf-wizard has no CUDA device query for this backend"}


_DEVICE_QUERIES: dict[str, Callable] = {
    "onnxruntime": _onnxruntime,
    "pytorch": _pytorch,
    "tensorflow": _tensorflow,
    "tvm-onnx": _tvm,
}


def probe(backend: str) -> dict:
    """Import one backend and report installed/version/devices/details/error for it."""
    result: dict = {"installed": False, "version": None, "devices": [], "details": {}, "error": None}
    module_name = MODULES[backend]
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        spec = None
        result["details"]["find_spec_error"] = _error_text(exc)
    dist, dist_version = installed_distribution(backend)
    if spec is None:
        return result
    result["installed"] = True
    result["version"] = dist_version
    result["details"]["distribution"] = dist
    try:
        mod = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:
        result["error"] = _error_text(exc)
        return result
    result["version"] = str(getattr(mod, "__version__", None) or dist_version or "") or None
    result["devices"] = ["cpu"]
    try:
        devices, details = _DEVICE_QUERIES.get(backend, _cpu_only)(mod)
    except (Exception, SystemExit) as exc:
        result["error"] = _error_text(exc)
        return result
    result["devices"] = devices
    result["details"].update(details)
    return result


def main(argv: list[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv) or list(BACKENDS)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        print(f"unknown backend(s): {', '.join(unknown)}; known: {', '.join(BACKENDS)}", file=sys.stderr)
        return 2
    # Keep the real stdout for the JSON; whatever the frameworks print goes to stderr.
    sys.stdout.flush()
    json_fd = os.dup(1)
    os.dup2(2, 1)
    results = {name: probe(name) for name in names}
    sys.stdout.flush()
    with os.fdopen(json_fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
