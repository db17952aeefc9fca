"""BERT for SQuAD (``BertForQuestionAnswering``) as the project's own TensorFlow graph, frozen like MLPerf's.

:func:`graph_def` builds the network from a state dict in Hugging Face's layout (numpy arrays: the synthetic
ONNX model's :func:`~harness.models.synthetic_bert.reference_state`, or the official ``model.pytorch``'s
tensors as numpy) with plain TensorFlow ops and freezes it into a ``GraphDef`` with the interface of
MLCommons' TensorFlow ``model.pb`` (zenodo 3939747), as the reference ``language/bert/tf_SUT.py`` feeds and
fetches it:

- placeholders ``input_ids``, ``input_mask``, ``segment_ids``: int32 [None, 384];
- output ``logits``: float32 [None, 384, 2], the start logits on ``[..., 0]`` and the end logits on ``[..., 1]``.

It computes what ``torch_bert`` and ``synthetic_bert`` compute: word + position (0..383) + token-type
embeddings, LayerNorm (eps 1e-12), post-LN encoder layers with exact (erf) GELU, an additive -10000 bias on
the scores of padding keys, and the QA head.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import ModelError
from . import tf_graph  # before TensorFlow loads: it keeps TensorFlow's C++ logging quiet
from .state_check import check_state
from .synthetic_bert import HEAD_DIM, LAYER_NORM_EPS, MASK_VALUE, SEQ_LEN, normalise_state_dict, state_config

tf = tf_graph.tf
INPUTS = ("input_ids:0", "input_mask:0", "segment_ids:0")
"""Tensor names of the placeholders (int32 [None, 384]) in the order ids, mask, segments: the official model.pb's."""
OUTPUTS = ("logits:0",)
"""Tensor name of the output, float32 [None, 384, 2] (start, end): the official model.pb's."""
_FIX = "use the weights of the official model.pytorch (zenodo 3733896) or --model-source synthetic."


