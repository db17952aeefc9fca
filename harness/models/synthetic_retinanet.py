"""RetinaNet ResNeXt50-32x4d FPN ONNX with seeded random weights: the stand-in for ``resnext50_32x4d_fpn.onnx``.

The graph follows MLPerf's model (the torchvision-style RetinaNet of the MLCommons reference code, which
the official file is an opset-13 export of at 800x800), so it costs what the real model costs to run:

- input normalisation ((x - mean) / std, ImageNet statistics) inside the graph, as
  ``GeneralizedRCNNTransform`` does; an 800x800 input is not resized;
- ResNeXt50 32x4d backbone (stages of 3, 4, 6, 3 bottlenecks; 3x3 convs in 32 groups of 4 channels
  per group at the first stage, stride on the 3x3 conv), BatchNorm folded into conv biases;
- FPN on C3-C5 with 256 channels (1x1 laterals, nearest 2x top-down, 3x3 outputs) plus torchvision's
  ``LastLevelP6P7(256, 256)``: P6 is a stride-2 3x3 conv of P5 (in == out channels, so P5, not C5),
  P7 the same on ReLU(P6);
- classification and box heads shared across P3-P7: 4 x (3x3 conv 256 + ReLU), then 9 x 264 logits
  (sigmoid scores) and 9 x 4 box deltas per location;
- post-processing as ``RetinaNet.postprocess_detections``: per level, the 1000 best scores above
  0.05, box decoding against torchvision's anchors (precomputed for 800x800) with ``BoxCoder``
  weights (1, 1, 1, 1) and dw/dh clamped at log(1000/16), boxes clipped to the image, then per-class
  NMS at IoU 0.5 (ONNX ``NonMaxSuppression`` with torchvision's coordinate-offset trick, as the
  exported model does) and the 300 best detections.

I/O is the official one: ``images`` float32 [1,3,800,800] in [0,1] (batch 1, like the official file:
the post-processing is per image) to ``boxes`` float32 [K,4] (x1, y1, x2, y2 in pixels of the 800x800
input), ``scores`` float32 [K] (descending) and ``labels`` int64 [K] (0..263, the category ids of
``openimages-mlperf.json``). Only the weights are random, so its mAP is meaningless; the classifier's
prior bias and weight scale are chosen so that up to a few hundred boxes per image pass the 0.05
threshold, so the post-processing does real work.

Built with ``onnx.helper`` and numpy only. The same weights in torchvision's state-dict layout, as numpy
(:func:`reference_state`), and that layout's sizes (:class:`Layout`, :func:`layout_of`) serve every framework's
own definition of the network (``torch_retinanet``, ``tf_retinanet``); this module imports no framework.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..errors import ModelError
from .onnx_graph import BuildInfo, GraphBuilder
from .store import write_model

VARIANTS = ("full", "tiny")

INPUT_NAME = "images"
OUTPUT_NAMES = ("boxes", "scores", "labels")
NUM_CLASSES = 264
IMAGE_SIZE = 800
OPSET = 13

# torchvision's RetinaNet defaults (also MLPerf's).
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
ANCHOR_BASE_SIZES = (32, 64, 128, 256, 512)
ASPECT_RATIOS = (0.5, 1.0, 2.0)
ANCHORS_PER_LOCATION = 9
SCORE_THRESHOLD = 0.05
TOPK_CANDIDATES = 1000
NMS_IOU = 0.5
DETECTIONS_PER_IMAGE = 300
BBOX_XFORM_CLIP = math.log(1000.0 / 16)

# (blocks per stage, width divisor). "tiny" keeps every kind of layer of "full" (grouped convs with 4
# channels per group, FPN, P6/P7, both heads with their 4 convs, 264 classes, the whole post-processing
# at 800x800) with one block per stage and 1/8 of the widths and of the groups.
_LAYOUTS = {
    "full": ((3, 4, 6, 3), 1),
    "tiny": ((1, 1, 1, 1), 8),
}
_STEM_WIDTH = 64
_STAGE_PLANES = (64, 128, 256, 512)
_EXPANSION = 4
_GROUPS = 32
_WIDTH_PER_GROUP = 4
_FPN_CHANNELS = 256

_PRIOR_PROBABILITY = 0.01
# Spread of the classification logits around the prior's -4.6, for unit-scale head inputs (they come out
# at about 0.6 of it): of the ~32 M logits per image a few thousand land above logit(0.05) = -2.94, so
# every level's top-k and the NMS work on real candidates and 150 to 300 detections come out of
# structured images (fewer from pixel noise), most of them just above the threshold.
_CLS_LOGIT_STD = 0.5
# Box deltas of this size move boxes by a fraction of the anchor: plausible, varied boxes.
_BOX_DELTA_STD = 0.2
# Residual branches' last conv: keeps the residual stream from growing with depth (zero-init gamma's job).
_BRANCH_OUT_SCALE = 0.2
_BIAS_STD = 0.01


def _anchor_sizes(base: int) -> tuple[int, int, int]:
    """torchvision's three scales per level: x, int(x * 2^(1/3)), int(x * 2^(2/3))."""
    return (base, int(base * 2 ** (1.0 / 3)), int(base * 2 ** (2.0 / 3)))


