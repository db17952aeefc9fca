"""Apache TVM backend (the seed's ``tvm-onnx``): the ONNX model imported with TVM's Relax frontend, compiled
for this CPU with LLVM, run through TVM's Relax virtual machine.

- Target: LLVM for the CPU LLVM detects (``llvm_get_system_cpu``: e.g. ``skylake-avx512``), else a CPU
  chosen from the ISA found in /proc/cpuinfo (avx512 -> skylake-avx512, avx2 -> haswell, else x86-64).
- The batch dimension stays symbolic: one compiled library serves every batch size.
- The compiled library is cached under the cache folder (``tvm/``), keyed by the model file's sha256, the
  target and the TVM version; the first run compiles during its warm-up (shown as such, with the time so
  far), later runs load the library. A damaged cached library is rebuilt.
- No tuning (MetaSchedule): TVM's untuned CPU kernels are much slower than ONNX Runtime's (the full
  ResNet50, batch 8, 2 cores: 0.20 samples/s against onnxruntime's 18; docs/measurements/), which the
  coverage notes say. fp32 only.
- CUDA: not offered. Compiling for a GPU needs GPU schedules that mlperf-wizard does not apply; a run asked
  for on CUDA stops before LoadGen with that reason.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

from ..errors import CoverageError, ModelError
from .base import BackendBase

CACHE_SCHEMA = 1
"""Part of every cache key: bump when the way a library is built changes."""


def llvm_cpu() -> str:
    """The LLVM CPU name to compile for: LLVM's own detection, else one chosen from the ISA flags."""
    from tvm.target import codegen

    try:
        name = str(codegen.llvm_get_system_cpu())
        if name and name != "generic" and codegen.llvm_is_valid_cpu(name, "x86_64-pc-linux-gnu"):
            return name
    except Exception:  # noqa: BLE001 - older TVMs lack these helpers: fall back to the flags
        pass
    flags = _cpu_flags()
    if "avx512f" in flags:
        return "skylake-avx512"
    if "avx2" in flags:
        return "haswell"
    return "x86-64"


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def target_config(threads: int | None) -> dict:
    config = {"kind": "llvm", "mtriple": "x86_64-pc-linux-gnu", "mcpu": llvm_cpu()}
    if threads:
        config["num-cores"] = threads
    return config


def _file_digest(path: Path) -> str:
    """The model file's sha256, from its integrity record when the record still matches the file."""
    from .. import cache_integrity

    recorded = cache_integrity.read_record(path)
    if recorded is not None and cache_integrity.problem(path, recorded) is None:
        return recorded.sha256
    return cache_integrity.sha256_file(path)


class TvmBackend(BackendBase):
    name = "tvm-onnx"
    version = tvm.__version__
    threads_per_process = True  # TVM_NUM_THREADS is read once, and the library is compiled for num-cores

    def __init__(self, model_path: Path, *, device: str, threads: int | None, outputs: tuple[str, ...],
                 model: str, precision: str = "fp32"):
        import onnx

        from ..models.families import family
        from ..paths import locations

        self.device = device
        if device != "cpu":
            raise CoverageError(f"--device {device}: the tvm-onnx backend runs on the CPU only (compiling for a "
                                "GPU needs GPU schedules that mlperf-wizard does not apply).",
                                "use --device cpu, or --backend pytorch for CUDA.")
        if precision != "fp32":
            raise CoverageError(f"The tvm-onnx backend computes in fp32 only, not {precision}.",
                                "use --precision fp32.")
        if threads:
            # Read by TVM's thread pool when it starts, at the first parallel call.
            os.environ["TVM_NUM_THREADS"] = str(threads)
        path = Path(model_path)
        try:
            proto = onnx.load(str(path))
        except Exception as exc:  # onnx raises DecodeError, OSError, ValueError alike
            raise ModelError(f"{path} is not a readable ONNX model ({type(exc).__name__}).",
                             "check the file (a truncated download?) or use --model-source synthetic.") from None
        io = family(model).io
        io.check_outputs(outputs, model)
        initializers = {i.name for i in proto.graph.initializer}
        file_inputs = [i.name for i in proto.graph.input if i.name not in initializers]
        file_outputs = [o.name for o in proto.graph.output]
        names = io.names_in("onnx", file_inputs, file_outputs, path)
        self.input_order = [next(ours for ours in io.inputs if names[ours] == file) for file in file_inputs]
        """Our input names in the order of the compiled function's parameters (the file's input order)."""
        self.outputs = list(outputs)
        self.picks = [file_outputs.index(names[o]) for o in outputs]
        self.proto = proto
        self.target = target_config(threads)
        key = hashlib.sha256(repr((CACHE_SCHEMA, _file_digest(path), sorted(self.target.items()),
                                   tvm.__version__)).encode()).hexdigest()[:32]
        self.library = locations().cache / "tvm" / f"{path.stem}-{key}.so"
        self.target_text = f"llvm -mcpu={self.target['mcpu']}"
        self._lock = threading.Lock()
        self.vm = self._load_cached()
        if self.vm is None:
            self.warmup_text = (f"TVM compile of the model for {self.target_text} (first run only; cached in "
                                f"{self.library.parent})")
            self.warmup_short = "TVM compile"

    def _load_cached(self):
        if not self.library.is_file():
            return None
        from .. import cache_integrity

        if cache_integrity.check_file(self.library) is not None:
            cache_integrity.remove(self.library)  # damaged or unfinished: compiled again at the first call
            return None
        try:
            return relax.VirtualMachine(tvm.runtime.load_module(str(self.library)), tvm.cpu())
        except Exception:  # noqa: BLE001 - a library another TVM wrote: compile again
            cache_integrity.remove(self.library)
            return None

    def _compile(self):
        from tvm.relax.frontend.onnx import from_onnx

        from .. import cache_integrity
        from ..fsutil import ensure_writable_dir

        try:
            mod = from_onnx(self.proto, keep_params_in_input=False)
            with tvm.transform.PassContext(opt_level=3):
                executable = tvm.compile(mod, target=tvm.target.Target(self.target))
        except Exception as exc:  # TVM raises TVMError/ValueError/... for an operator it cannot import
            first = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"TVM could not compile this model ({first}).",
                             "use --backend onnxruntime, or report the operator to TVM.") from None
        self.proto = None  # the graph is in the library now
        ensure_writable_dir(self.library.parent)
        partial = self.library.with_name(self.library.name + f".{os.getpid()}.part.so")
        executable.export_library(str(partial))
        os.replace(partial, self.library)
        cache_integrity.record_file(self.library)
        return relax.VirtualMachine(tvm.runtime.load_module(str(self.library)), tvm.cpu())

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vm = self.vm
        if vm is None:
            with self._lock:
                if self.vm is None:
                    self.vm = self._compile()
                vm = self.vm
        args = [tvm.runtime.tensor(np.ascontiguousarray(feeds[name])) for name in self.input_order]
        results = vm["main"](*args)
        if hasattr(results, "numpy"):  # one output: the function returns it alone
            results = [results]
        return {name: results[pick].numpy() for name, pick in zip(self.outputs, self.picks, strict=True)}
