"""Per-model plumbing the child process needs: how to build the synthetic stand-in, the task that turns
batches into MLPerf responses, the datasets, and the accuracy script. Imports are lazy: a family's
framework code loads only in the child that runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .io import ModelIO


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[Path, str, str], Any]
    """(path, variant, precision) -> BuildInfo: builds the synthetic ONNX model file (the one seeded source of
    the synthetic weights; :func:`build_synthetic` derives the other formats from it)."""
    task: Callable[[Any], Any]
    """backend -> task with .outputs, .layout and .infer(batch)."""
    synthetic_dataset: Callable[[int, str], Any]
    """(count, layout) -> dataset."""
    real_dataset: Callable[[Path, int, str, Callable[[str, int, int | None], None]], Any] | None
    """(path, count, layout, progress(stage, done, total)) -> dataset in the official format."""
    real_size: Callable[[Path], int] | None
    """path -> how many samples the dataset folder holds (cheap: reads the index, not the data)."""
    accuracy: Callable[[Path, Any], dict]
    """(mlperf_log_accuracy.json, dataset) -> result dict with metric, value, ..."""
    accuracy_text: Callable[[dict, Path], str]
    io: ModelIO
    """The model's inputs and outputs under its own names, and how each file format names them."""
    torch_definition: str = ""
    """The module with the project's PyTorch definition: build_module, state_dict_from_onnx, load_official."""
    tf_definition: str = ""
    """The module with the project's TensorFlow definition: ``graph_def(state) -> bytes`` (a frozen graph)."""
    reference_state: str = ""
    """``module:function`` giving the synthetic ONNX file's weights as numpy arrays in the reference
    framework's state-dict layout (torchvision, Hugging Face): what the project's own definitions load."""


def _resnet50() -> Family:
    def build(path: Path, variant: str, precision: str):
        from .synthetic_resnet50 import build_resnet50_onnx

        return build_resnet50_onnx(path, seed=0, variant=variant)

    def task(backend):
        from .resnet50 import ResNet50Task

        return ResNet50Task(backend)

    def synthetic(count: int, layout: str):
        from ..datasets.imagenet import SyntheticImageNet

        return SyntheticImageNet(count, layout=layout)

    def real(path: Path, count: int, layout: str, progress):
        from ..datasets.imagenet_real import ImageNetFolder

        return ImageNetFolder(path, layout=layout, count=count, progress=progress)

    def size(path: Path) -> int:
        from ..datasets.imagenet_real import VAL_MAP, parse_val_map

        return len(parse_val_map(path / VAL_MAP))

    def accuracy(log: Path, dataset) -> dict:
        from ..accuracy.imagenet import top1

        return top1(log, dataset.labels())

    def text(result: dict, log: Path) -> str:
        from ..accuracy.imagenet import accuracy_text

        return accuracy_text(result, log)

    from .resnet50 import IO

    return Family("resnet50", build, task, synthetic, real, size, accuracy, text, IO,
                  torch_definition="harness.models.torch_resnet50", tf_definition="harness.models.tf_resnet50",
                  reference_state="harness.models.synthetic_resnet50:reference_state")


def _retinanet() -> Family:
    def build(path: Path, variant: str, precision: str):
        from .synthetic_retinanet import build_retinanet_onnx

        return build_retinanet_onnx(path, seed=0, variant=variant)

    def task(backend):
        from .retinanet import RetinaNetTask

        return RetinaNetTask(backend)

    def synthetic(count: int, layout: str):
        from ..datasets.openimages import SyntheticOpenImages

        return SyntheticOpenImages(count)

    def real(path: Path, count: int, layout: str, progress):
        from ..datasets.openimages import OpenImages

        dataset = OpenImages(path, count=count)
        dataset.prepare(progress)
        return dataset

    def size(path: Path) -> int:
        from ..datasets.openimages import ANNOTATIONS_FILE, read_annotations

        return len(read_annotations(path / ANNOTATIONS_FILE)["images"])

    def accuracy(log: Path, dataset) -> dict:
        from ..accuracy.openimages import openimages_map

        truth = dataset.annotations() if dataset.synthetic else dataset.annotation_file
        return openimages_map(log, truth)

    def text(result: dict, log: Path) -> str:
        from ..accuracy.openimages import accuracy_text

        return accuracy_text(result, log)

    from .retinanet import IO

    return Family("retinanet", build, task, synthetic, real, size, accuracy, text, IO,
                  torch_definition="harness.models.torch_retinanet", tf_definition="harness.models.tf_retinanet",
                  reference_state="harness.models.synthetic_retinanet:reference_state")


