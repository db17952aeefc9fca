"""BERT-large on SQuAD v1.1: inputs, response encoding and the model's I/O contract."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..backends.base import Backend
from ..errors import ModelError
from .synthetic_bert import FP32_INPUTS, INT8_INPUTS, OUTPUTS, SEQ_LEN

INPUT_NAME_SETS = {"fp32": FP32_INPUTS, "int8": INT8_INPUTS}
"""The official models' input names (ids, mask, segments): fp32 ``model.onnx``, int8 fake-quant file."""


def detect_input_names(names: Sequence[str] | None) -> tuple[str, str, str]:
    """The model's names for (token ids, attention mask, segment ids), from its input names.

    ``None`` (a backend that does not say) means the fp32 names. Raises :class:`ModelError` for a model
    whose inputs are neither official set.
    """
    if names is None:
        return FP32_INPUTS
    for candidate in INPUT_NAME_SETS.values():
        if set(names) == set(candidate):
            return candidate
    raise ModelError(
        f"This BERT model's inputs are {', '.join(names)}; expected {', '.join(FP32_INPUTS)} (fp32 model.onnx) "
        f"or {', '.join(INT8_INPUTS)} (int8 bert_large_v1_1_fake_quant.onnx).",
        "use an official BERT file, the synthetic model, or a model with the same input signature.",
    )


class BertTask:
    """Turns a batch of SQuAD features into MLPerf responses.

    A response is what the reference SUT sends: the logits as float32 [384, 2] per sample, start and end
    interleaved (``np.stack([start, end], axis=-1)``), i.e. one row of 768 floats per sample here.
    """

    outputs = OUTPUTS
    response_width = 2 * SEQ_LEN

    def __init__(self, backend: Backend):
        self.backend = backend
        self.input_names = detect_input_names(getattr(backend, "input_names", None))

    def infer(self, batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """``batch`` is (input_ids, input_mask, segment_ids), int64 [N, 384] each; returns float32 [N, 768]."""
        result = self.backend.run(dict(zip(self.input_names, batch, strict=True)))
        start, end = result[OUTPUTS[0]], result[OUTPUTS[1]]
        logits = np.empty(start.shape + (2,), dtype=np.float32)
        logits[..., 0] = start
        logits[..., 1] = end
        return logits.reshape(len(logits), -1)
