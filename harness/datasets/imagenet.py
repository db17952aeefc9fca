"""ImageNet 2012 validation for ResNet50: the synthetic generator (real import arrives separately).

Synthetic samples are what the reference preprocessing produces (224x224 RGB, per-channel means
subtracted, float32), generated from a seeded random image per index, so any sample can be rebuilt
on its own and two runs see the same data.
"""

from __future__ import annotations

import numpy as np

# The reference's RGB means (no std division), see MLPERF_FACTS.md.
MEANS = np.array([123.68, 116.78, 103.94], dtype=np.float32)
NUM_CLASSES = 1000


class SyntheticImageNet:
    """Generated ImageNet-shaped samples with seeded labels. Not an MLPerf dataset."""

    synthetic = True

    def __init__(self, count: int, *, layout: str = "NCHW", seed: int = 0):
        self.count = count
        self.layout = layout
        self.seed = seed
        self.description = f"synthetic ImageNet ({count} generated images, seeded random pixels and labels)"

    def sample(self, index: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, index))
        image = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8).astype(np.float32)
        image -= MEANS
        if self.layout == "NCHW":
            image = np.ascontiguousarray(image.transpose(2, 0, 1))
        return image

    def label(self, index: int) -> int:
        return int(np.random.default_rng((self.seed, index, 1)).integers(0, NUM_CLASSES))

    def labels(self) -> np.ndarray:
        return np.array([self.label(i) for i in range(self.count)], dtype=np.int64)
