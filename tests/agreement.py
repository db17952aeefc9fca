"""What "the same answers" means when two backends (or two precisions) run the same synthetic weights: one
definition per task, shared by the consistency tests."""

from __future__ import annotations

import numpy as np

from harness.datasets.openimages import SyntheticOpenImages
from harness.datasets.squad import SyntheticSquad


def assert_same_spans(reference, other, atol: float, count: int = 4) -> None:
    """BERT: logits within ``atol`` and the same answer span (start and end arg-max) for each sample."""
    data = SyntheticSquad(count)
    samples = [data.sample(i) for i in range(count)]
    batch = tuple(np.stack([s[k] for s in samples]) for k in range(3))
    expected, got = reference.infer(batch), other.infer(batch)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)
    spans = [(np.argmax(r[0::2]), np.argmax(r[1::2])) for r in expected]
    assert [(np.argmax(r[0::2]), np.argmax(r[1::2])) for r in got] == spans


def assert_same_detections(reference, other, atol: float) -> None:
    """RetinaNet: the same detections (count, labels, order) with boxes and scores within ``atol``, as
    LoadGen receives them (7 floats each, the first one the QSL index)."""
    image = SyntheticOpenImages(1).sample(0)[None]
    (expected,), (got,) = reference.infer(image, [0]), other.infer(image, [0])
    assert expected.size > 0 and got.shape == expected.shape
    np.testing.assert_allclose(got.reshape(-1, 7), expected.reshape(-1, 7), atol=atol, rtol=0)
