"""RetinaNet ResNeXt50-32x4d FPN as the project's own TensorFlow graph, frozen to a GraphDef.

MLCommons publishes no TensorFlow RetinaNet, so the TensorFlow backend runs this definition: :func:`graph_def`
builds it from a torchvision-layout state dict (:func:`harness.models.synthetic_retinanet.reference_state`:
the seeded ONNX file's weights; old key spellings accepted) and freezes it, so that TensorFlow runs the network
ONNX Runtime and PyTorch run and gives the same detections.

Interface (the ONNX model's): placeholder ``images:0`` float32 [1,3,800,800], NCHW RGB in [0,1] (normalised
and transposed to NHWC inside) to ``boxes:0`` float32 [K,4] (x1, y1, x2, y2 in pixels), ``scores:0`` float32
[K] (descending) and ``labels:0`` int64 [K], K <= 300. The side is fixed: both variants (full and tiny) take
800x800 images, so the graph is traced for that side and its anchors are constants, as in the ONNX file.

The layers are ``torch_retinanet``'s in TensorFlow ops: NHWC convolutions with HWIO kernels (the 3x3 convs
of the ResNeXt blocks as TensorFlow's grouped convolution: the kernel's input depth is the group's),
frozen BatchNorm folded into the convolutions when the graph is built, explicit symmetric padding (as
PyTorch pads; TensorFlow's "SAME" pads a stride-2 layer asymmetrically), FPN nearest upsampling as
``F.interpolate(size=...)``, P6 from P5 and P7 from ReLU(P6), heads shared by the five levels. The
post-processing is torchvision's in float32: per level the 1000 best sigmoid scores over (H, W, A, C)
above 0.05, BoxCoder decoding (dw/dh clamped), clipping to the image, per-class NMS at IoU 0.5 as one NMS
on class-offset boxes, the 300 best. fp32 only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import ModelError
from . import tf_graph
from .state_check import check_state
from .synthetic_retinanet import (
    BBOX_XFORM_CLIP,
    BN_EPS,
    DETECTIONS_PER_IMAGE,
    IMAGE_MEAN,
    IMAGE_SIZE,
    IMAGE_STD,
    NMS_IOU,
    SCORE_THRESHOLD,
    TOPK_CANDIDATES,
    Layout,
    anchors,
    layout_of,
    upgrade_keys,
)

tf = tf_graph.tf
INPUT = "images:0"
BOXES = "boxes:0"
SCORES = "scores:0"
LABELS = "labels:0"
OUTPUTS = (BOXES, SCORES, LABELS)
SPECS = (tf.TensorSpec([1, 3, IMAGE_SIZE, IMAGE_SIZE], tf.float32, name=INPUT.split(":")[0]),)
"""The graph's one placeholder."""
_WHAT = "the RetinaNet ResNeXt50-32x4d FPN architecture"
_FIX = "use torchvision-layout RetinaNet weights, such as the synthetic model's (--model-source synthetic)."
_BODY = "backbone.body"
_HEADS = (("head.classification_head", "cls_logits"), ("head.regression_head", "bbox_reg"))


