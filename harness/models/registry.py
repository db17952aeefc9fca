"""The benchmark models: official sources, tensor I/O, response encoding and accuracy targets.

One entry per MLPerf model; the numbers come from MLCommons (see MLPERF_FACTS.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import catalogue
from ..checksums import verify
from ..errors import ModelError
from ..paths import locations

# Tests build a smaller network from the same code: same I/O, much less compute.
SYNTHETIC_VARIANT_ENV = "MLPERF_WIZARD_SYNTHETIC_VARIANT"


@dataclass(frozen=True)
class OfficialFile:
    """One published model file."""

    backend_format: str
    """onnx | tensorflow | pytorch"""
    precision: str
    filename: str
    urls: tuple[str, ...]
    md5: str
    derived_from: str = ""
    """For a file MLCommons does not publish: the official file (its filename) whose weights mlperf-wizard
    converts into this format on first use (RetinaNet for TensorFlow, from the PyTorch file)."""


@dataclass(frozen=True)
class ModelSpec:
    """What the harness must know about one MLPerf model."""

    name: str
    title: str
    task: str
    dataset: str
    dataset_size: int
    conf_key: str
    """The model name mlperf.conf uses (``resnet50.Offline.min_query_count``)."""
    benchmark: str
    """The submission's benchmark folder name."""
    accuracy_metric: str
    reference_accuracy: float
    targets: tuple[float, ...]
    """Closed-division accuracy targets as fractions of the reference."""
    files: tuple[OfficialFile, ...]
    performance_sample_count: int
    """mlperf.conf's performance_sample_count: the samples LoadGen keeps loaded in a performance test."""
    server_latency_bound_ms: float
    """mlperf.conf's Server latency bound (the 99th percentile)."""
    offline_min_samples: int
    """mlperf.conf's Offline min_query_count (samples in a full Offline test, at least)."""
    scenarios: dict[str, tuple[str, ...]]
    """The scenarios MLPerf requires per category (edge, datacenter); one in neither is not defined."""
    multistream_samples: int = 8

    def scenario_problem(self, scenario: str) -> str | None:
        """Why ``scenario`` cannot be run for this model (MLPerf does not define it), or None."""
        if any(scenario in required for required in self.scenarios.values()):
            return None
        return f"MLPerf defines no {scenario} scenario for {self.title}"


RESNET50 = ModelSpec(
    name="resnet50",
    title="ResNet50 v1.5",
    task="image classification",
    dataset="ImageNet 2012 validation",
    dataset_size=50_000,
    conf_key="resnet50",
    benchmark="resnet",
    accuracy_metric="top-1 accuracy",
    reference_accuracy=76.46,
    targets=(0.99,),
    performance_sample_count=1024, server_latency_bound_ms=15, offline_min_samples=24_576,
    scenarios={"edge": ("SingleStream", "MultiStream", "Offline"), "datacenter": ("Server", "Offline")},
    files=(
        OfficialFile("onnx", "fp32", "resnet50_v1.onnx",
                     ("https://zenodo.org/record/4735647/files/resnet50_v1.onnx",),
                     "f6a4da60cd5f084d97efc2c1ddb10beb"),
        # No official fp16 file: the fp32 ONNX file's weights rounded once (harness.models.onnx_fp16).
        OfficialFile("onnx", "fp16", "resnet50_v1-fp16.onnx", (), "", derived_from="resnet50_v1.onnx"),
        OfficialFile("tensorflow", "fp32", "resnet50_v1.pb",
                     ("https://zenodo.org/record/2535873/files/resnet50_v1.pb",),
                     "7b94a2da05dd30f6c0af23a46bc08886"),
        OfficialFile("pytorch", "fp32", "resnet50-19c8e357.pth",
                     ("https://zenodo.org/record/4588417/files/resnet50-19c8e357.pth",),
                     "9e9c86b324d80e65229fab49b8d9a8e8"),
    ),
)

