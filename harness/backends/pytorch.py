"""PyTorch backend: the project's own module definitions (harness/models/torch_*.py) on CPU or CUDA.

A CUDA run runs on CUDA or stops here, before LoadGen starts, with the reason: there is no CPU fallback.
Precisions: fp32; tf32 (CUDA: TF32 matmuls and convolutions); fp16 and bf16 (the module's weights cast,
inputs cast on the device; outputs come back as float32/int64). Vision models run channels-last on CUDA.

The QSL keeps the samples as tensors on the model's device (the GPU), cast once when LoadGen loads them
(:class:`DeviceSamples`): a batch is one on-device stack, and only the outputs cross to the host in the
timed path. A caller's host arrays go through pinned memory with an asynchronous copy.

On CUDA each calling thread (the SUT's workers) runs on a CUDA stream of its own: one worker waiting for
its outputs waits for its own batch only, not for the batch another worker queued behind it on a shared
stream, so the GPU has the next batch while a worker hands its results to LoadGen.

``compile_mode`` (default, max-autotune) runs the module through ``torch.compile`` with one fixed batch
shape (smaller batches are padded: no recompiles) and without CUDA graphs (the SUT's worker threads share
the module). The compiled kernels are cached under the cache folder (``torch-compile``): the first run
compiles during its warm-up, which the run shows as such; later runs load them.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from pathlib import Path

import numpy as np
import torch

from ..errors import CoverageError, ModelError
from .base import BackendBase

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


class PyTorchBackend(BackendBase):
    name = "pytorch"
    version = torch.__version__

    def __init__(self, model_path: Path, *, device: str, threads: int | None, outputs: tuple[str, ...],
                 model: str, precision: str = "fp32", compile_mode: str = "off"):
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
        self.fixed_batch: int | None = None
        """With a compiled module: the batch size of the first call; smaller batches are padded to it."""
        self.compile_mode = compile_mode
        self._lock = threading.Lock()
        self._local = threading.local()
        if compile_mode != "off":
            self.module = self._compiled(self.module, compile_mode)
        self.input_names = list(fam.io.inputs)
        fam.io.check_outputs(outputs, model)
        self.picks = [fam.io.outputs.index(o) for o in outputs]
        self.outputs = list(outputs)

    def _compiled(self, module, mode: str):
        from ..paths import locations

        cache = locations().cache / "torch-compile"
        cache.mkdir(parents=True, exist_ok=True)
        # Set before the first compile; a user's own setting wins.
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache))
        os.environ.setdefault("TRITON_CACHE_DIR", str(cache / "triton"))
        import torch._inductor.config as inductor

        inductor.fx_graph_cache = True
        self.warmup_text = (f"torch.compile ({mode}) of the model: the first time takes minutes (kernels "
                            f"are cached in {cache}); one batch then runs untimed")
        self.warmup_short = f"torch.compile ({mode})"
        inductor_mode = "max-autotune-no-cudagraphs" if mode == "max-autotune" else "default"
        return torch.compile(module, mode=inductor_mode, dynamic=False)

    def staging(self):
        return DeviceSamples(self)

    def to_device(self, value) -> torch.Tensor:
        """``value`` (a host array or a tensor) on the model's device, in its dtype and layout."""
        tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
        if tensor.device != self.where:
            if self.where.type == "cuda" and tensor.device.type == "cpu":
                tensor = tensor.pin_memory()
            tensor = tensor.to(self.where, non_blocking=True)
        if tensor.is_floating_point():
            tensor = tensor.to(self.dtype)
            if self.channels_last and tensor.dim() == 4:
                tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def _pad(self, tensors: list[torch.Tensor]) -> tuple[list[torch.Tensor], int | None]:
        """A compiled module sees one batch shape: the first call's. A smaller batch gets zero rows; the
        second value is then its real size (the outputs are cut to it), else None."""
        if self.compile_mode == "off":
            return tensors, None
        n = tensors[0].shape[0]
        with self._lock:
            if self.fixed_batch is None:
                self.fixed_batch = n
        fixed = self.fixed_batch
        if n >= fixed:
            return tensors, None
        return [_padded(t, fixed) for t in tensors], n

    def stream(self):
        """A context running on this thread's own CUDA stream (made on first use; a null context on the
        CPU). Entering it orders the stream after the work queued so far on the default stream, where the
        weights and the QSL's samples were put (LoadGen loads samples in its own thread, any time)."""
        if self.where.type != "cuda":
            return contextlib.nullcontext()
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = torch.cuda.Stream(self.where)
        stream.wait_stream(torch.cuda.default_stream(self.where))
        return torch.cuda.stream(stream)

    def run(self, feeds: dict) -> dict[str, np.ndarray]:
        with torch.inference_mode(), self.stream():
            inputs, real = self._pad([self.to_device(feeds[name]) for name in self.input_names])
            results = self.module(*inputs)
            out = {}
            for name, pick in zip(self.outputs, self.picks, strict=True):
                value = results[pick] if real is None else results[pick][:real]
                if value.is_floating_point():
                    value = value.float()
                out[name] = value.cpu().numpy()
        return out


def _padded(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """``tensor`` with zero rows added up to ``rows``, in its memory format. A compiled module guards on
    strides: a channels-last batch padded into a contiguous one (what ``torch.cat`` gives) would make it
    recompile, which took 30 s in the middle of a LoadGen run on the H200."""
    out = tensor.new_zeros((rows,) + tuple(tensor.shape[1:]))
    if tensor.dim() == 4 and not tensor.is_contiguous() and tensor.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    out[:tensor.shape[0]] = tensor
    return out


class DeviceSamples:
    """The QSL's samples as tensors on the backend's device, in its dtype (see harness.staging)."""

    def __init__(self, backend: PyTorchBackend):
        self.backend = backend

    def stage(self, sample):
        with torch.inference_mode():
            if isinstance(sample, tuple):
                return tuple(self._one(x) for x in sample)
            return self._one(sample)

    def _one(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array)).to(self.backend.where)
        if not tensor.is_floating_point():
            return tensor
        tensor = tensor.to(self.backend.dtype)
        if self.backend.channels_last and tensor.dim() == 3:
            # Kept HWC: one stack of them, seen as NCHW, is a channels-last batch (no copy, no per-sample op).
            return tensor.permute(1, 2, 0).contiguous()
        return tensor

    def batch(self, samples: list):
        # On the calling worker's stream, so that its model call is ordered after the stack.
        with torch.inference_mode(), self.backend.stream():
            first = samples[0]
            if isinstance(first, tuple):
                return tuple(self._stack([s[k] for s in samples]) for k in range(len(first)))
            return self._stack(samples)

    def _stack(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        first = tensors[0]
        stacked = torch.stack(tensors)
        if self.backend.channels_last and first.dim() == 3 and first.is_floating_point():  # HWC samples
            return stacked.permute(0, 3, 1, 2)
        return stacked