def expected_shapes(layout: Layout) -> dict[str, tuple[int, ...]]:
    """Every tensor of the torchvision-layout state dict of the RetinaNet of ``layout``, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(key: str, in_ch: int, out_ch: int, kernel: int, bias: bool = True) -> None:
        shapes[f"{key}.weight"] = (out_ch, in_ch, kernel, kernel)
        if bias:
            shapes[f"{key}.bias"] = (out_ch,)

    def bn(key: str, channels: int) -> None:
        for part in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{key}.{part}"] = (channels,)

    conv(f"{_BODY}.conv1", 3, layout.stem, 7, bias=False)
    bn(f"{_BODY}.bn1", layout.stem)
    ch = layout.stem
    for stage, (n, width, out_ch) in enumerate(zip(layout.blocks, layout.widths, layout.outs, strict=True), 1):
        for block in range(n):
            p = f"{_BODY}.layer{stage}.{block}"
            conv(f"{p}.conv1", ch, width, 1, bias=False)
            bn(f"{p}.bn1", width)
            conv(f"{p}.conv2", width // layout.groups, width, 3, bias=False)  # grouped: in = per group
            bn(f"{p}.bn2", width)
            conv(f"{p}.conv3", width, out_ch, 1, bias=False)
            bn(f"{p}.bn3", out_ch)
            if (stage > 1 and block == 0) or ch != out_ch:
                conv(f"{p}.downsample.0", ch, out_ch, 1, bias=False)
                bn(f"{p}.downsample.1", out_ch)
            ch = out_ch
    for i, c in enumerate(layout.outs[1:]):
        conv(f"backbone.fpn.inner_blocks.{i}.0", c, layout.fpn, 1)
        conv(f"backbone.fpn.layer_blocks.{i}.0", layout.fpn, layout.fpn, 3)
    for extra in ("p6", "p7"):
        conv(f"backbone.fpn.extra_blocks.{extra}", layout.fpn, layout.fpn, 3)
    for (head, out), per_anchor in zip(_HEADS, (layout.classes, 4), strict=True):
        for i in range(4):
            conv(f"{head}.conv.{i}.0", layout.fpn, layout.fpn, 3)
        conv(f"{head}.{out}", layout.fpn, layout.anchors * per_anchor, 3)
    return shapes


def _nearest(x, height: int, width: int):
    """``F.interpolate(x, size=(height, width), mode="nearest")`` in NHWC with static shapes: source index
    floor(i * in / out) in float32, as PyTorch computes it."""
    for axis, size in ((1, height), (2, width)):
        source = int(x.shape[axis])
        index = np.floor(np.arange(size, dtype=np.float32) * (np.float32(source) / np.float32(size)))
        x = tf.gather(x, np.minimum(index.astype(np.int32), source - 1), axis=axis)
    return x


def _priors(side: int) -> list[np.ndarray]:
    """torchvision's anchors per level as (centre x, centre y, width, height): the decoding tables."""
    tables = []
    for level in anchors(side):
        widths = level[:, 2:] - level[:, :2]
        centres = level[:, :2] + np.float32(0.5) * widths
        tables.append(np.concatenate([centres, widths], axis=1).astype(np.float32))
    return tables


def _postprocess(cls_outputs: list, box_outputs: list, classes: int, side: int):
    """torchvision's ``postprocess_detections`` for one image, the ONNX graph's steps, in float32."""
    scores, labels, deltas, chosen = [], [], [], []
    for cls, box, table in zip(cls_outputs, box_outputs, _priors(side), strict=True):
        # NHWC (1, H, W, A*C) flattened is (H, W, A, C): index = location * A * C + anchor * C + class.
        probs = tf.sigmoid(tf.reshape(cls, [-1]))
        top, idx = tf.math.top_k(probs, min(TOPK_CANDIDATES, int(probs.shape[0])), sorted=True)
        keep = top > SCORE_THRESHOLD
        top, idx = tf.boolean_mask(top, keep), tf.boolean_mask(idx, keep)
        anchor_idx = idx // classes
        scores.append(top)
        labels.append(tf.cast(idx % classes, tf.int64))
        deltas.append(tf.gather(tf.reshape(box, [-1, 4]), anchor_idx))
        chosen.append(tf.gather(tf.constant(table), anchor_idx))
    score, label, delta, prior = (tf.concat(t, axis=0) for t in (scores, labels, deltas, chosen))
    centre = delta[:, :2] * prior[:, 2:] + prior[:, :2]
    half = tf.exp(tf.minimum(delta[:, 2:], np.float32(BBOX_XFORM_CLIP))) * prior[:, 2:] * np.float32(0.5)
    boxes = tf.clip_by_value(tf.concat([centre - half, centre + half], axis=1), 0.0, float(side))
    # batched_nms as exported: each class's boxes offset by label * (side + 1) so classes never overlap. The
    # IoU is symmetric in x and y, so TensorFlow's (y1, x1, y2, x2) order does not matter.
    shifted = boxes + (tf.cast(label, tf.float32) * np.float32(side + 1.0))[:, None]
    keep = tf.image.non_max_suppression(shifted, score, DETECTIONS_PER_IMAGE, iou_threshold=NMS_IOU)
    return tf.gather(boxes, keep), tf.gather(score, keep), tf.gather(label, keep)


