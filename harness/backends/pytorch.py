"""PyTorch backend: the project's own module definitions (harness/models/torch_*.py) on CPU or CUDA.

A CUDA run runs on CUDA or stops here, before LoadGen starts, with the reason: there is no CPU fallback.
Precisions: fp32; tf32 (CUDA: TF32 matmuls and convolutions); fp16 and bf16 (the module's weights cast,
inputs cast on the device; outputs come back as float32/int64). Inputs go through pinned host memory
with asynchronous copies; vision models run channels-last on CUDA.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch

from ..errors import CoverageError, ModelError

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SYNTHETIC_SUFFIX = ".pt"
"""A synthetic model's weights (a plain state dict, saved by harness.models.families.build_synthetic)."""


def torch_device(device: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` as a torch device, checked now: CUDA that is not there is an error."""
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        built = torch.version.cuda
        raise CoverageError(
            f"--device {device} asked for CUDA, but this torch {torch.__version__} "
            + (f"(built for CUDA {built}) sees no usable GPU." if built else "is a CPU-only build."),
            "check `nvidia-smi` and the driver; install a CUDA build of torch; or use --device cpu.")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise CoverageError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s).",
                            f"use --device cuda:0 .. cuda:{torch.cuda.device_count() - 1}.")
    return torch.device("cuda", index)


class PyTorchBackend:
    name = "pytorch"
    version = torch.__version__

    def __init__(self, model_path: Path, *, device: str, threads: int | None, outputs: tuple[str, ...],
                 model: str, precision: str = "fp32"):
        from ..models.families import family

        self.device = device
        self.where = torch_device(device)
        if precision not in DTYPES:
            raise CoverageError(f"The pytorch backend has no {precision} precision.",
                                f"use one of {', '.join(DTYPES)}.")
        if precision == "fp16" and self.where.type == "cpu":
            raise CoverageError("fp16 on the CPU is not offered: PyTorch's CPU kernels are slow and partial in "
                                "half precision.", "use --precision bf16 or fp32 on the CPU, or --device cuda.")
        if threads:
            torch.set_num_threads(threads)
        fam = family(model)
        definition = importlib.import_module(fam.torch_definition)
        path = Path(model_path)
        if path.suffix == SYNTHETIC_SUFFIX:
            try:
                state = torch.load(str(path), map_location="cpu", weights_only=True)
            except Exception as exc:  # torch raises pickle, zip and runtime errors alike
                raise ModelError(f"{path} is not a readable synthetic model ({type(exc).__name__}).",
                                 "delete it; the next run rebuilds it.") from None
        else:
            state = definition.load_official(path)
        module = definition.build_module(state)
        self.dtype = DTYPES[precision]
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        # Only 4-D tensors change layout: a vision model's convolutions and images; BERT is unaffected.
        self.channels_last = self.where.type == "cuda"
        module = module.to(self.where, dtype=self.dtype)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module = module.eval()
        self.input_names = list(fam.io.inputs)
        known = list(fam.io.outputs)
        missing = [o for o in outputs if o not in known]
        if missing:
            raise ModelError(f"The {model} module has no output named {', '.join(missing)}.",
                             f"ask for one of {', '.join(known)}.")
        self.picks = [known.index(o) for o in outputs]
        self.outputs = list(outputs)

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.where.type == "cuda":
            tensor = tensor.pin_memory().to(self.where, non_blocking=True)
        if tensor.is_floating_point():
            tensor = tensor.to(self.dtype)
            if self.channels_last and tensor.dim() == 4:
                tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            results = self.module(*(self._to_device(feeds[n]) for n in self.input_names))
            out = {}
            for name, pick in zip(self.outputs, self.picks, strict=True):
                value = results[pick]
                if value.is_floating_point():
                    value = value.float()
                out[name] = value.cpu().numpy()
        return out