def expected_shapes(config: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """Every weight of BertForQuestionAnswering with ``config`` (:func:`state_config`'s keys) and its shape.

    Hugging Face's layout: dense weights [out, in], embeddings [rows, hidden], no pooler.
    """
    h, i = config["hidden"], config["intermediate"]
    shapes: dict[str, tuple[int, ...]] = {
        "bert.embeddings.word_embeddings.weight": (config["vocab"], h),
        "bert.embeddings.position_embeddings.weight": (config["max_positions"], h),
        "bert.embeddings.token_type_embeddings.weight": (config["type_vocab"], h),
        "bert.embeddings.LayerNorm.weight": (h,),
        "bert.embeddings.LayerNorm.bias": (h,),
    }
    for n in range(config["layers"]):
        p = f"bert.encoder.layer.{n}"
        for name in ("query", "key", "value"):
            shapes[f"{p}.attention.self.{name}.weight"] = (h, h)
            shapes[f"{p}.attention.self.{name}.bias"] = (h,)
        shapes[f"{p}.attention.output.dense.weight"] = (h, h)
        shapes[f"{p}.attention.output.dense.bias"] = (h,)
        shapes[f"{p}.intermediate.dense.weight"] = (i, h)
        shapes[f"{p}.intermediate.dense.bias"] = (i,)
        shapes[f"{p}.output.dense.weight"] = (h, i)
        shapes[f"{p}.output.dense.bias"] = (h,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{p}.{norm}.weight"] = (h,)
            shapes[f"{p}.{norm}.bias"] = (h,)
    shapes["qa_outputs.weight"] = (2, h)
    shapes["qa_outputs.bias"] = (2,)
    return shapes


def _checked(state_dict: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The normalised state as float32 arrays and its config; a mismatch raises ModelError naming the keys."""
    state = normalise_state_dict(state_dict)
    config = state_config(state, _FIX)
    check_state(expected_shapes(config), state, "BertForQuestionAnswering", _FIX)
    if config["max_positions"] < SEQ_LEN:
        raise ModelError(f"This BERT has {config['max_positions']} positions, fewer than the {SEQ_LEN} tokens of a "
                         "SQuAD feature.", _FIX)
    return {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}, config


def graph_def(state_dict: Mapping[str, np.ndarray]) -> bytes:
    """The serialized frozen GraphDef of the BERT whose weights are ``state_dict`` (Hugging Face key names).

    The shape (layers, hidden, heads = hidden / 64, intermediate, vocabulary, positions, token types) is read
    from the arrays; the older spellings :func:`~harness.models.synthetic_bert.normalise_state_dict` accepts
    are accepted. A missing or unexpected key or an array of the wrong shape raises :class:`ModelError`
    naming up to five of each. Each weight becomes a float32 ``Const`` node named by its key, in Hugging
    Face's layout (BERT-large: 1.34 GB, under protobuf's 2 GiB). Interface: :data:`INPUTS` -> :data:`OUTPUTS`.

    The network is frozen by :func:`tf_graph.freeze` with the weights given apart (traced as placeholders,
    then made constants): BERT-large's peak is about three copies beside ``state_dict`` (8 s).
    """
    state, config = _checked(state_dict)
    size = sum(array.nbytes for array in state.values())
    if size > tf_graph.PROTOBUF_LIMIT:
        raise ModelError(f"The BERT weights ({size / 1e9:.2f} GB) do not fit one GraphDef (protobuf's 2 GiB).",
                         "use BERT-large or smaller (fp32 BERT-large is 1.34 GB).")
    hidden, heads = config["hidden"], config["hidden"] // HEAD_DIM

    def network(input_ids: tf.Tensor, input_mask: tf.Tensor, segment_ids: tf.Tensor,
                w: dict[str, tf.Tensor]) -> tf.Tensor:
        batch = tf.shape(input_ids)[0]
        rows = batch * SEQ_LEN

        def dense(prefix: str, x: tf.Tensor) -> tf.Tensor:
            # nn.Linear's weight is [out, in]: x @ W^T + b.
            return tf.matmul(x, w[f"{prefix}.weight"], transpose_b=True) + w[f"{prefix}.bias"]

        def layer_norm(prefix: str, x: tf.Tensor) -> tf.Tensor:
            mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
            return (x - mean) * tf.math.rsqrt(variance + LAYER_NORM_EPS) * w[f"{prefix}.weight"] + w[f"{prefix}.bias"]

        def gelu(x: tf.Tensor) -> tf.Tensor:
            # Exact GELU, 0.5 x (1 + erf(x / sqrt 2)): torch's default and the ONNX stand-in's.
            return 0.5 * x * (1.0 + tf.math.erf(x / np.float32(np.sqrt(2.0))))

        def split(t: tf.Tensor) -> tf.Tensor:  # [B*S, H] -> [B, heads, S, 64]
            return tf.transpose(tf.reshape(t, [batch, SEQ_LEN, heads, HEAD_DIM]), [0, 2, 1, 3])

        x = (tf.gather(w["bert.embeddings.word_embeddings.weight"], input_ids)
             + tf.gather(w["bert.embeddings.position_embeddings.weight"], tf.range(SEQ_LEN))
             + tf.gather(w["bert.embeddings.token_type_embeddings.weight"], segment_ids))
        # The encoder works on [B*S, H]: every dense layer is one 2-D MatMul.
        x = layer_norm("bert.embeddings.LayerNorm", tf.reshape(x, [rows, hidden]))
        # [B, 1, 1, S]: 0 for real tokens, -10000 for padding keys, as torch_bert computes it.
        mask_bias = ((1.0 - tf.cast(input_mask, tf.float32)) * MASK_VALUE)[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(HEAD_DIM))
        for n in range(config["layers"]):
            p = f"bert.encoder.layer.{n}"
            q, k, v = (split(dense(f"{p}.attention.self.{name}", x)) for name in ("query", "key", "value"))
            scores = tf.matmul(q, k, transpose_b=True) * scale + mask_bias
            context = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
            context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [rows, hidden])
            x = layer_norm(f"{p}.attention.output.LayerNorm", dense(f"{p}.attention.output.dense", context) + x)
            h = gelu(dense(f"{p}.intermediate.dense", x))
            x = layer_norm(f"{p}.output.LayerNorm", dense(f"{p}.output.dense", h) + x)
        logits = tf.reshape(dense("qa_outputs", x), [batch, SEQ_LEN, 2])
        return tf.identity(logits, name=_OUTPUT_NODE)

    specs = [tf.TensorSpec([None, SEQ_LEN], tf.int32, name=_node(name)) for name in INPUTS]
    return tf_graph.freeze(network, specs, state)


def _node(tensor_name: str) -> str:
    return tensor_name.split(":")[0]


_OUTPUT_NODE = _node(OUTPUTS[0])
