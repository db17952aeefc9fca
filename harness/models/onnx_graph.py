"""What the synthetic model builders share: the record of a build and a seeded ONNX graph accumulator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper


@dataclass(frozen=True)
class BuildInfo:
    """What a synthetic builder wrote."""

    path: Path
    """The model file (written atomically; self-contained, no external data)."""
    variant: str
    """full, or tiny (the same code with fewer layers and channels, for tests)."""
    seed: int
    """Seed of the weights; same seed, variant and precision give a byte-identical file."""
    parameters: int
    """Number of weights and biases (of the fp32 graph for a quantized model)."""
    size_bytes: int
    """Size of the file."""
    seconds: float
    """Wall time of the build, saving (and quantizing) included."""
    md5: str
    """md5 of the file, usable as a cache key."""
    precision: str = "fp32"
    """fp32, or int8 for a quantized model."""


class GraphBuilder:
    """Accumulates nodes and initializers; the model's weights are drawn from one seeded generator in graph
    order, so the same seed gives the same bytes. Subclasses add the layers of their architecture."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.parameters = 0

    def constant(self, name: str, array: np.ndarray) -> str:
        """An initializer that is not a weight (shapes, axes, thresholds, anchors): not counted."""
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def add_weight(self, name: str, array: np.ndarray) -> str:
        """A weight or bias: counted in :attr:`parameters`."""
        self.parameters += array.size
        return self.constant(name, array)
