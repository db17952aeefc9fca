"""ResNet50 v1.5 as the project's own TensorFlow graph, frozen in the interface of MLCommons' ``resnet50_v1.pb``.

The official TensorFlow file is a frozen graph: ``input_tensor:0`` float32 [N,224,224,3] (NHWC, the
reference's preprocessing: RGB, mean-subtracted, not divided by the standard deviation) to ``ArgMax:0``
int64 [N] (1001 classes, 0 = background) and ``softmax_tensor:0``. The TensorFlow backend loads that file
as it is. For the synthetic stand-in, :func:`graph_def` builds the same interface from a torchvision-layout
state dict (:func:`harness.models.synthetic_resnet50.reference_state`: the seeded ONNX file's weights), so
that TensorFlow runs the network ONNX Runtime and PyTorch run.

BatchNorm is folded into the convolutions when the graph is built. Padding is explicit and symmetric (as
PyTorch and the ONNX file pad), not TensorFlow's "SAME", which pads a stride-2 layer asymmetrically.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import tf_graph
from .state_check import check_state
from .synthetic_resnet50 import BN_EPS, IMAGE_SIZE, NUM_CLASSES

tf = tf_graph.tf
INPUT = "input_tensor:0"
ARGMAX = "ArgMax:0"
SOFTMAX = "softmax_tensor:0"
_STAGE_WIDTHS = (64, 128, 256, 512)
_EXPANSION = 4
_FIX = "use the synthetic model (--model-source synthetic) or the official resnet50_v1.pb."


def _layout(state: Mapping[str, np.ndarray]) -> tuple[tuple[int, ...], int]:
    """(blocks per stage, width divisor) of a torchvision-layout ResNet50 state dict."""
    from ..errors import ModelError

    try:
        blocks = tuple(len({k.split(".")[1] for k in state if k.startswith(f"layer{s}.")}) for s in (1, 2, 3, 4))
        divisor = 64 // int(state["conv1.weight"].shape[0])
    except (KeyError, ValueError, ZeroDivisionError, IndexError, AttributeError):
        raise ModelError("These weights are not a ResNet50 state dict (no conv1.weight).", _FIX) from None
    if 0 in blocks or divisor < 1:
        raise ModelError("These weights are not a ResNet50 state dict (a stage without blocks).", _FIX)
    return blocks, divisor


def expected_shapes(blocks: tuple[int, ...], divisor: int) -> dict[str, tuple[int, ...]]:
    """Every tensor of the torchvision-layout state dict of this ResNet50, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_bn(conv: str, bn: str, in_ch: int, out_ch: int, kernel: int) -> None:
        shapes[conv] = (out_ch, in_ch, kernel, kernel)
        for part in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{bn}.{part}"] = (out_ch,)

    stem = 64 // divisor
    conv_bn("conv1.weight", "bn1", 3, stem, 7)
    ch = stem
    for stage, (n, width) in enumerate(zip(blocks, _STAGE_WIDTHS, strict=True), start=1):
        width //= divisor
        for block in range(n):
            prefix = f"layer{stage}.{block}"
            conv_bn(f"{prefix}.conv1.weight", f"{prefix}.bn1", ch, width, 1)
            conv_bn(f"{prefix}.conv2.weight", f"{prefix}.bn2", width, width, 3)
            conv_bn(f"{prefix}.conv3.weight", f"{prefix}.bn3", width, width * _EXPANSION, 1)
            if block == 0:
                conv_bn(f"{prefix}.downsample.0.weight", f"{prefix}.downsample.1", ch, width * _EXPANSION, 1)
            ch = width * _EXPANSION
    shapes["fc.weight"] = (NUM_CLASSES, ch)
    shapes["fc.bias"] = (NUM_CLASSES,)
    return shapes


def graph_def(state: Mapping[str, np.ndarray]) -> bytes:
    """The frozen GraphDef (serialized) of the ResNet50 of ``state``, in the official file's interface.

    Raises :class:`ModelError` naming missing, unexpected or wrongly shaped tensors."""
    state = {k: np.asarray(v) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    blocks, divisor = _layout(state)
    check_state(expected_shapes(blocks, divisor), state, "the ResNet50 v1.5 architecture", _FIX)

    def conv(x, name: str, bn: str, stride: int = 1, relu: bool = True):
        kernel, bias = tf_graph.folded_conv(state, name, bn, BN_EPS)
        pad = kernel.shape[0] // 2
        y = tf.nn.conv2d(x, tf.constant(kernel), stride, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        y = tf.nn.bias_add(y, tf.constant(bias))
        return tf.nn.relu(y) if relu else y

    def network(images):
        x = conv(images, "conv1.weight", "bn1", 2)
        x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=float("-inf"))
        x = tf.nn.max_pool2d(x, 3, 2, "VALID")
        for stage, n in enumerate(blocks, start=1):
            for block in range(n):
                p = f"layer{stage}.{block}"
                stride = 2 if stage > 1 and block == 0 else 1
                y = conv(x, f"{p}.conv1.weight", f"{p}.bn1")
                y = conv(y, f"{p}.conv2.weight", f"{p}.bn2", stride)
                y = conv(y, f"{p}.conv3.weight", f"{p}.bn3", relu=False)
                if f"{p}.downsample.0.weight" in state:
                    x = conv(x, f"{p}.downsample.0.weight", f"{p}.downsample.1", stride, relu=False)
                x = tf.nn.relu(x + y)
        pooled = tf.reduce_mean(x, axis=[1, 2])
        logits = tf.matmul(pooled, tf.constant(state["fc.weight"].T.astype(np.float32))) + state["fc.bias"]
        return (tf.identity(tf.argmax(logits, axis=1), name=ARGMAX.split(":")[0]),
                tf.identity(tf.nn.softmax(logits), name=SOFTMAX.split(":")[0]))

    spec = tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32, name=INPUT.split(":")[0])
    return tf_graph.freeze(network, [spec])

