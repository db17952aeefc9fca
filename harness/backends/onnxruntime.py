"""ONNX Runtime backend (CPU, and CUDA through onnxruntime-gpu's CUDAExecutionProvider).

Feeds and results are named as the model family names them (harness.models.io); the file's own tensor
names are looked up once, at load, from the family's name sets for ONNX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import CoverageError, ModelError
from .base import BackendBase


def providers(device: str) -> list:
    """The execution providers for ``cpu``, ``cuda`` or ``cuda:N`` (GPU N)."""
    kind, _, index = device.partition(":")
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]


class OnnxRuntimeBackend(BackendBase):
    name = "onnxruntime"
    version = ort.__version__

    def __init__(self, model_path: Path, *, device: str, threads: int | None, outputs: tuple[str, ...],
                 model: str, precision: str = "fp32"):
        from ..models.families import family

        self.device = device
        on_gpu = device.startswith("cuda")
        if on_gpu and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise CoverageError("This onnxruntime has no CUDA support (CUDAExecutionProvider is missing).",
                                "pip uninstall onnxruntime && pip install onnxruntime-gpu")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=providers(device))
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... types
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{model_path} is not a valid ONNX model for ONNX Runtime ({first_line}).",
                             "check the file (a truncated download?) or use --model-source synthetic.") from None
        if on_gpu and "CUDAExecutionProvider" not in self.session.get_providers():
            raise CoverageError("ONNX Runtime could not start its CUDA provider on this machine.",
                                "check the NVIDIA driver and CUDA libraries, or use --device cpu.")
        io = family(model).io
        io.check_outputs(outputs, model)
        names = io.names_in("onnx", (i.name for i in self.session.get_inputs()),
                            (o.name for o in self.session.get_outputs()), model_path)
        self.inputs = [(n, names[n]) for n in io.inputs]
        self.outputs = list(outputs)
        self.file_outputs = [names[o] for o in outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.session.run(self.file_outputs, {file: feeds[ours] for ours, file in self.inputs})
        return dict(zip(self.outputs, results, strict=True))
