"""ResNet50 v1.5 ONNX with seeded random weights: the offline stand-in for MLPerf's ``resnet50_v1.onnx``.

The graph has the real architecture (same convolutions, same FLOPs, same parameter count) and the same
input/output signature as the official file, so it costs what the real model costs to run; only the
weights are random, so its accuracy is meaningless. BatchNorm is folded into conv weights and biases,
which is what ONNX Runtime does to the official model when it loads it.

Built with ``onnx.helper`` and numpy only, so no deep-learning framework is needed to produce it.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from .onnx_graph import BuildInfo, GraphBuilder
from .store import write_model

VARIANTS = ("full", "tiny")

# The official model is the TF-converted one: names carry TF's ":0" suffix, and the classifier has
# 1001 outputs with class 0 = background.
INPUT_NAME = "input_tensor:0"
ARGMAX_NAME = "ArgMax:0"
SOFTMAX_NAME = "softmax_tensor:0"
NUM_CLASSES = 1001
IMAGE_SIZE = 224
BATCH_DIM = "N"
OPSET = 13

# (blocks per stage, width divisor). "tiny" keeps every kind of layer of "full" so tests exercise the
# same code path, just with one block per stage and 1/8 of the channels.
_LAYOUTS = {
    "full": ((3, 4, 6, 3), 1),
    "tiny": ((1, 1, 1, 1), 8),
}
_STEM_WIDTH = 64
_STAGE_WIDTHS = (64, 128, 256, 512)
_EXPANSION = 4

# Preprocessed ImageNet pixels (mean subtracted, no std division) have a spread of about 60; dividing the
# stem's init by it keeps activations of order 1 for real images.
_INPUT_SCALE = 60.0
# Scale of the last conv of each residual branch: keeps the residual stream's variance from growing with
# depth (16 blocks), the job zero-init BN gamma does in real training.
_BRANCH_OUT_SCALE = 0.2
# Folded BN biases: kept small, since a channel-wide offset survives pooling as an input-independent part
# of the features (see `_GraphBuilder.conv`).
_BIAS_STD = 0.01
# FC init gain: puts the logits' spread at a few units for inputs at the scale of preprocessed pixels, so
# softmax is neither uniform nor one-hot.
_FC_GAIN = 30.0


class _GraphBuilder(GraphBuilder):
    """ResNet50's layers on the shared graph accumulator."""

    def conv(
        self,
        name: str,
        x: str,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int = 1,
        *,
        relu: bool = True,
        gain: float = 1.0,
    ) -> str:
        """Conv with bias (BatchNorm folded in), optionally followed by ReLU; returns the output name."""
        # Normalised in float64 and rounded once, so the float32 bytes (the cache key) do not depend on
        # how a given CPU orders a float32 sum.
        w = self.rng.standard_normal((out_ch, in_ch, kernel, kernel), dtype=np.float32).astype(np.float64)
        # Zero-mean filters: the positive mean that ReLU gives every activation is not passed on, so the
        # pooled features do not share a large input-independent part that would make the same class win
        # for every input (random inputs all look alike to random filters).
        w -= w.mean(axis=(1, 2, 3), keepdims=True)
        # Every filter gets exactly the He-normal norm (2 / fan_in per weight): keeps the second moment of
        # activations through conv + ReLU, and makes it the same in every channel, for the reason above.
        w *= gain * np.sqrt(2.0 / (w * w).sum(axis=(1, 2, 3), keepdims=True))
        w = w.astype(np.float32)
        b = self.rng.standard_normal(out_ch, dtype=np.float32) * np.float32(_BIAS_STD)
        w_name = self.add_weight(f"{name}.weight", w)
        b_name = self.add_weight(f"{name}.bias", b)
        pad = kernel // 2
        out = f"{name}.out"
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, w_name, b_name],
                [out],
                name=name,
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
                dilations=[1, 1],
                group=1,
            )
        )
        if not relu:
            return out
        return self.op("Relu", f"{name}.relu", [out])

    def op(
        self, op_type: str, name: str, inputs: list[str], outputs: list[str] | None = None, **attrs: object
    ) -> str:
        """Append a parameter-free node; returns its (first) output name."""
        outputs = outputs or [f"{name}.out"]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))
        return outputs[0]

    def bottleneck(self, name: str, x: str, in_ch: int, width: int, stride: int) -> tuple[str, int]:
        """ResNet v1.5 bottleneck block; returns (output name, output channels)."""
        out_ch = width * _EXPANSION
        y = self.conv(f"{name}.conv1", x, in_ch, width, 1)
        # v1.5: the stride sits on the 3x3 conv, not on the first 1x1 as in v1.
        y = self.conv(f"{name}.conv2", y, width, width, 3, stride)
        y = self.conv(f"{name}.conv3", y, width, out_ch, 1, relu=False, gain=_BRANCH_OUT_SCALE)
        if stride != 1 or in_ch != out_ch:
            shortcut = self.conv(f"{name}.downsample", x, in_ch, out_ch, 1, stride, relu=False)
        else:
            shortcut = x
        y = self.op("Add", f"{name}.add", [y, shortcut])
        return self.op("Relu", f"{name}.relu", [y]), out_ch

    def classifier(self, x: str, in_features: int) -> None:
        """Global average pool, FC to 1001 logits, then the official model's two outputs."""
        pooled = self.op("GlobalAveragePool", "avgpool", [x])
        flat = self.op("Flatten", "flatten", [pooled], axis=1)
        w = self.rng.standard_normal((NUM_CLASSES, in_features), dtype=np.float32).astype(np.float64)
        # Pooled ReLU features are positive, with about the same mean in every channel; zero-mean class
        # rows cancel that common part, so which class wins depends on the input.
        w -= w.mean(axis=1, keepdims=True)
        w = (w * (_FC_GAIN / np.sqrt(in_features))).astype(np.float32)
        b = self.rng.standard_normal(NUM_CLASSES, dtype=np.float32) * np.float32(_BIAS_STD)
        w_name = self.add_weight("fc.weight", w)
        b_name = self.add_weight("fc.bias", b)
        logits = self.op("Gemm", "fc", [flat, w_name, b_name], transB=1)
        self.op("Softmax", "softmax", [logits], outputs=[SOFTMAX_NAME], axis=1)
        self.op("ArgMax", "argmax", [logits], outputs=[ARGMAX_NAME], axis=1, keepdims=0)


