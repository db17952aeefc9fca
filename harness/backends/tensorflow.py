"""TensorFlow backend: a frozen graph (MLCommons' TensorFlow format) run through TensorFlow's runtime.

- Files: MLCommons' ``resnet50_v1.pb`` and BERT's ``model.pb`` load as published. The synthetic stand-ins
  are frozen graphs with the same interface, built by the project's own TensorFlow definitions
  (``harness/models/tf_*.py``) from the seeded ONNX file's weights, so TensorFlow runs the network the
  other backends run. RetinaNet has no official TensorFlow file; its graph is the project's definition.
- Names and layouts come from the model's ``tensorflow`` name sets (:mod:`harness.models.io`): ResNet50
  takes NHWC images; BERT's ``logits`` [N,384,2] gives the start and end logits. Feeds are cast to each
  placeholder's dtype (the official BERT graph takes int32).
- Threads: ``--threads`` sets the session's intra-op pool; one inter-op thread (the graphs are a chain).
- Grappler (TensorFlow's graph optimiser) is off for graphs over 256 MB (BERT-large): it copies the weights
  for each pass, which took BERT-large past 24 GB here.
- Devices: the CPU; ``cuda``/``cuda:N`` only where this TensorFlow sees that GPU (``tensorflow-cpu`` never
  does): otherwise the run stops before LoadGen with the reason, never on the CPU instead.
- fp32 only.
- TensorFlow's C++ log lines go to the run's log (the child's stderr), never to the user's terminal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CoverageError, ModelError
from ..models import tf_graph
from .base import BackendBase

tf = tf_graph.tf


def tf_device(device: str) -> str:
    """TensorFlow's name for ``device`` (``/CPU:0``, ``/GPU:N``), checked now."""
    if device == "cpu":
        return "/CPU:0"
    gpus = tf.config.list_physical_devices("GPU")
    index = int(device.partition(":")[2] or 0)
    if not gpus:
        build = "tensorflow-cpu" if not tf.test.is_built_with_cuda() else "this TensorFlow build"
        raise CoverageError(f"--device {device} asked for CUDA, but {build} {tf.__version__} sees no GPU.",
                            "install TensorFlow's CUDA build (`pip install 'tensorflow[and-cuda]'`, CUDA 12) "
                            "where it fits the driver, or use --device cpu.")
    if index >= len(gpus):
        raise CoverageError(f"--device {device}: TensorFlow sees {len(gpus)} GPU(s).",
                            f"use --device cuda:0 .. cuda:{len(gpus) - 1}.")
    return f"/GPU:{index}"


class TensorFlowBackend(BackendBase):
    name = "tensorflow"
    version = tf.__version__

    def __init__(self, model_path: Path, *, device: str, threads: int | None, outputs: tuple[str, ...],
                 model: str, precision: str = "fp32"):
        from ..models.families import family

        if precision != "fp32":
            raise CoverageError(f"The tensorflow backend computes in fp32 only, not {precision}.",
                                "use --precision fp32, or --backend pytorch for other precisions.")
        self.device = device
        self.placement = tf_device(device)
        path = Path(model_path)
        try:
            graph_def = tf_graph.parse(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path} is not a readable TensorFlow frozen graph ({exc}).",
                             "check the file (a truncated download?) or use --model-source synthetic.") from None
        io = family(model).io
        io.check_outputs(outputs, model)
        nodes = tf_graph.node_names(graph_def)
        candidates = {n for s in io.files.get("tensorflow", ()) for n in s.names.values()}
        present = sorted(n for n in candidates if n.rpartition(":")[0] in nodes)
        self.names = io.name_set("tensorflow", tf_graph.placeholders(graph_def), present, path)
        self.image_layout = self.names.layout
        self.inputs = list(io.inputs)
        self.outputs = list(outputs)
        fetches = list(dict.fromkeys(self.names.names[o] for o in outputs))
        self._fetch_index = {o: fetches.index(self.names.names[o]) for o in outputs}
        try:
            self.graph = tf_graph.load(graph_def, [self.names.names[i] for i in self.inputs], fetches,
                                       threads=threads, device=self.placement)
        except (ValueError, KeyError, TypeError) as exc:  # a name present but not a tensor, bad imports
            raise ModelError(f"TensorFlow could not load {path.name} ({str(exc).splitlines()[0][:200]}).",
                             "use the official model file or --model-source synthetic.") from None
        if not self.graph.optimised:
            self.notices = (f"{path.name} is larger than {tf_graph.LARGE_GRAPH >> 20} MB: TensorFlow's graph "
                            "optimiser (Grappler) is off for it, since it would copy the weights for each pass.",)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.graph([feeds[name] for name in self.inputs])
        return {o: self.names.pick(o, results[self._fetch_index[o]]) for o in self.outputs}