def feature_sizes(image_size: int = IMAGE_SIZE) -> list[int]:
    """Side of P3..P7 for a square input: strides 8, 16, 32, then two stride-2 3x3 convs (pad 1)."""
    sizes = [image_size // 8, image_size // 16, image_size // 32]
    for _ in range(2):
        sizes.append((sizes[-1] - 1) // 2 + 1)
    return sizes


def anchors(image_size: int = IMAGE_SIZE) -> list[np.ndarray]:
    """torchvision ``AnchorGenerator`` anchors per level, float32 [H*W*A, 4] as x1, y1, x2, y2.

    Order: rows, then columns, then the 9 anchors (3 ratios x 3 scales, ratio-major), matching the
    heads' (H, W, A) layout. Strides are ``image_size // feature_size`` (so 61 and 114 for P6 and P7
    at 800), as torchvision computes them.
    """
    out = []
    for base, size in zip(ANCHOR_BASE_SIZES, feature_sizes(image_size), strict=True):
        scales = np.array(_anchor_sizes(base), dtype=np.float32)
        h_ratios = np.sqrt(np.array(ASPECT_RATIOS, dtype=np.float32))
        w_ratios = np.float32(1) / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
        hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
        base_anchors = np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2))
        stride = image_size // size
        shifts = np.arange(size, dtype=np.float32) * np.float32(stride)
        shift_y, shift_x = np.meshgrid(shifts, shifts, indexing="ij")
        shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
        grid = np.stack([shift_x, shift_y, shift_x, shift_y], axis=1)
        out.append((grid[:, None, :] + base_anchors[None, :, :]).reshape(-1, 4).astype(np.float32))
    return out


