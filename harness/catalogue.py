"""The catalogue of backends: one descriptor each, from which every list, alias, install hint, probe and
CLI choice is derived.

Adding a backend is its own module (``harness/backends/<name>.py``), a descriptor here and its rows in
``harness/data/coverage.yaml`` (plus, for a backend that can use a GPU, its device query in
``harness/probe_backends.py``; without one it is probed as CPU-only). Which (model, device, precision)
cells it runs is the coverage table's to say, not this file's.

Standard library only: ``python -m harness.probe_backends`` reads it in a child process that must start fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BackendDescriptor:
    """Everything the engine and the front ends know about one backend before loading it."""

    name: str
    """As the profile, the CLI and the coverage table spell it."""
    aliases: tuple[str, ...]
    """Other spellings users type (the CM tool's among them), all lower case."""
    module: str
    """The top-level Python module the backend imports."""
    distributions: tuple[str, ...]
    """The pip distributions that provide that module, the usual one first."""
    install: dict[str, str | None]
    """Per device, the pip command that makes the backend usable there (None: pip cannot)."""
    replaces: dict[str, str] = field(default_factory=dict)
    """Per device, a distribution that must be removed first when it is the one installed (onnxruntime and
    onnxruntime-gpu install the same module: with both present, the last one wins)."""
    formats: tuple[str, ...] = ()
    """The model file formats it loads."""
    implementation: str | None = None
    """``module:Class`` of mlperf-wizard's backend; None while it is not implemented."""
    compute_precisions: tuple[str, ...] = ()
    """Precisions it computes in from fp32 weights (casting at load time): they use the fp32 model file."""
    compile_modes: tuple[str, ...] = ()
    """The profile's ``compile`` values (besides off) it offers, from :data:`COMPILE_MODES`."""

    def file_precision(self, precision: str) -> str:
        """The precision of the model file a run at ``precision`` loads."""
        return "fp32" if precision in self.compute_precisions else precision

    def install_command(self, device: str, current_distribution: str | None = None) -> str | None:
        """The command that makes this backend usable on ``device``, given the distribution installed now."""
        command = self.install.get(device)
        conflicting = self.replaces.get(device)
        if command and conflicting and current_distribution == conflicting:
            return f"pip uninstall -y {conflicting} && {command}"
        return command


PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "fp16", "bf16", "int8")
"""Every numeric precision a profile or a coverage row may name; the table says which cells run."""
COMPILE_MODES: tuple[str, ...] = ("default", "max-autotune")
"""How a backend may compile the model ahead of the run (the profile's ``compile``, besides off)."""

BACKENDS: tuple[BackendDescriptor, ...] = (
    BackendDescriptor(
        "onnxruntime", ("ort", "onnx"), "onnxruntime", ("onnxruntime", "onnxruntime-gpu"),
        {"cpu": "pip install onnxruntime", "cuda": "pip install 'onnxruntime-gpu[cuda,cudnn]'"},
        replaces={"cuda": "onnxruntime"}, formats=("onnx",),
        implementation="harness.backends.onnxruntime:OnnxRuntimeBackend"),
    BackendDescriptor(
        "pytorch", ("torch",), "torch", ("torch",),
        {"cpu": "pip install 'mlperf-wizard[torch]'", "cuda": "pip install 'mlperf-wizard[torch]'"},
        formats=("pytorch",), implementation="harness.backends.pytorch:PyTorchBackend",
        compute_precisions=("tf32", "fp16", "bf16"), compile_modes=COMPILE_MODES),
    BackendDescriptor(
        "tensorflow", ("tf",), "tensorflow", ("tensorflow", "tensorflow-cpu"),
        {"cpu": "pip install 'mlperf-wizard[tf]'", "cuda": "pip install 'tensorflow[and-cuda]'"},
        formats=("tensorflow",), implementation="harness.backends.tensorflow:TensorFlowBackend"),
    BackendDescriptor(
        # mlperf-wizard compiles for the CPU only (no GPU schedules): no install makes CUDA work.
        "tvm-onnx", ("tvm", "tvm-pip-install-onnx"), "tvm", ("apache-tvm", "tvm"),
        {"cpu": "pip install 'mlperf-wizard[tvm]'", "cuda": None}, formats=("onnx",),
        implementation="harness.backends.tvm_onnx:TvmBackend"),
)
BY_NAME: dict[str, BackendDescriptor] = {b.name: b for b in BACKENDS}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def backend(name: str) -> BackendDescriptor:
    """The descriptor of ``name`` (a canonical name; KeyError otherwise)."""
    return BY_NAME[name]


def aliases() -> dict[str, str]:
    """Every alias of every backend, mapped to its name."""
    return {alias: b.name for b in BACKENDS for alias in b.aliases}
