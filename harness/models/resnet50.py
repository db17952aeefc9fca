"""ResNet50 v1.5 on ImageNet: inputs, response encoding and the model's I/O contract."""

from __future__ import annotations

import numpy as np

from ..backends.base import Backend

INPUT = "input_tensor:0"
ARGMAX = "ArgMax:0"


class ResNet50Task:
    """Turns a batch of preprocessed images into MLPerf responses: one float32 class id per sample."""

    outputs = (ARGMAX,)
    response_width = 1
    layout = "NCHW"

    def __init__(self, backend: Backend, *, label_offset: int = 1):
        self.backend = backend
        # The official ONNX model has 1001 classes with 0 = background: ImageNet class = argmax - 1.
        self.label_offset = label_offset

    def infer(self, batch: np.ndarray) -> np.ndarray:
        classes = self.backend.run({INPUT: batch})[ARGMAX]
        out = classes.astype(np.float32).reshape(-1, 1)
        out -= self.label_offset
        return out