class _GraphBuilder(GraphBuilder):
    """RetinaNet's layers on the shared graph accumulator."""

    def op(self, op_type: str, name: str, inputs: list[str], n_outputs: int = 1, **attrs: object) -> str | list[str]:
        """Append a parameter-free node; returns its output name (a list when ``n_outputs`` > 1)."""
        outputs = [f"{name}.out"] if n_outputs == 1 else [f"{name}.out{i}" for i in range(n_outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))
        return outputs[0] if n_outputs == 1 else outputs

    def conv_params(self, name: str, in_ch: int, out_ch: int, kernel: int, *, groups: int = 1,
                    relu: bool = True, relu_input: bool = True, gain: float = 1.0, std: float | None = None,
                    bias: float | None = None) -> tuple[str, str]:
        """Weights and bias of a conv (BatchNorm folded in where the real model has one).

        Filters are zero-mean with an exact norm: He (2 / fan_in per weight) before a ReLU, 1 / fan_in
        before a linear use, times ``gain``^2; or ``std``^2 per weight when given, for the heads' last
        convs whose output spread is set directly. Zero-mean filters stop the positive mean of ReLU
        activations from becoming an input-independent offset; in exchange they only see the variance of
        their input, not its mean, which after a ReLU (``relu_input``) is 1 - 1/pi of the second moment
        He's rule assumes: the weights make up for it.
        """
        fan_in = in_ch // groups * kernel * kernel
        w = self.rng.standard_normal((out_ch, fan_in), dtype=np.float32).astype(np.float64)
        w -= w.mean(axis=1, keepdims=True)
        variance = std * std if std is not None else (2.0 if relu else 1.0) * gain * gain / fan_in
        if relu_input:
            variance /= 1.0 - 1.0 / math.pi
        # Normalised in float64 and rounded once: the bytes (the cache key) do not depend on how a CPU
        # orders a float32 sum.
        w *= np.sqrt(variance * fan_in / (w * w).sum(axis=1, keepdims=True))
        w = w.astype(np.float32).reshape(out_ch, in_ch // groups, kernel, kernel)
        if bias is None:
            b = self.rng.standard_normal(out_ch, dtype=np.float32) * np.float32(_BIAS_STD)
        else:
            b = np.full(out_ch, bias, dtype=np.float32)
        return self.add_weight(f"{name}.weight", w), self.add_weight(f"{name}.bias", b)

    def conv_node(self, name: str, x: str, params: tuple[str, str], kernel: int, stride: int = 1, *,
                  groups: int = 1, relu: bool = True) -> str:
        """A Conv node on existing weights, optionally followed by ReLU; returns the output name."""
        pad = kernel // 2
        out = f"{name}.out"
        self.nodes.append(helper.make_node(
            "Conv", [x, *params], [out], name=name, kernel_shape=[kernel, kernel], strides=[stride, stride],
            pads=[pad, pad, pad, pad], dilations=[1, 1], group=groups))
        return self.op("Relu", f"{name}.relu", [out]) if relu else out

    def conv(self, name: str, x: str, in_ch: int, out_ch: int, kernel: int, stride: int = 1, *,
             groups: int = 1, relu: bool = True, relu_input: bool = True, gain: float = 1.0) -> str:
        """Conv + bias, optionally + ReLU, with weights of its own."""
        params = self.conv_params(name, in_ch, out_ch, kernel, groups=groups, relu=relu, relu_input=relu_input,
                                  gain=gain)
        return self.conv_node(name, x, params, kernel, stride, groups=groups, relu=relu)

    def bottleneck(self, name: str, x: str, in_ch: int, width: int, out_ch: int, groups: int,
                   stride: int) -> str:
        """ResNeXt bottleneck: 1x1, grouped 3x3 (carrying the stride), 1x1, projection when needed."""
        y = self.conv(f"{name}.conv1", x, in_ch, width, 1)
        y = self.conv(f"{name}.conv2", y, width, width, 3, stride, groups=groups)
        y = self.conv(f"{name}.conv3", y, width, out_ch, 1, relu=False, gain=_BRANCH_OUT_SCALE)
        if stride != 1 or in_ch != out_ch:
            shortcut = self.conv(f"{name}.downsample", x, in_ch, out_ch, 1, stride, relu=False)
        else:
            shortcut = x
        y = self.op("Add", f"{name}.add", [y, shortcut])
        return self.op("Relu", f"{name}.relu", [y])


def _backbone(g: _GraphBuilder, x: str, blocks: tuple[int, ...], divisor: int) -> tuple[list[str], list[int]]:
    """ResNeXt50 32x4d; returns C3, C4, C5 and their channels."""
    stem = _STEM_WIDTH // divisor
    groups = _GROUPS // divisor
    x = g.conv("backbone.stem.conv", x, 3, stem, 7, 2, relu_input=False)
    x = g.op("MaxPool", "backbone.stem.maxpool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    ch = stem
    outputs, channels = [], []
    for stage, (n_blocks, planes) in enumerate(zip(blocks, _STAGE_PLANES, strict=True), start=1):
        width = groups * _WIDTH_PER_GROUP * planes // 64
        out_ch = planes * _EXPANSION // divisor
        for block in range(n_blocks):
            stride = 2 if stage > 1 and block == 0 else 1
            x = g.bottleneck(f"backbone.layer{stage}.{block}", x, ch, width, out_ch, groups, stride)
            ch = out_ch
        if stage >= 2:
            outputs.append(x)
            channels.append(ch)
    return outputs, channels


def _fpn(g: _GraphBuilder, features: list[str], channels: list[int], width: int) -> list[str]:
    """torchvision FeaturePyramidNetwork on C3-C5 plus LastLevelP6P7(256, 256); returns P3..P7."""
    laterals = [g.conv(f"fpn.inner.{i}", c, ch, width, 1, relu=False)
                for i, (c, ch) in enumerate(zip(features, channels, strict=True))]
    scales = g.constant("fpn.upsample.scales", np.array([1, 1, 2, 2], dtype=np.float32))
    last = laterals[-1]
    results = [g.conv("fpn.layer.2", last, width, width, 3, relu=False, relu_input=False)]
    for i in (1, 0):
        up = g.op("Resize", f"fpn.upsample.{i}", [last, "", scales], mode="nearest",
                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        last = g.op("Add", f"fpn.topdown.{i}", [laterals[i], up])
        # The sum of two unit-scale maps: scaled back by sqrt(1/2) so every level has about unit scale.
        results.insert(0, g.conv(f"fpn.layer.{i}", last, width, width, 3, relu=False, relu_input=False,
                                 gain=math.sqrt(0.5)))
    p6 = g.conv("fpn.p6", results[-1], width, width, 3, 2, relu=False, relu_input=False)
    p7 = g.conv("fpn.p7", g.op("Relu", "fpn.p6.relu", [p6]), width, width, 3, 2, relu=False, gain=math.sqrt(2))
    return results + [p6, p7]


def _head(g: _GraphBuilder, name: str, levels: list[str], width: int, out_ch: int, std: float,
          bias: float) -> list[str]:
    """One RetinaNet head, its weights shared by every level: 4 x (3x3 conv + ReLU), then the output conv.

    The output conv's weights have ``std / sqrt(fan_in)`` each, so its outputs spread by about ``std``
    around ``bias`` for inputs of unit scale.
    """
    tower = [g.conv_params(f"{name}.conv.{i}", width, width, 3, relu_input=i > 0) for i in range(4)]
    out = g.conv_params(f"{name}.out", width, out_ch, 3, relu=False, std=std / math.sqrt(width * 9), bias=bias)
    outputs = []
    for level, x in enumerate(levels):
        node = f"{name}.p{level + 3}"
        for i, params in enumerate(tower):
            x = g.conv_node(f"{node}.conv.{i}", x, params, 3)
        outputs.append(g.conv_node(f"{node}.out", x, out, 3, relu=False))
    return outputs


def _top_k(g: _GraphBuilder, p: str, probs: str, rows: int, row_length: int) -> tuple[str, str]:
    """The level's best ``TOPK_CANDIDATES`` scores and their flat indices, in two stages: the best of each
    feature-map row, then the best of those. The same set and order as one top-k over the whole level
    (every element of the overall best is among its row's best; equal scores keep the lower index first),
    but each stage's rows are short: ONNX Runtime's CUDA TopK gives each row one thread block, and one row
    of P3's 23.8 million scores took about 250 ms on an H200."""
    k_row = min(TOPK_CANDIDATES, row_length)
    matrix = g.op("Reshape", f"{p}.rows", [probs, g.constant(f"{p}.rows_shape", np.array([rows, row_length],
                                                                                        dtype=np.int64))])
    row_top, row_idx = g.op("TopK", f"{p}.row_topk", [matrix, g.constant(f"{p}.row_k", np.array(
        [k_row], dtype=np.int64))], n_outputs=2, axis=-1, largest=1, sorted=1)
    offsets = g.constant(f"{p}.row_offsets", (np.arange(rows, dtype=np.int64) * row_length)[:, None])
    flat = g.constant(f"{p}.flat", np.array([-1], dtype=np.int64))
    candidates = g.op("Reshape", f"{p}.candidates", [row_top, flat])
    candidate_idx = g.op("Reshape", f"{p}.candidate_idx", [g.op("Add", f"{p}.global_idx", [row_idx, offsets]),
                                                           flat])
    k = g.constant(f"{p}.k", np.array([min(TOPK_CANDIDATES, rows * k_row)], dtype=np.int64))
    top, position = g.op("TopK", f"{p}.topk", [candidates, k], n_outputs=2, axis=-1, largest=1, sorted=1)
    return top, g.op("Gather", f"{p}.topk_idx", [candidate_idx, position], axis=0)


def _postprocess(g: _GraphBuilder, cls_outputs: list[str], box_outputs: list[str], image_size: int) -> None:
    """Per-level top-k above the threshold, box decoding, clipping, per-class NMS, top 300."""
    A, C = ANCHORS_PER_LOCATION, NUM_CLASSES
    flat = g.constant("post.flat", np.array([-1], dtype=np.int64))
    rows4 = g.constant("post.rows4", np.array([-1, 4], dtype=np.int64))
    threshold = g.constant("post.score_threshold", np.array(SCORE_THRESHOLD, dtype=np.float32))
    num_classes = g.constant("post.num_classes", np.array(C, dtype=np.int64))
    scores, labels, deltas, priors = [], [], [], []
    levels = zip(cls_outputs, box_outputs, anchors(image_size), feature_sizes(image_size), strict=True)
    for level, (cls, box, level_anchors, side) in enumerate(levels):
        p = f"post.p{level + 3}"
        # (1, A*C, H, W) -> (H, W, A, C) flattened: index = anchor * C + class, as torchvision's view/permute.
        cls_shape = g.constant(f"{p}.cls_shape", np.array([1, A, C, side, side], dtype=np.int64))
        logits = g.op("Reshape", f"{p}.cls.reshape", [cls, cls_shape])
        logits = g.op("Transpose", f"{p}.cls.transpose", [logits], perm=[0, 3, 4, 1, 2])
        logits = g.op("Reshape", f"{p}.cls.flatten", [logits, flat])
        probs = g.op("Sigmoid", f"{p}.sigmoid", [logits])
        top, idx = _top_k(g, p, probs, rows=side, row_length=side * A * C)
        # Keeping the 1000 best and then those above the threshold is the same set as torchvision's
        # threshold-then-top-k.
        keep = g.op("Greater", f"{p}.keep", [top, threshold])
        scores.append(g.op("Compress", f"{p}.scores", [top, keep], axis=0))
        idx = g.op("Compress", f"{p}.idx", [idx, keep], axis=0)
        anchor_idx = g.op("Div", f"{p}.anchor_idx", [idx, num_classes])
        labels.append(g.op("Mod", f"{p}.labels", [idx, num_classes]))
        box_shape = g.constant(f"{p}.box_shape", np.array([1, A, 4, side, side], dtype=np.int64))
        reg = g.op("Reshape", f"{p}.box.reshape", [box, box_shape])
        reg = g.op("Transpose", f"{p}.box.transpose", [reg], perm=[0, 3, 4, 1, 2])
        reg = g.op("Reshape", f"{p}.box.rows", [reg, rows4])
        deltas.append(g.op("Gather", f"{p}.deltas", [reg, anchor_idx], axis=0))
        # Anchors as (centre x, centre y, width, height): what decoding needs, computed once here.
        widths = level_anchors[:, 2:] - level_anchors[:, :2]
        centres = level_anchors[:, :2] + np.float32(0.5) * widths
        table = g.constant(f"{p}.anchors", np.concatenate([centres, widths], axis=1).astype(np.float32))
        priors.append(g.op("Gather", f"{p}.priors", [table, anchor_idx], axis=0))

    scores = g.op("Concat", "post.all_scores", scores, axis=0)
    labels = g.op("Concat", "post.all_labels", labels, axis=0)
    deltas = g.op("Concat", "post.all_deltas", deltas, axis=0)
    priors = g.op("Concat", "post.all_priors", priors, axis=0)

    # BoxCoder.decode_single with weights (1, 1, 1, 1).
    lo = g.constant("post.slice.start0", np.array([0], dtype=np.int64))
    mid = g.constant("post.slice.mid", np.array([2], dtype=np.int64))
    hi = g.constant("post.slice.end", np.array([4], dtype=np.int64))
    axis1 = g.constant("post.slice.axis1", np.array([1], dtype=np.int64))
    d_xy = g.op("Slice", "post.d_xy", [deltas, lo, mid, axis1])
    d_wh = g.op("Slice", "post.d_wh", [deltas, mid, hi, axis1])
    a_xy = g.op("Slice", "post.a_xy", [priors, lo, mid, axis1])
    a_wh = g.op("Slice", "post.a_wh", [priors, mid, hi, axis1])
    clip_max = g.constant("post.wh_clip", np.array(BBOX_XFORM_CLIP, dtype=np.float32))
    d_wh = g.op("Min", "post.d_wh.clamp", [d_wh, clip_max])
    centre = g.op("Add", "post.centre", [g.op("Mul", "post.d_xy.scaled", [d_xy, a_wh]), a_xy])
    size = g.op("Mul", "post.size", [g.op("Exp", "post.d_wh.exp", [d_wh]), a_wh])
    half = g.op("Mul", "post.half", [size, g.constant("post.0.5", np.array(0.5, dtype=np.float32))])
    corners = g.op("Concat", "post.corners", [g.op("Sub", "post.x1y1", [centre, half]),
                                              g.op("Add", "post.x2y2", [centre, half])], axis=1)
    # clip_boxes_to_image: the input is square, so one clip serves x and y.
    zero = g.constant("post.zero", np.array(0.0, dtype=np.float32))
    side = g.constant("post.side", np.array(float(image_size), dtype=np.float32))
    boxes = g.op("Clip", "post.clip", [corners, zero, side])

    # batched_nms as exported: offset each class's boxes by label * (max coordinate + 1) so classes never
    # overlap, then one NMS. Clipped boxes lie in [0, side], hence a constant offset of side + 1.
    offset = g.op("Mul", "post.nms.offset", [g.op("Cast", "post.nms.labels_f", [labels], to=TensorProto.FLOAT),
                                             g.constant("post.nms.step", np.array(image_size + 1.0,
                                                                                  dtype=np.float32))])
    offset = g.op("Unsqueeze", "post.nms.offset_col", [offset, axis1])
    shifted = g.op("Add", "post.nms.shifted", [boxes, offset])
    nms_boxes = g.op("Unsqueeze", "post.nms.boxes", [shifted, lo])
    nms_scores = g.op("Unsqueeze", "post.nms.scores", [scores, g.constant("post.axes01", np.array([0, 1],
                                                                                                 dtype=np.int64))])
    selected = g.op("NonMaxSuppression", "post.nms", [
        nms_boxes, nms_scores,
        g.constant("post.nms.max_out", np.array([DETECTIONS_PER_IMAGE], dtype=np.int64)),
        g.constant("post.nms.iou", np.array([NMS_IOU], dtype=np.float32)),
    ])
    # Selected indices come out in descending score order, so the first 300 are torchvision's keep[:300].
    keep = g.op("Gather", "post.keep", [selected, g.constant("post.box_col", np.array(2, dtype=np.int64))],
                axis=1)
    g.nodes.append(helper.make_node("Gather", [boxes, keep], ["boxes"], name="post.boxes", axis=0))
    g.nodes.append(helper.make_node("Gather", [scores, keep], ["scores"], name="post.scores", axis=0))
    g.nodes.append(helper.make_node("Gather", [labels, keep], ["labels"], name="post.labels", axis=0))


def _make_model(seed: int, variant: str) -> tuple[onnx.ModelProto, int]:
    blocks, divisor = _LAYOUTS[variant]
    g = _GraphBuilder(seed)
    mean = g.constant("transform.mean", np.array(IMAGE_MEAN, dtype=np.float32).reshape(1, 3, 1, 1))
    std = g.constant("transform.std", np.array(IMAGE_STD, dtype=np.float32).reshape(1, 3, 1, 1))
    x = g.op("Div", "transform.normalize", [g.op("Sub", "transform.center", [INPUT_NAME, mean]), std])

    features, channels = _backbone(g, x, blocks, divisor)
    width = _FPN_CHANNELS // divisor
    levels = _fpn(g, features, channels, width)

    prior_bias = -math.log((1 - _PRIOR_PROBABILITY) / _PRIOR_PROBABILITY)
    cls_outputs = _head(g, "head.cls", levels, width, ANCHORS_PER_LOCATION * NUM_CLASSES, _CLS_LOGIT_STD,
                        prior_bias)
    box_outputs = _head(g, "head.box", levels, width, ANCHORS_PER_LOCATION * 4, _BOX_DELTA_STD, 0.0)
    _postprocess(g, cls_outputs, box_outputs, IMAGE_SIZE)

    detections = "K"
    graph = helper.make_graph(
        g.nodes,
        f"retinanet_resnext50_32x4d_fpn_synthetic_{variant}",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, IMAGE_SIZE, IMAGE_SIZE])],
        outputs=[
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [detections, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [detections]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, [detections]),
        ],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="mlperf-wizard",
        doc_string=f"Synthetic RetinaNet ResNeXt50-32x4d FPN ({variant}), random weights from seed {seed}; "
                   "not for accuracy.",
    )
    # Pinned so a newer onnx does not change the bytes (the cache key) or produce a file an older
    # onnxruntime refuses.
    model.ir_version = 8
    return model, g.parameters


