"""RetinaNet on OpenImages: inputs, response encoding and the model's I/O contract."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..backends.base import Backend
from .io import ModelIO, NameSet

INPUT = "image"
BOXES = "boxes"
SCORES = "scores"
LABELS = "labels"
IO = ModelIO(inputs=(INPUT,), outputs=(BOXES, SCORES, LABELS), files={
    "onnx": (NameSet("resnext50_32x4d_fpn.onnx (MLCommons)",
                     {INPUT: "images", BOXES: "boxes", SCORES: "scores", LABELS: "labels"}),),
    "tensorflow": (NameSet("mlperf-wizard's RetinaNet graph (harness.models.tf_retinanet)",
                           {INPUT: "images:0", BOXES: "boxes:0", SCORES: "scores:0", LABELS: "labels:0"}),)})
"""One 800x800 RGB image in; its detections (boxes x1 y1 x2 y2 in pixels, scores descending, labels) out."""
IMAGE_SIZE = 800
SCORE_THRESHOLD = 0.05
DETECTION_WIDTH = 7
"""Floats per detection in a response."""


def encode_detections(qsl_index: int, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, *,
                      image_size: int = IMAGE_SIZE, score_threshold: float = SCORE_THRESHOLD) -> np.ndarray:
    """One sample's MLPerf response, as the reference's ``PostProcessOpenImagesRetinanet`` builds it.

    ``boxes`` are x1, y1, x2, y2 in pixels of the model's square input, ``scores`` in the model's
    (descending) order. Each detection becomes 7 float32 ``[qsl_index, ymin, xmin, ymax, xmax, score,
    label]`` with coordinates divided by ``image_size``; like the reference, the list stops at the
    first score below ``score_threshold``. Returns a flat float32 array of 7*K values (K may be 0).
    """
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    below = np.flatnonzero(scores < score_threshold)
    count = int(below[0]) if below.size else scores.size
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)[:count]
    out = np.empty((count, DETECTION_WIDTH), dtype=np.float32)
    out[:, 0] = qsl_index
    # x1, y1, x2, y2 -> ymin, xmin, ymax, xmax, normalised (the square input makes height = width).
    scale = np.float32(image_size)
    out[:, 1] = boxes[:, 1] / scale
    out[:, 2] = boxes[:, 0] / scale
    out[:, 3] = boxes[:, 3] / scale
    out[:, 4] = boxes[:, 2] / scale
    out[:, 5] = scores[:count]
    out[:, 6] = np.asarray(labels).reshape(-1)[:count]
    return out.reshape(-1)


class RetinaNetTask:
    """Turns a batch of preprocessed images into MLPerf responses: a variable-length detection list per
    sample.

    Contract with the SUT: ``infer(batch, indices)`` takes the stacked samples ([N,3,800,800] float32,
    RGB in [0,1]) and the QSL index of each (``QuerySample.index``, in batch order), and returns one
    flat float32 array per sample holding 7 floats per detection, ``[qsl_idx, ymin, xmin, ymax, xmax,
    score, label]`` (coordinates normalised by 800, labels = ``openimages-mlperf.json`` category ids),
    which is what the reference writes and what ``accuracy-openimages.py`` reads. The first column must
    be the sample's QSL index: the accuracy script compares it with the log's ``qsl_idx`` (it prints an
    error for every mismatch) and TEST01 compares responses byte for byte. ``indices`` may be omitted
    only where responses are thrown away (warm-up, timing): the first column is then
    :data:`UNKNOWN_INDEX`.

    The official model (and the synthetic one) take batch 1, so a batch runs image by image.
    """

    outputs = IO.outputs
    layout = "NCHW"
    needs_indices = True
    """The SUT must call ``infer(batch, [s.index for s in samples])``."""
    UNKNOWN_INDEX = -1.0

    def __init__(self, backend: Backend):
        self.backend = backend

    def infer(self, batch: np.ndarray, indices: Sequence[int] | None = None) -> list[np.ndarray]:
        if indices is not None and len(indices) != len(batch):
            raise ValueError(f"got {len(indices)} QSL indices for a batch of {len(batch)} samples")
        responses = []
        for i in range(len(batch)):
            out = self.backend.run({INPUT: batch[i:i + 1]})
            qsl_index = self.UNKNOWN_INDEX if indices is None else indices[i]
            responses.append(encode_detections(qsl_index, out[BOXES], out[SCORES], out[LABELS]))
        return responses
