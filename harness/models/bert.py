"""BERT-large on SQuAD v1.1: inputs, response encoding and the model's I/O contract."""

from __future__ import annotations

import numpy as np

from ..backends.base import Backend
from .io import ModelIO, NameSet
from .synthetic_bert import FP32_INPUTS, INT8_INPUTS, OUTPUTS, SEQ_LEN

INPUTS = ("input_ids", "input_mask", "segment_ids")
START, END = "start_logits", "end_logits"
IO = ModelIO(inputs=INPUTS, outputs=(START, END), files={"onnx": (
    NameSet("fp32 model.onnx", dict(zip(INPUTS + (START, END), FP32_INPUTS + OUTPUTS, strict=True))),
    NameSet("int8 bert_large_v1_1_fake_quant.onnx",
            dict(zip(INPUTS + (START, END), INT8_INPUTS + OUTPUTS, strict=True)))),
    "tensorflow": (NameSet("model.pb (MLCommons)", {**{n: f"{n}:0" for n in INPUTS}, START: "logits:0",
                                                    END: "logits:0"}, parts={START: 0, END: 1}),)})
"""Token ids, attention mask and segment ids (int64 [N, 384]) in; start and end logits (float32) out."""


class BertTask:
    """Turns a batch of SQuAD features into MLPerf responses.

    A response is what the reference SUT sends: the logits as float32 [384, 2] per sample, start and end
    interleaved (``np.stack([start, end], axis=-1)``), i.e. one row of 768 floats per sample here.
    """

    outputs = IO.outputs
    response_width = 2 * SEQ_LEN

    def __init__(self, backend: Backend):
        self.backend = backend

    def infer(self, batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """``batch`` is (input_ids, input_mask, segment_ids), int64 [N, 384] each; returns float32 [N, 768]."""
        result = self.backend.run(dict(zip(INPUTS, batch, strict=True)))
        start, end = result[START], result[END]
        logits = np.empty(start.shape + (2,), dtype=np.float32)
        logits[..., 0] = start
        logits[..., 1] = end
        return logits.reshape(len(logits), -1)