def build_retinanet_onnx(path: Path, *, seed: int = 0, variant: str = "full") -> BuildInfo:
    """Build a RetinaNet ResNeXt50-32x4d FPN ONNX model with random weights and write it to ``path``.

    ``variant="full"`` is MLPerf's architecture (~37.1 M parameters, ~150 MB, ~200 G multiply-adds per
    image like ``resnext50_32x4d_fpn.onnx``); ``"tiny"`` is the same code with one block per stage and
    1/8 of the widths and groups, still at 800x800 with 264 classes and the full post-processing, for
    tests. Both take ``images`` float32 [1,3,800,800] in [0,1] and give ``boxes`` [K,4] (x1, y1, x2, y2,
    pixels), ``scores`` [K] (descending, all > 0.05) and ``labels`` int64 [K], K <= 300. The same seed
    and variant give a byte-identical file (same numpy and onnx versions), so :attr:`BuildInfo.md5` is
    a stable cache key; the file is written through a temporary file, so ``path`` never holds a
    partial model.

    Raises ``ValueError`` for an unknown variant and :class:`~harness.errors.ModelError` if the file
    cannot be written.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    path = Path(path)
    start = time.perf_counter()
    model, parameters = _make_model(seed, variant)
    onnx.checker.check_model(model)
    data = model.SerializeToString(deterministic=True)
    write_model(path, data, "synthetic RetinaNet model", "about 150 MB for 'full'")
    return BuildInfo(path=path, variant=variant, seed=seed, parameters=parameters, size_bytes=len(data),
                     seconds=time.perf_counter() - start, md5=hashlib.md5(data).hexdigest())


# torchvision's state-dict layout, shared by the frameworks' own definitions of the network.

BN_EPS = 1e-5
_BODY = "backbone.body"
_HEADS = {"cls": "head.classification_head", "box": "head.regression_head"}
_REBUILD_FIX = "delete it; the next run rebuilds it."

_Value = TypeVar("_Value")


@dataclass(frozen=True)
class Layout:
    """The sizes that tell the full network from the tiny one; the defaults are MLPerf's model."""

    blocks: tuple[int, ...] = (3, 4, 6, 3)
    stem: int = 64
    widths: tuple[int, ...] = (128, 256, 512, 1024)
    """Channels inside each stage's bottlenecks (the grouped 3x3 conv's)."""
    outs: tuple[int, ...] = (256, 512, 1024, 2048)
    groups: int = 32
    fpn: int = 256
    anchors: int = ANCHORS_PER_LOCATION
    classes: int = NUM_CLASSES