RETINANET = ModelSpec(
    name="retinanet", title="RetinaNet ResNeXt50-32x4d FPN", task="object detection",
    dataset="OpenImages (MLPerf subset)", dataset_size=24_781, conf_key="retinanet", benchmark="retinanet",
    accuracy_metric="mAP", reference_accuracy=37.55, targets=(0.99,),
    performance_sample_count=64, server_latency_bound_ms=100, offline_min_samples=24_576,
    scenarios={"edge": ("SingleStream", "MultiStream", "Offline"), "datacenter": ("Server", "Offline")},
    files=(
        OfficialFile("onnx", "fp32", "resnext50_32x4d_fpn.onnx",
                     ("https://zenodo.org/record/6617879/files/resnext50_32x4d_fpn.onnx",),
                     "4544f4e56e0a4684215831cc937ea45c"),
        OfficialFile("pytorch", "fp32", "resnext50_32x4d_fpn.pth",
                     ("https://zenodo.org/record/6617981/files/resnext50_32x4d_fpn.pth",),
                     "a55f6bec3464f605ce8d686da8ac1533"),
        # No official TensorFlow RetinaNet: the PyTorch file's weights in the project's TensorFlow graph.
        OfficialFile("tensorflow", "fp32", "resnext50_32x4d_fpn-tensorflow.pb", (), "",
                     derived_from="resnext50_32x4d_fpn.pth"),
    ),
)

BERT = ModelSpec(
    name="bert", title="BERT-large (SQuAD v1.1)", task="question answering", dataset="SQuAD v1.1 dev",
    dataset_size=10_833, conf_key="bert", benchmark="bert-99", accuracy_metric="F1",
    reference_accuracy=90.874, targets=(0.99, 0.999),
    performance_sample_count=10_833, server_latency_bound_ms=130, offline_min_samples=10_833,
    scenarios={"edge": ("SingleStream", "Offline"), "datacenter": ("Server", "Offline")},
    files=(
        OfficialFile("onnx", "fp32", "model.onnx", ("https://zenodo.org/record/3733910/files/model.onnx",),
                     "819b25b19cd8e59080c10892689750ca"),
        OfficialFile("onnx", "fp16", "model-fp16.onnx", (), "", derived_from="model.onnx"),
        OfficialFile("onnx", "int8", "bert_large_v1_1_fake_quant.onnx",
                     ("https://zenodo.org/record/3750364/files/bert_large_v1_1_fake_quant.onnx",),
                     "45f88ffb2915362242703c85c38ec2d4"),
        OfficialFile("pytorch", "fp32", "model.pytorch",
                     ("https://zenodo.org/record/3733896/files/model.pytorch",),
                     "00fbcbfaebfa20d87ac9885120a6e9b4"),
        OfficialFile("tensorflow", "fp32", "model.pb", ("https://zenodo.org/record/3939747/files/model.pb",),
                     "dd72de12e8226f25f0128a1a864b97ad"),
    ),
    multistream_samples=8,
)

MODELS = {m.name: m for m in (RESNET50, RETINANET, BERT)}

BACKEND_FORMAT = {b.name: b.formats[0] for b in catalogue.BACKENDS}
"""The model file format each backend loads (its descriptor's first)."""
SYNTHETIC_SUFFIX = {"onnx": ".onnx", "pytorch": ".pt", "tensorflow": ".pb"}
"""The formats a synthetic model is built in (harness.models.families.build_synthetic)."""


@dataclass(frozen=True)
class ModelChoice:
    """The model file a run will use, resolved from the profile."""

    source: str
    """official | local | synthetic"""
    path: Path
    description: str
    synthetic: bool
    variant: str | None = None
    md5: str | None = None
    derived_from: Path | None = None
    """The official file this one is converted from, when it is first needed (see OfficialFile)."""

    def to_dict(self) -> dict:
        return {"source": self.source, "path": str(self.path), "description": self.description,
                "synthetic": self.synthetic, "variant": self.variant, "md5": self.md5,
                "derived_from": str(self.derived_from) if self.derived_from else None}


def official_file(spec: ModelSpec, backend: str, precision: str) -> OfficialFile | None:
    fmt = BACKEND_FORMAT.get(backend)
    if backend in catalogue.BY_NAME:
        precision = catalogue.backend(backend).file_precision(precision)
    return next((f for f in spec.files if f.backend_format == fmt and f.precision == precision), None)


def synthetic_variant() -> str:
    return os.environ.get(SYNTHETIC_VARIANT_ENV, "full")


