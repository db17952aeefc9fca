"""ResNet50 v1.5 on ImageNet: inputs, response encoding and the model's I/O contract."""

from __future__ import annotations

import numpy as np

from ..backends.base import Backend
from .io import ModelIO, NameSet

INPUT = "image"
CLASS = "class"
IO = ModelIO(inputs=(INPUT,), outputs=(CLASS,), files={
    "onnx": (NameSet("resnet50_v1.onnx (MLCommons)", {INPUT: "input_tensor:0", CLASS: "ArgMax:0"}),),
    "tensorflow": (NameSet("resnet50_v1.pb (MLCommons)", {INPUT: "input_tensor:0", CLASS: "ArgMax:0"},
                           layout="NHWC"),)})
"""A preprocessed image in (NCHW, or NHWC where the file's name set says so); the arg-max class of 1001
(0 = background) out."""


class ResNet50Task:
    """Turns a batch of preprocessed images into MLPerf responses: one float32 class id per sample."""

    outputs = IO.outputs
    response_width = 1

    def __init__(self, backend: Backend, *, label_offset: int = 1):
        self.backend = backend
        # The official ONNX model has 1001 classes with 0 = background: ImageNet class = argmax - 1.
        self.label_offset = label_offset

    @property
    def layout(self) -> str:
        """The images' layout: the backend's model file decides (NCHW unless it says otherwise)."""
        return getattr(self.backend, "image_layout", "NCHW")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        classes = self.backend.run({INPUT: batch})[CLASS]
        out = classes.astype(np.float32).reshape(-1, 1)
        out -= self.label_offset
        return out
