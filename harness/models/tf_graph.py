"""Frozen TensorFlow graphs: the format MLCommons publishes its TensorFlow models in (``resnet50_v1.pb``,
BERT's ``model.pb``), written for the project's own TensorFlow definitions and read for every TensorFlow run.

A frozen graph is a serialized ``GraphDef`` whose weights are constants: inputs are placeholders and outputs
are tensors, both found by name (``input_tensor:0``). :func:`freeze` writes one from a Python function of
TensorFlow ops; :func:`load` gives a callable over the named inputs and outputs of any such file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

# TensorFlow's C++ logging (oneDNN notices, CPU feature guards) must not reach the user's terminal unasked:
# the level is read when the library loads. A user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2  # noqa: E402

PROTOBUF_LIMIT = 2**31 - 1
"""A GraphDef cannot be serialized past 2 GiB (BERT-large in fp32 is 1.3 GB)."""


def freeze(function: Callable, specs: Sequence[tf.TensorSpec],
           weights: Mapping[str, np.ndarray] | None = None) -> bytes:
    """The serialized frozen GraphDef of ``function`` traced on ``specs``.

    Each spec's ``name`` names its placeholder (``name:0`` in the file). Outputs keep the names the
    function gives them with ``tf.identity(x, name=...)``. Weights the function builds with ``tf.constant``
    (or captures) become constants of the graph.

    With ``weights`` (name -> float32 array), the function is called as ``function(*inputs, weights)`` with
    a dict of tensors: each is traced as a placeholder of its shape, then becomes a ``Const`` node named by
    its key holding the array's bytes. Large models need this: built as ``tf.constant`` inside the traced
    function, BERT-large's weights were copied some fifteen times by tracing and freezing (a 20 GB peak,
    150 s on 2 cores), this way about three times (8 s).
    """
    weights = dict(weights or {})
    keys = sorted(weights)
    if sum(a.nbytes for a in weights.values()) > PROTOBUF_LIMIT:
        raise ValueError("the weights are larger than protobuf's 2 GiB")
    n = len(specs)

    def traced(*args):
        return function(*args[:n], dict(zip(keys, args[n:], strict=True))) if keys else function(*args)

    specs = list(specs) + [tf.TensorSpec(weights[k].shape, tf.float32, name=k) for k in keys]
    concrete = tf.function(traced).get_concrete_function(*specs)
    frozen = convert_variables_to_constants_v2(concrete)
    graph_def = frozen.graph.as_graph_def()
    if keys:
        _fill_weights(graph_def, weights)
    if graph_def.ByteSize() > PROTOBUF_LIMIT:
        raise ValueError("the frozen graph is larger than protobuf's 2 GiB")
    return graph_def.SerializeToString()


def hwio(weight: np.ndarray) -> np.ndarray:
    """A conv kernel from PyTorch's OIHW to TensorFlow's HWIO (a grouped conv's I is already the group's)."""
    return np.ascontiguousarray(np.asarray(weight).transpose(2, 3, 1, 0), dtype=np.float32)


def folded_conv(state: Mapping[str, np.ndarray], conv_weight: str, bn: str, eps: float) -> tuple[np.ndarray,
                                                                                                 np.ndarray]:
    """The HWIO kernel and bias of the bias-free conv ``conv_weight`` with its BatchNorm ``bn`` (``bn.weight``,
    ``.bias``, ``.running_mean``, ``.running_var``) folded in, computed in float64 and rounded once."""
    scale = state[f"{bn}.weight"].astype(np.float64) / np.sqrt(state[f"{bn}.running_var"].astype(np.float64) + eps)
    kernel = state[conv_weight].astype(np.float64) * scale.reshape(-1, 1, 1, 1)
    bias = state[f"{bn}.bias"].astype(np.float64) - state[f"{bn}.running_mean"].astype(np.float64) * scale
    return hwio(kernel), bias.astype(np.float32)


def _fill_weights(graph: tf.compat.v1.GraphDef, weights: Mapping[str, np.ndarray]) -> None:
    """Turn each weight's placeholder (named by its key) into a float32 constant holding its array."""
    filled = set()
    for node in graph.node:
        if node.op != "Placeholder" or node.name not in weights:
            continue
        array = weights[node.name]
        node.op = "Const"
        node.ClearField("attr")
        node.attr["dtype"].type = tf.float32.as_datatype_enum
        tensor = node.attr["value"].tensor
        tensor.dtype = tf.float32.as_datatype_enum
        tensor.tensor_shape.CopyFrom(tf.TensorShape(array.shape).as_proto())
        tensor.tensor_content = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        filled.add(node.name)
    if filled != set(weights):  # tracing renamed a placeholder: a TensorFlow change this module must follow
        raise RuntimeError(f"no placeholder for the weights {sorted(set(weights) - filled)[:5]} in the traced graph")


