"""The backend interface: load a model for a device, run a batch of named input arrays."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from .. import catalogue
from ..errors import CoverageError


class Backend(Protocol):
    """One loaded model on one device."""

    name: str
    version: str
    device: str

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returns the requested outputs by name."""


def load_backend(name: str, model_path: Path, *, device: str, threads: int | None,
                 outputs: tuple[str, ...], model: str = "", precision: str = "fp32") -> Backend:
    """Import the framework for ``name`` and load ``model_path`` on ``device``: the class the backend's
    descriptor (harness.catalogue) names."""
    descriptor = catalogue.BY_NAME.get(name)
    if descriptor is None or descriptor.implementation is None:
        implemented = ", ".join(b.name for b in catalogue.BACKENDS if b.implementation)
        raise CoverageError(f"The {name} backend is not implemented in mlperf-wizard yet.",
                            f"use --backend {implemented} (see `mlperf-wizard coverage`).")
    module_name, _, class_name = descriptor.implementation.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(model_path, device=device, threads=threads, outputs=outputs, model=model, precision=precision)
