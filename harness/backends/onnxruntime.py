"""ONNX Runtime backend (CPU, and CUDA through onnxruntime-gpu's CUDAExecutionProvider).

Feeds and results are named as the model family names them (harness.models.io); the file's own tensor
names are looked up once, at load, from the family's name sets for ONNX files.

CUDA never falls back to the CPU unsaid. ONNX Runtime's default is to run, on the CPU, whatever its CUDA
provider cannot take, and to drop the CUDA provider altogether when its libraries do not load. Here:

- the CUDA libraries of the pip packages (nvidia-*, as torch installs them) are loaded first
  (``onnxruntime.preload_dlls``), and a session whose CUDA provider did not start stops the run;
- the session is made with CPU fallback disabled (``session.disable_cpu_ep_fallback``); if ONNX Runtime
  needs the CPU for part of the graph (it keeps small shape computations there), the session is made again
  with the fallback allowed and the run says so before it starts, with ONNX Runtime's own list in the log.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import CoverageError, ModelError
from .base import BackendBase


def providers(device: str, *, cpu_fallback: bool = True) -> list:
    """The execution providers for ``cpu``, ``cuda`` or ``cuda:N`` (GPU N). Without ``cpu_fallback`` a CUDA
    session lists the CUDA provider alone: ONNX Runtime refuses a session that names the CPU provider and
    also disables the fallback to it (measured with onnxruntime-gpu 1.31.1)."""
    kind, _, index = device.partition(":")
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    cuda = ("CUDAExecutionProvider", {"device_id": int(index or 0)})
    return [cuda, "CPUExecutionProvider"] if cpu_fallback else [cuda]


CPU_NODES_REFUSED = "assigned to the default CPU EP, but fallback to CPU EP has been explicitly disabled"
"""ONNX Runtime's words when a strict session would need the CPU for part of the graph."""


class _CpuFallback(Exception):
    """ONNX Runtime refused the strict CUDA session: part of the graph would run on the CPU."""


class OnnxRuntimeBackend(BackendBase):
    name = "onnxruntime"
    version = ort.__version__

    def __init__(self, model_path: Path, *, device: str, threads: int | None, outputs: tuple[str, ...],
                 model: str, precision: str = "fp32"):
        from ..models.families import family

        self.device = device
        on_gpu = device.startswith("cuda")
        if on_gpu and "CUDAExecutionProvider" not in ort.get_available_providers():
            from .. import catalogue

            raise CoverageError("This onnxruntime has no CUDA support (CUDAExecutionProvider is missing).",
                                catalogue.backend("onnxruntime").install_command("cuda", "onnxruntime"))
        if on_gpu and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* pip packages, where they are installed
        try:
            self.session = self._session(model_path, device, threads, strict=on_gpu)
        except _CpuFallback:
            self.session = self._session(model_path, device, threads, strict=False)
            self.notices = ("ONNX Runtime runs part of this model on the CPU: its CUDA provider does not take "
                            "every node (usually small shape computations); its list is in the run's log.",)
        if on_gpu and "CUDAExecutionProvider" not in self.session.get_providers():
            raise CoverageError(f"ONNX Runtime {ort.__version__} could not start its CUDA provider on this machine "
                                "(the CUDA or cuDNN libraries it needs did not load; the run's log has its reason).",
                                "`pip install 'onnxruntime-gpu[cuda,cudnn]'` adds the CUDA and cuDNN libraries this "
                                "onnxruntime-gpu is built for; check `nvidia-smi`; or use --device cpu.")
        io = family(model).io
        io.check_outputs(outputs, model)
        names = io.names_in("onnx", (i.name for i in self.session.get_inputs()),
                            (o.name for o in self.session.get_outputs()), model_path)
        self.inputs = [(n, names[n]) for n in io.inputs]
        self.outputs = list(outputs)
        self.file_outputs = [names[o] for o in outputs]

    @staticmethod
    def _session(model_path: Path, device: str, threads: int | None, *, strict: bool):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        if strict:
            options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        try:
            return ort.InferenceSession(str(model_path), options, providers=providers(device, cpu_fallback=not strict))
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... types
            text = str(exc).strip()
            if strict and CPU_NODES_REFUSED in text:
                raise _CpuFallback(text) from None
            first_line = text.splitlines()[0] if text else type(exc).__name__
            raise ModelError(f"{model_path} is not a valid ONNX model for ONNX Runtime ({first_line}).",
                             "check the file (a truncated download?) or use --model-source synthetic.") from None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.session.run(self.file_outputs, {file: feeds[ours] for ours, file in self.inputs})
        return dict(zip(self.outputs, results, strict=True))
