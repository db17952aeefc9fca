"""A fixed machine (a CPU-only box with onnxruntime) for deterministic TUI tests: data through the
engine's own Detection model, not a mock."""

from __future__ import annotations

from harness.detect import Detection

MACHINE = {
    "cpu": {"model": "Example CPU 9000", "vendor": "ExampleVendor", "arch": "x86_64", "physical_cores": 2,
            "logical_cores": 2, "isa": ["avx2", "fma"]},
    "memory_total_bytes": 24 * 2**30, "memory_available_bytes": 20 * 2**30,
    "disk_free_bytes": 80 * 2**30, "disk_path": "/srv/results", "gpus": [],
    "backends": {
        "onnxruntime": {"installed": True, "version": "1.32.0", "devices": ["cpu"]},
        "pytorch": {"installed": False},
        "tensorflow": {"installed": False},
        "tvm-onnx": {"installed": False},
    },
    "probe_seconds": 0.25, "cached": True,
}


def machine() -> Detection:
    return Detection.from_dict(MACHINE)