def graph_def(state: Mapping[str, np.ndarray]) -> bytes:
    """The frozen GraphDef (serialized) of the RetinaNet of ``state`` (torchvision layout), in this module's
    interface (:data:`SPECS` in, :data:`OUTPUTS` out).

    The variant (blocks per stage, widths, groups) comes from the tensors' shapes. Raises :class:`ModelError`
    naming up to 5 missing or unexpected keys or tensors of the wrong shape.
    """
    if not isinstance(state, Mapping) or not state:
        raise ModelError("The RetinaNet weights are not a state dict.", _FIX)
    state = upgrade_keys({k: np.asarray(v) for k, v in state.items()})
    layout = layout_of(state, _FIX)
    check_state(expected_shapes(layout), state, _WHAT, _FIX)

    def conv(x, kernel: np.ndarray, bias: np.ndarray, stride: int = 1, relu: bool = False):
        pad = kernel.shape[0] // 2
        y = tf.nn.conv2d(x, kernel, stride, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        # A grouped convolution's bias is an Add, not a BiasAdd: without oneDNN (on AMD CPUs, for one),
        # Grappler fuses Conv2D + BiasAdd + Relu into a kernel that refuses groups ("Fused conv
        # implementation does not support grouped convolutions"); it leaves Conv2D + Add alone.
        y = tf.nn.bias_add(y, bias) if kernel.shape[2] == x.shape[-1] else y + bias
        return tf.nn.relu(y) if relu else y

    def conv_bn(x, prefix: str, conv_name: str, bn_name: str, stride: int = 1, relu: bool = True):
        return conv(x, *tf_graph.folded_conv(state, f"{prefix}.{conv_name}.weight", f"{prefix}.{bn_name}", BN_EPS),
                    stride, relu)

    def plain(key: str) -> tuple[np.ndarray, np.ndarray]:
        return tf_graph.hwio(state[f"{key}.weight"]), state[f"{key}.bias"].astype(np.float32)

    def body(x) -> list:
        x = conv_bn(x, _BODY, "conv1", "bn1", 2)
        x = tf.nn.max_pool2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=float("-inf")), 3, 2,
                             "VALID")
        features = []
        for stage, n in enumerate(layout.blocks, 1):
            for block in range(n):
                p = f"{_BODY}.layer{stage}.{block}"
                stride = 2 if stage > 1 and block == 0 else 1
                y = conv_bn(x, p, "conv1", "bn1")
                y = conv_bn(y, p, "conv2", "bn2", stride)
                y = conv_bn(y, p, "conv3", "bn3", relu=False)
                if f"{p}.downsample.0.weight" in state:
                    x = conv_bn(x, p, "downsample.0", "downsample.1", stride, relu=False)
                x = tf.nn.relu(y + x)
            if stage > 1:
                features.append(x)
        return features

    def fpn(features: list) -> list:
        last = conv(features[-1], *plain(f"backbone.fpn.inner_blocks.{len(features) - 1}.0"))
        results = [conv(last, *plain(f"backbone.fpn.layer_blocks.{len(features) - 1}.0"))]
        for i in range(len(features) - 2, -1, -1):
            lateral = conv(features[i], *plain(f"backbone.fpn.inner_blocks.{i}.0"))
            last = lateral + _nearest(last, int(lateral.shape[1]), int(lateral.shape[2]))
            results.insert(0, conv(last, *plain(f"backbone.fpn.layer_blocks.{i}.0")))
        p6 = conv(results[-1], *plain("backbone.fpn.extra_blocks.p6"), 2)
        return results + [p6, conv(tf.nn.relu(p6), *plain("backbone.fpn.extra_blocks.p7"), 2)]

    def head(levels: list, name: str, out: str) -> list:
        # One constant per weight, shared by the five levels (the head's weights are shared).
        tower = [tuple(tf.constant(a) for a in plain(f"{name}.conv.{i}.0")) for i in range(4)]
        last = tuple(tf.constant(a) for a in plain(f"{name}.{out}"))
        outputs = []
        for x in levels:
            for kernel, bias in tower:
                x = conv(x, kernel, bias, relu=True)
            outputs.append(conv(x, *last))
        return outputs

    def network(images):
        mean = np.array(IMAGE_MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.array(IMAGE_STD, dtype=np.float32).reshape(1, 3, 1, 1)
        x = tf.transpose((images - mean) / std, [0, 2, 3, 1])
        levels = fpn(body(x))
        (cls_name, cls_out), (box_name, box_out) = _HEADS
        boxes, scores, labels = _postprocess(head(levels, cls_name, cls_out), head(levels, box_name, box_out),
                                             layout.classes, int(images.shape[-1]))
        return tuple(tf.identity(t, name=n.split(":")[0]) for t, n in zip((boxes, scores, labels), OUTPUTS,
                                                                          strict=True))

    return tf_graph.freeze(network, SPECS)