def synthetic_path(spec: ModelSpec, variant: str, seed: int = 0, precision: str = "fp32",
                   backend: str = "onnxruntime") -> Path:
    """Where the synthetic model for ``backend`` is cached: one file per format and file precision."""
    descriptor = catalogue.backend(backend)
    precision = descriptor.file_precision(precision)
    suffix = "" if precision == "fp32" else f"-{precision}"
    extension = SYNTHETIC_SUFFIX.get(BACKEND_FORMAT[backend], ".onnx")
    return locations().models / "synthetic" / f"{spec.name}-{variant}-seed{seed}{suffix}{extension}"


def _not_a_file(path: Path) -> str:
    """What a path that is not a regular file is, in words (it may exist as something else)."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))
    what = next((name for test, name in kinds if test(mode)), "something other than a file")
    return f"is {what}, not a regular model file"


def resolve_model(model: str, backend: str, precision: str, source: str, model_path: str | None) -> ModelChoice:
    """Decide which model file a run uses, without loading it. Raises ModelError with the fix."""
    spec = MODELS[model]
    official = official_file(spec, backend, precision)
    if model_path or source == "local":
        path = Path(model_path or "").expanduser()
        if not path.is_file():
            raise ModelError(f"Model file {path} {_not_a_file(path)}.",
                             "check --model-path, or use --model-source synthetic for the offline stand-in.")
        derived = official_file(spec, backend, precision)
        converts = derived is not None and derived.derived_from and \
            Path(derived.derived_from).suffix != Path(derived.filename).suffix  # a change of format
        if converts and path.suffix == Path(derived.derived_from).suffix:
            # A PyTorch file for a backend that has its own graph of this model: converted on first use,
            # cached per source file (path, size, modification time).
            import hashlib

            info = path.stat()
            key = hashlib.sha256(f"{path.resolve()}|{info.st_size}|{info.st_mtime_ns}".encode()).hexdigest()[:16]
            target = locations().models / "converted" / f"{path.stem}-{key}{Path(derived.filename).suffix}"
            return ModelChoice("local", target, f"{spec.title} weights from {path} in mlperf-wizard's {backend} "
                               "graph", synthetic=False, derived_from=path.resolve())
        return ModelChoice("local", path.resolve(), f"{spec.title} from {path}", synthetic=False)
    origin = next((f for f in spec.files if official and f.filename == official.derived_from), None)
    cached = locations().models / "official" / (origin or official).filename if official else None
    if source == "official" or (source == "auto" and cached is not None and cached.is_file()):
        if official is None:
            raise ModelError(f"MLCommons publishes no {precision} {spec.title} model for {backend}.",
                             "choose another precision or backend, or give a file with --model-path.")
        if origin is not None:
            official = origin
        if not cached.is_file():
            raise ModelError(
                f"The official {spec.title} model ({official.filename}) is not in the model cache "
                f"({cached.parent}).",
                f"`mlperf-wizard models fetch {spec.name}` downloads it ({official.urls[0]}, md5 {official.md5}); "
                "offline, `mlperf-wizard models import FILE` takes a copy, or run with --model-source synthetic.")
        # Only a file with the published md5 may be called official (the checksum is cached beside it).
        if not verify(cached, official.md5):
            raise ModelError(f"{cached} is not the official {spec.title} file (its md5 is not {official.md5}).",
                             f"`mlperf-wizard models fetch {spec.name}` replaces it, or run with "
                             "--model-source synthetic.")
        if origin is not None:
            made = official_file(spec, backend, precision)
            how = (f"in mlperf-wizard's {backend} graph" if Path(made.filename).suffix != Path(origin.filename).suffix
                   else f"rounded to {precision} by mlperf-wizard")
            return ModelChoice("official", locations().models / "official" / made.filename,
                               f"official {spec.title} weights ({origin.filename}) {how}", synthetic=False,
                               derived_from=cached)
        return ModelChoice("official", cached, f"official {spec.title} ({official.filename})",
                           synthetic=False, md5=official.md5)
    variant = synthetic_variant()
    label = f"synthetic {spec.title}" + ("" if variant == "full" else f" ({variant} variant)")
    return ModelChoice("synthetic", synthetic_path(spec, variant, precision=precision, backend=backend),
                       f"{label}: real architecture, seeded random weights", synthetic=True, variant=variant)