def upgrade_keys(state_dict: Mapping[str, _Value]) -> dict[str, _Value]:
    """Older torchvision key spellings to the current ones; ``num_batches_tracked`` counters dropped.

    Before Conv2dNormActivation, the FPN's blocks were bare convs (``inner_blocks.0.weight``, now
    ``inner_blocks.0.0.weight``) and each head's tower a flat Sequential of conv and ReLU
    (``conv.0``, ``conv.2``, ``conv.4``, ``conv.6``, now ``conv.0.0`` .. ``conv.3.0``). A tower numbered
    0..3 (no ReLU entries) keeps its numbers.
    """
    state = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    old_tower = re.compile(r"^(head\.\w+_head\.conv)\.(\d+)\.(weight|bias)$")
    steps = {}
    for prefix in {m.group(1) for m in map(old_tower.match, state) if m}:
        indices = {int(m.group(2)) for m in map(old_tower.match, state) if m and m.group(1) == prefix}
        steps[prefix] = 2 if indices and all(i % 2 == 0 for i in indices) and max(indices) > 3 else 1
    renamed = {}
    for key, value in state.items():
        key = re.sub(r"^(backbone\.fpn\.(?:inner|layer)_blocks\.\d+)\.(weight|bias)$", r"\1.0.\2", key)
        m = old_tower.match(key)
        if m:
            key = f"{m.group(1)}.{int(m.group(2)) // steps[m.group(1)]}.0.{m.group(3)}"
        renamed[key] = value
    return renamed


