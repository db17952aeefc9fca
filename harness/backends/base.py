"""The backend interface: load a model for a device, run a batch of named input arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import CoverageError


class Backend(Protocol):
    """One loaded model on one device."""

    name: str
    version: str
    device: str

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returns the requested outputs by name."""


def load_backend(name: str, model_path: Path, *, device: str, threads: int | None,
                 outputs: tuple[str, ...]) -> Backend:
    """Import the framework for ``name`` and load ``model_path`` on ``device``."""
    if name == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model_path, device=device, threads=threads, outputs=outputs)
    raise CoverageError(f"The {name} backend is not implemented in mlperf-wizard yet.",
                        "use --backend onnxruntime (see `mlperf-wizard coverage`).")
