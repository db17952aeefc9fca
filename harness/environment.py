"""The environment record saved with every run: software versions and the hardware, without importing
any framework (versions come from the installed distributions' metadata)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

from . import __version__, catalogue

PACKAGES = ("mlcommons-loadgen", *dict.fromkeys(d for b in catalogue.BACKENDS for d in b.distributions), "onnx",
            "numpy", "pyyaml", "psutil")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def collect() -> dict[str, Any]:
    """Versions of everything that can change a result, and what the hardware is."""
    record: dict[str, Any] = {
        "mlperf_wizard": __version__,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "os": platform.platform(),
        "machine": platform.machine(),
        "packages": package_versions(),
    }
    try:
        from .detect import detect

        record["hardware"] = detect().to_dict()
    except Exception as exc:  # the record must never stop a run
        record["hardware_error"] = str(exc)
    return record