def _make_model(seed: int, variant: str) -> tuple[onnx.ModelProto, int]:
    blocks, divisor = _LAYOUTS[variant]
    g = _GraphBuilder(seed)
    # Stem: the input is the scale of preprocessed pixels, not of unit-variance activations.
    stem_ch = _STEM_WIDTH // divisor
    x = g.conv("stem.conv", INPUT_NAME, 3, stem_ch, 7, 2, gain=1.0 / _INPUT_SCALE)
    x = g.op("MaxPool", "stem.maxpool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    ch = stem_ch
    for stage, (n_blocks, width) in enumerate(zip(blocks, _STAGE_WIDTHS, strict=True), start=1):
        for block in range(n_blocks):
            stride = 2 if stage > 1 and block == 0 else 1
            x, ch = g.bottleneck(f"stage{stage}.block{block + 1}", x, ch, width // divisor, stride)
    g.classifier(x, ch)

    graph = helper.make_graph(
        g.nodes,
        f"resnet50_v1.5_synthetic_{variant}",
        inputs=[
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, 3, IMAGE_SIZE, IMAGE_SIZE]
            )
        ],
        outputs=[
            helper.make_tensor_value_info(ARGMAX_NAME, TensorProto.INT64, [BATCH_DIM]),
            helper.make_tensor_value_info(SOFTMAX_NAME, TensorProto.FLOAT, [BATCH_DIM, NUM_CLASSES]),
        ],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="mlperf-wizard",
        doc_string=f"Synthetic ResNet50 v1.5 ({variant}), random weights from seed {seed}; not for accuracy.",
    )
    # Pin the IR version: a newer onnx would otherwise stamp its own, changing the bytes of the cache key
    # and possibly producing a file an older onnxruntime refuses.
    model.ir_version = 8
    return model, g.parameters