def _bert() -> Family:
    def build(path: Path, variant: str, precision: str):
        from .synthetic_bert import build_bert_onnx

        return build_bert_onnx(path, seed=0, variant=variant, precision=precision)

    def task(backend):
        from .bert import BertTask

        return BertTask(backend)

    def synthetic(count: int, layout: str):
        from ..datasets.squad import SyntheticSquad

        return SyntheticSquad(count)

    def real(path: Path, count: int, layout: str, progress):
        from ..datasets.squad import SquadFeatures
        from ..datasets.wordpiece import packaged_vocab
        from ..paths import locations

        vocab = path / "vocab.txt"
        if not vocab.is_file() and packaged_vocab() is not None:
            vocab = packaged_vocab()
        return SquadFeatures(path / "dev-v1.1.json", vocab, cache_dir=locations().datasets / "squad", count=count,
                             progress=lambda done, total: progress("tokenising", done, total),
                             notify=lambda text: progress(text, 1, 1))

    def size(path: Path) -> int:
        from .registry import BERT

        # The feature count is only known after tokenising; the official dev set gives this many.
        return BERT.dataset_size

    def accuracy(log: Path, dataset) -> dict:
        from ..accuracy.squad import squad_accuracy

        return squad_accuracy(log, dataset)

    def text(result: dict, log: Path) -> str:
        from ..accuracy.squad import accuracy_text

        return accuracy_text(result, log)

    from .bert import IO

    return Family("bert", build, task, synthetic, real, size, accuracy, text, IO,
                  torch_definition="harness.models.torch_bert", tf_definition="harness.models.tf_bert",
                  reference_state="harness.models.synthetic_bert:reference_state")


FACTORIES: dict[str, Callable[[], Family]] = {"resnet50": _resnet50, "retinanet": _retinanet, "bert": _bert}
REAL_DATASETS: set[str] = {"resnet50", "retinanet", "bert"}


def supports_real_dataset(model: str) -> bool:
    """Whether mlperf-wizard can read ``model``'s dataset in the official format (without importing it)."""
    return model in REAL_DATASETS


def build_synthetic(model: str, path: Path, variant: str, precision: str):
    """Build ``model``'s synthetic file at ``path``, in the format its suffix names; returns its BuildInfo.

    ``.onnx`` is built from the seeded generator; ``.pt`` (PyTorch, fp32 weights whatever the compute
    precision) and ``.pb`` (a TensorFlow frozen graph) take the weights of the ONNX file, built first and
    cached beside it, so every backend runs the same network.
    """
    import hashlib
    import importlib
    import time

    from ..cache_integrity import check_file
    from .store import write_model

    fam = family(model)
    if path.suffix == ".onnx" and precision == "fp16":
        # The fp32 file's weights, rounded once (harness.models.onnx_fp16); the fp32 file is cached beside.
        fp32 = path.with_name(path.name.replace("-fp16.onnx", ".onnx"))
        if fp32 == path:
            raise ValueError(f"{path.name} is not named as an fp16 synthetic model (-fp16.onnx)")
        if not fp32.exists() or check_file(fp32) is not None:
            fam.build(fp32, variant, "fp32")
        return convert_official(model, fp32, path, synthetic_variant=variant)
    if path.suffix == ".onnx":
        return fam.build(path, variant, precision)
    if path.suffix not in (".pt", ".pb"):
        raise ValueError(f"no synthetic {model} model in the format of {path.name}")
    from .onnx_graph import BuildInfo

    start = time.perf_counter()
    onnx_path = path.with_suffix(".onnx")
    if not onnx_path.exists() or check_file(onnx_path) is not None:
        fam.build(onnx_path, variant, "fp32")
    if path.suffix == ".pb":
        module_name, _, function = fam.reference_state.partition(":")
        state = getattr(importlib.import_module(module_name), function)(onnx_path)
        data = importlib.import_module(fam.tf_definition).graph_def(state)  # checks the weights fit
        what, parameters = f"synthetic {model} TensorFlow model", sum(int(v.size) for v in state.values())
    else:
        import io

        import torch

        definition = importlib.import_module(fam.torch_definition)
        state = definition.state_dict_from_onnx(onnx_path)
        definition.build_module(state)  # the weights must load strictly before they are cached
        buffer = io.BytesIO()
        torch.save(state, buffer)  # a plain state dict: the backend reads it back with weights_only=True
        data = buffer.getvalue()
        what, parameters = f"synthetic {model} PyTorch model", sum(int(t.numel()) for t in state.values())
    write_model(path, data, what, "about the size of the ONNX file")
    return BuildInfo(path=path, variant=variant, seed=0, parameters=parameters, size_bytes=len(data),
                     seconds=time.perf_counter() - start, md5=hashlib.md5(data).hexdigest())


