"""Frozen TensorFlow graphs: the format MLCommons publishes its TensorFlow models in (``resnet50_v1.pb``,
BERT's ``model.pb``), written for the project's own TensorFlow definitions and read for every TensorFlow run.

A frozen graph is a serialized ``GraphDef`` whose weights are constants: inputs are placeholders and outputs
are tensors, both found by name (``input_tensor:0``). :func:`freeze` writes one from a Python function of
TensorFlow ops; :func:`load` gives a callable over the named inputs and outputs of any such file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# TensorFlow's C++ logging (oneDNN notices, CPU feature guards) must not reach the user's terminal unasked:
# the level is read when the library loads. A user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2  # noqa: E402

PROTOBUF_LIMIT = 2**31 - 1
"""A GraphDef cannot be serialized past 2 GiB (BERT-large in fp32 is 1.3 GB)."""


def freeze(function: Callable, specs: Sequence[tf.TensorSpec]) -> bytes:
    """The serialized frozen GraphDef of ``function`` traced on ``specs``.

    Each spec's ``name`` names its placeholder (``name:0`` in the file). Outputs keep the names the
    function gives them with ``tf.identity(x, name=...)``. Weights the function builds with ``tf.constant``
    (or captures) become constants of the graph.
    """
    concrete = tf.function(function).get_concrete_function(*specs)
    frozen = convert_variables_to_constants_v2(concrete)
    graph_def = frozen.graph.as_graph_def()
    if graph_def.ByteSize() > PROTOBUF_LIMIT:
        raise ValueError("the frozen graph is larger than protobuf's 2 GiB")
    return graph_def.SerializeToString()


@dataclass
class FrozenGraph:
    """A loaded frozen graph: call it with arrays for :attr:`inputs`, get arrays for :attr:`outputs`."""

    function: Callable
    inputs: list[str]
    outputs: list[str]
    dtypes: list[np.dtype]
    """Each input's placeholder dtype: feeds are cast to it (the official BERT graph takes int32)."""

    def __call__(self, feeds: Sequence[np.ndarray]) -> list[np.ndarray]:
        tensors = [tf.convert_to_tensor(np.asarray(a, dtype=d)) for a, d in zip(feeds, self.dtypes, strict=True)]
        results = self.function(*tensors)
        return [r.numpy() for r in results]


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


def load(graph_def: tf.compat.v1.GraphDef, inputs: Sequence[str], outputs: Sequence[str]) -> FrozenGraph:
    """A callable over ``inputs`` -> ``outputs`` (tensor names) of ``graph_def``, pruned to what they need."""
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    graph = wrapped.graph
    feeds = [graph.get_tensor_by_name(name) for name in inputs]
    fetches = [graph.get_tensor_by_name(name) for name in outputs]
    pruned = wrapped.prune(feeds=feeds, fetches=fetches)
    dtypes = [np.dtype(t.dtype.as_numpy_dtype) for t in feeds]
    return FrozenGraph(pruned, list(inputs), list(outputs), dtypes)
