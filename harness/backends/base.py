"""The backend interface: load a model for a device, run a batch of named input arrays."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from .. import catalogue
from ..errors import CoverageError
from ..staging import HostSamples


class Backend(Protocol):
    """One loaded model on one device."""

    name: str
    version: str
    device: str
    warmup_text: str
    """What the untimed warm-up batch does (shown while it runs: a compile takes minutes)."""
    warmup_short: str
    """Its short form, for the live line's "... N s so far"."""
    image_layout: str
    """The layout its model file wants images in (NCHW, or NHWC for MLCommons' TensorFlow ResNet50)."""
    notices: tuple[str, ...]
    """What the user should know about how the model was loaded (shown as warnings before the run)."""

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returns the requested outputs by name."""

    def staging(self) -> HostSamples:
        """How the QSL keeps samples for this backend (host arrays, or tensors on its device)."""


class BackendBase:
    """The defaults of :class:`Backend`: host arrays, a plain warm-up."""

    warmup_text = "one untimed batch through the backend"
    warmup_short = "untimed batch"
    image_layout = "NCHW"
    notices: tuple[str, ...] = ()
    threads_per_process = False
    """True where the thread count is fixed at the process's first load (TVM's pool, and its compile
    target): the tuner then measures one thread count."""

    def staging(self) -> HostSamples:
        return HostSamples()


def backend_class(name: str) -> type:
    """The class the backend's descriptor names (importing its module, and so its framework)."""
    module_name, _, class_name = catalogue.BY_NAME[name].implementation.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def load_backend(name: str, model_path: Path, *, device: str, threads: int | None,
                 outputs: tuple[str, ...], model: str = "", precision: str = "fp32",
                 compile_mode: str = "off") -> Backend:
    """Import the framework for ``name`` and load ``model_path`` on ``device``: the class the backend's
    descriptor (harness.catalogue) names. ``compile_mode`` reaches only a backend whose descriptor offers it."""
    descriptor = catalogue.BY_NAME.get(name)
    if descriptor is None or descriptor.implementation is None:
        implemented = ", ".join(b.name for b in catalogue.BACKENDS if b.implementation)
        raise CoverageError(f"The {name} backend is not implemented in mlperf-wizard yet.",
                            f"use --backend {implemented} (see `mlperf-wizard coverage`).")
    cls = backend_class(name)
    extra = {}
    if compile_mode != "off":
        if compile_mode not in descriptor.compile_modes:
            raise CoverageError(f"The {name} backend has no compile step ({compile_mode}).", "set compile off.")
        extra["compile_mode"] = compile_mode
    return cls(model_path, device=device, threads=threads, outputs=outputs, model=model, precision=precision,
               **extra)