def convert_official(model: str, source: Path, target: Path, synthetic_variant: str | None = None):
    """The weights in ``source`` in the format of ``target``, for a file MLCommons does not publish:

    - ``.onnx`` from an fp32 ``.onnx``: the fp16 model (:func:`harness.models.onnx_fp16.to_fp16`);
    - ``.pb`` from a PyTorch file: a frozen TensorFlow graph of the project's own definition (MLCommons
      publishes no TensorFlow RetinaNet); reading the PyTorch file needs PyTorch, once.

    Returns a BuildInfo (``synthetic_variant`` names the variant when the source is a synthetic model)."""
    import hashlib
    import importlib
    import time

    from ..errors import ModelError
    from .onnx_graph import BuildInfo
    from .store import write_model

    start = time.perf_counter()
    if target.suffix == ".onnx":
        import onnx

        from .onnx_fp16 import to_fp16

        try:
            proto = onnx.load(str(source))
        except Exception as exc:  # onnx raises decode, OS and checker errors alike
            raise ModelError(f"{source} is not a readable ONNX model ({type(exc).__name__}).",
                             "check the file, or use --model-source synthetic.") from None
        data = to_fp16(proto).SerializeToString()
        write_model(target, data, f"fp16 {model} model", "half the size of the fp32 file")
        parameters = sum(int(np_size(t)) for t in proto.graph.initializer)
        return BuildInfo(path=target, variant=synthetic_variant or "official", seed=0, parameters=parameters,
                         size_bytes=len(data), seconds=time.perf_counter() - start,
                         md5=hashlib.md5(data).hexdigest())
    if target.suffix != ".pb":
        raise ValueError(f"no conversion of {model} weights into {target.name}")
    fam = family(model)
    try:
        definition = importlib.import_module(fam.torch_definition)
    except ImportError:
        raise ModelError(f"Converting the official {model} weights ({source.name}) for TensorFlow reads the "
                         "PyTorch file, which needs PyTorch (once: the result is cached).",
                         "pip install 'mlperf-wizard[torch]', or use --model-source synthetic.") from None
    state = {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
             for k, v in definition.load_official(source).items()}
    data = importlib.import_module(fam.tf_definition).graph_def(state)  # checks the weights fit
    write_model(target, data, f"official {model} weights as a TensorFlow graph", "about the size of the weights")
    return BuildInfo(path=target, variant="official", seed=0, parameters=sum(int(v.size) for v in state.values()),
                     size_bytes=len(data), seconds=time.perf_counter() - start, md5=hashlib.md5(data).hexdigest())


def np_size(tensor) -> int:
    """The number of elements of an ONNX TensorProto."""
    size = 1
    for dim in tensor.dims:
        size *= int(dim)
    return size


def family(model: str) -> Family:
    """The plumbing for ``model``; a model without it is not implemented (coverage refuses it first)."""
    from ..errors import CoverageError

    if model not in FACTORIES:
        raise CoverageError(f"The {model} benchmark is not implemented in mlperf-wizard yet.",
                            "see `mlperf-wizard coverage` for what runs today.")
    return FACTORIES[model]()