def layout_of(state: Mapping[str, object], fix: str) -> Layout:
    """The layout the shapes of ``state`` describe (arrays or tensors: anything with ``shape`` and ``ndim``);
    what a key does not say stays at the full model's. Raises :class:`ModelError` with ``fix`` for a box head
    that does not predict 9 anchors per location."""
    full = Layout()

    def out_channels(key: str, default: int) -> int:
        value = state.get(key)
        return int(value.shape[0]) if getattr(value, "ndim", 0) > 0 else default

    blocks = tuple(len({k.split(".")[3] for k in state if re.match(rf"{_BODY}\.layer{s}\.\d+\.conv1\.weight$", k)})
                   or default for s, default in zip((1, 2, 3, 4), full.blocks, strict=True))
    widths = tuple(out_channels(f"{_BODY}.layer{s}.0.conv1.weight", d) for s, d in zip((1, 2, 3, 4), full.widths,
                                                                                       strict=True))
    outs = tuple(out_channels(f"{_BODY}.layer{s}.0.conv3.weight", d) for s, d in zip((1, 2, 3, 4), full.outs,
                                                                                    strict=True))
    grouped = state.get(f"{_BODY}.layer1.0.conv2.weight")
    groups = full.groups
    if getattr(grouped, "ndim", 0) == 4 and grouped.shape[1] > 0:
        groups = max(1, int(grouped.shape[0]) // int(grouped.shape[1]))
    n_anchors = out_channels(f"{_HEADS['box']}.bbox_reg.weight", full.anchors * 4) // 4
    if n_anchors != ANCHORS_PER_LOCATION:
        raise ModelError(f"The RetinaNet box head predicts {n_anchors} anchors per location, not "
                         f"{ANCHORS_PER_LOCATION}.", fix)
    classes = out_channels(f"{_HEADS['cls']}.cls_logits.weight", n_anchors * full.classes) // n_anchors
    return Layout(blocks=blocks, stem=out_channels(f"{_BODY}.conv1.weight", full.stem), widths=widths, outs=outs,
                  groups=groups, fpn=out_channels("backbone.fpn.inner_blocks.0.0.weight", full.fpn),
                  anchors=n_anchors, classes=classes)


def _onnx_key(name: str) -> tuple[str, str | None] | None:
    """(conv weight key, BatchNorm prefix or None) of a synthetic ONNX conv, or None if not a conv of ours."""
    rules = (
        (r"backbone\.stem\.conv", f"{_BODY}.conv1", f"{_BODY}.bn1"),
        (r"backbone\.(layer\d\.\d+)\.conv(\d)", rf"{_BODY}.\1.conv\2", rf"{_BODY}.\1.bn\2"),
        (r"backbone\.(layer\d\.\d+)\.downsample", rf"{_BODY}.\1.downsample.0", rf"{_BODY}.\1.downsample.1"),
        (r"fpn\.inner\.(\d)", r"backbone.fpn.inner_blocks.\1.0", None),
        (r"fpn\.layer\.(\d)", r"backbone.fpn.layer_blocks.\1.0", None),
        (r"fpn\.(p6|p7)", r"backbone.fpn.extra_blocks.\1", None),
        (r"head\.cls\.conv\.(\d)", rf"{_HEADS['cls']}.conv.\1.0", None),
        (r"head\.cls\.out", f"{_HEADS['cls']}.cls_logits", None),
        (r"head\.box\.conv\.(\d)", rf"{_HEADS['box']}.conv.\1.0", None),
        (r"head\.box\.out", f"{_HEADS['box']}.bbox_reg", None),
    )
    for pattern, conv, bn in rules:
        m = re.fullmatch(pattern, name)
        if m:
            return m.expand(conv), m.expand(bn) if bn else None
    return None


def reference_state(onnx_path: Path) -> dict[str, np.ndarray]:
    """The synthetic ONNX RetinaNet's weights in torchvision's state-dict layout, as float32 numpy arrays.

    The ONNX backbone convs carry their folded BatchNorm as a bias; here each such BatchNorm is the identity
    (weight 1, mean 0, running_var 1 - eps, so the scale is exactly 1 in float32) shifted by that bias. The
    FPN's and heads' convs keep their biases; the heads' weights are shared across levels in both. Raises
    :class:`ModelError` for a file that is not readable ONNX or not the synthetic RetinaNet.
    """
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(onnx_path)).graph
    except Exception as exc:  # onnx raises decode, OS and checker errors alike
        raise ModelError(f"{onnx_path} is not a readable ONNX model ({type(exc).__name__}).", _REBUILD_FIX) from None
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    state: dict[str, np.ndarray] = {}
    for name in sorted(n[: -len(".weight")] for n in weights if n.endswith(".weight")):
        target = _onnx_key(name)
        if target is None or f"{name}.bias" not in weights:
            raise ModelError(f"{onnx_path} is not the synthetic RetinaNet (unknown weight {name}).", _REBUILD_FIX)
        conv, bn = target
        bias = weights[f"{name}.bias"].astype(np.float32)  # a copy: the arrays are the caller's to keep
        state[f"{conv}.weight"] = weights[f"{name}.weight"].astype(np.float32)
        if bn is None:
            state[f"{conv}.bias"] = bias
        else:
            channels = bias.shape[0]
            state[f"{bn}.weight"] = np.ones(channels, dtype=np.float32)
            state[f"{bn}.bias"] = bias
            state[f"{bn}.running_mean"] = np.zeros(channels, dtype=np.float32)
            state[f"{bn}.running_var"] = np.full(channels, 1.0 - BN_EPS, dtype=np.float32)
    if not state:
        # Protobuf reads many byte strings as an empty model: one with no weights is not ours either.
        raise ModelError(f"{onnx_path} is not the synthetic RetinaNet (no weights).", _REBUILD_FIX)
    return state