def build_resnet50_onnx(path: Path, *, seed: int = 0, variant: str = "full") -> BuildInfo:
    """Build a ResNet50 v1.5 ONNX model with random weights and write it to ``path``.

    ``variant="full"`` is the real architecture (~25.5 M parameters, ~100 MB, same cost as MLPerf's
    ``resnet50_v1.onnx``); ``"tiny"`` is the same graph with one block per stage and 1/8 of the widths,
    for fast tests. Both take ``input_tensor:0`` float32 [N,3,224,224] and give ``ArgMax:0`` int64 [N]
    and ``softmax_tensor:0`` float32 [N,1001]. The same seed and variant give a byte-identical file
    (with the same numpy and onnx versions), so :attr:`BuildInfo.md5` is a stable cache key. The file
    is written through a temporary file in the same folder, so ``path`` never holds a partial model.

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
    write_model(path, data, "synthetic ResNet50 model", "about 100 MB for 'full'")
    return BuildInfo(
        path=path,
        variant=variant,
        seed=seed,
        parameters=parameters,
        size_bytes=len(data),
        seconds=time.perf_counter() - start,
        md5=hashlib.md5(data).hexdigest(),
    )


BN_EPS = 1e-5
"""torchvision's BatchNorm epsilon (the reference layout's BatchNorms are the identity up to it)."""


def reference_state(onnx_path: Path) -> dict[str, np.ndarray]:
    """The synthetic ONNX ResNet50's weights in torchvision's state-dict layout, as float32 arrays: the
    one seeded network, for every framework that builds ResNet50 itself (PyTorch, TensorFlow).

    The ONNX convs carry their folded BatchNorm as a bias; here each BatchNorm is the identity with that
    bias as its shift (running_var = 1 - eps, so that the folded scale is 1 to float precision).
    """
    import re

    from onnx import numpy_helper

    from ..errors import ModelError

    try:
        graph = onnx.load(str(onnx_path)).graph
    except Exception as exc:  # onnx raises decode, OS and checker errors alike
        raise ModelError(f"{onnx_path} is not a readable ONNX model ({type(exc).__name__}).",
                         "delete it; the next run rebuilds it.") from None
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    if "stem.conv.weight" not in weights or "fc.weight" not in weights:
        raise ModelError(f"{onnx_path} is not the synthetic ResNet50 (no stem.conv or fc weights).",
                         "delete it; the next run rebuilds it.")
    state: dict[str, np.ndarray] = {}

    def conv(onnx_name: str, conv_key: str, bn_key: str) -> None:
        bias = weights[f"{onnx_name}.bias"].astype(np.float32)
        state[conv_key] = weights[f"{onnx_name}.weight"].astype(np.float32)
        state[f"{bn_key}.weight"] = np.ones(len(bias), np.float32)
        state[f"{bn_key}.bias"] = bias
        state[f"{bn_key}.running_mean"] = np.zeros(len(bias), np.float32)
        state[f"{bn_key}.running_var"] = np.full(len(bias), 1.0 - BN_EPS, np.float32)

    conv("stem.conv", "conv1.weight", "bn1")
    for name in sorted({n.rsplit(".", 2)[0] for n in weights if n.startswith("stage")}):
        stage, block = re.match(r"stage(\d)\.block(\d+)", name).groups()
        prefix = f"layer{stage}.{int(block) - 1}"
        for i in (1, 2, 3):
            conv(f"{name}.conv{i}", f"{prefix}.conv{i}.weight", f"{prefix}.bn{i}")
        if f"{name}.downsample.weight" in weights:
            conv(f"{name}.downsample", f"{prefix}.downsample.0.weight", f"{prefix}.downsample.1")
    state["fc.weight"] = weights["fc.weight"].astype(np.float32)
    state["fc.bias"] = weights["fc.bias"].astype(np.float32)
    return state