LARGE_GRAPH = 256 * 2**20
"""Graphs larger than this run without Grappler, TensorFlow's graph optimiser: it copies the graph, weights
included, for its passes, and BERT-large's 1.3 GB graph then needs more than 24 GB (measured here)."""


@dataclass
class FrozenGraph:
    """A loaded frozen graph: call it with arrays for :attr:`inputs`, get arrays for :attr:`outputs`."""

    session: object
    run: Callable
    inputs: list[str]
    outputs: list[str]
    dtypes: list[np.dtype]
    """Each input's placeholder dtype: feeds are cast to it (the official BERT graph takes int32)."""
    optimised: bool
    """Whether Grappler optimises the graph (not for graphs over :data:`LARGE_GRAPH`)."""

    def __call__(self, feeds: Sequence[np.ndarray]) -> list[np.ndarray]:
        return list(self.run(*[np.asarray(a, dtype=d) for a, d in zip(feeds, self.dtypes, strict=True)]))


def parse(data: bytes) -> tf.compat.v1.GraphDef:
    """A GraphDef from ``data``; raises ValueError when it is not one (protobuf's DecodeError is one)."""
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as exc:  # google.protobuf.message.DecodeError, RuntimeWarning-as-error
        raise ValueError(f"not a TensorFlow GraphDef ({type(exc).__name__})") from None
    if not graph_def.node:
        raise ValueError("not a TensorFlow GraphDef (no nodes)")
    return graph_def


def placeholders(graph_def: tf.compat.v1.GraphDef) -> list[str]:
    """The tensor names (``name:0``) of the graph's placeholders, in file order."""
    return [f"{n.name}:0" for n in graph_def.node if n.op == "Placeholder"]


def node_names(graph_def: tf.compat.v1.GraphDef) -> set[str]:
    return {n.name for n in graph_def.node}


def load(graph_def: tf.compat.v1.GraphDef, inputs: Sequence[str], outputs: Sequence[str], *,
         threads: int | None = None, device: str | None = None) -> FrozenGraph:
    """A callable over ``inputs`` -> ``outputs`` (tensor names) of ``graph_def``, in a session of its own with
    ``threads`` intra-op threads (TensorFlow's default: all cores) and one inter-op thread (these graphs are
    chains), its ops placed on ``device`` (``/GPU:0``) where given. Safe to call from several threads."""
    graph = tf.Graph()
    with graph.as_default(), tf.device(device):
        tf.compat.v1.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads or 0, inter_op_parallelism_threads=1)
    optimised = graph_def.ByteSize() <= LARGE_GRAPH
    if not optimised:
        config.graph_options.rewrite_options.disable_meta_optimizer = True
    session = tf.compat.v1.Session(graph=graph, config=config)
    feeds = [graph.get_tensor_by_name(name) for name in inputs]
    fetches = [graph.get_tensor_by_name(name) for name in outputs]
    dtypes = [np.dtype(t.dtype.as_numpy_dtype) for t in feeds]
    return FrozenGraph(session, session.make_callable(fetches, feed_list=feeds), list(inputs), list(outputs),
                       dtypes, optimised)
