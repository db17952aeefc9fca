"""RetinaNet ResNeXt50-32x4d FPN as the project's own PyTorch module, in torchvision's state-dict layout.

No torchvision: the backbone (frozen BatchNorm), FPN with P6/P7, the two shared heads and the whole
post-processing are written here, so that the PyTorch backend runs MLPerf's RetinaNet with either

- the official ``resnext50_32x4d_fpn.pth`` (:func:`load_official`), or
- the synthetic ONNX stand-in's seeded weights (:func:`state_dict_from_onnx`, the tensors of
  :func:`~.synthetic_retinanet.reference_state`), which then gives the same
  detections as ONNX Runtime on the ONNX file.

The module's I/O is the ONNX model's: ``images`` float [1,3,H,W] RGB in [0,1] (normalised inside) to
``(boxes [K,4] float32, scores [K] float32 descending, labels [K] int64)``, K <= 300. The layers follow
the module's dtype (fp32, fp16 or bf16); the post-processing always runs in float32.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ModelError
from .synthetic_retinanet import (
    BBOX_XFORM_CLIP,
    BN_EPS,
    DETECTIONS_PER_IMAGE,
    IMAGE_MEAN,
    IMAGE_STD,
    NMS_IOU,
    SCORE_THRESHOLD,
    TOPK_CANDIDATES,
    Layout,
    anchors,
    layout_of,
    reference_state,
    upgrade_keys,
)
from .torch_weights import load_strictly

_OFFICIAL_FIX = "use the official resnext50_32x4d_fpn.pth or --model-source synthetic."


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics, as torchvision's: four buffers, ``eps`` 1e-5, no training state."""

    def __init__(self, channels: int):
        super().__init__()
        for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((channels,), value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Scale and shift in float32 whatever the module's dtype: 1 - eps + eps must stay 1 for the
        # synthetic weights' identity BatchNorm.
        scale = self.weight.float() * torch.rsqrt(self.running_var.float() + BN_EPS)
        shift = self.bias.float() - self.running_mean.float() * scale
        return x * scale.to(x.dtype).reshape(1, -1, 1, 1) + shift.to(x.dtype).reshape(1, -1, 1, 1)


class Bottleneck(nn.Module):
    """ResNeXt bottleneck: 1x1, grouped 3x3 carrying the stride, 1x1, and a projection when the shape changes."""

    def __init__(self, in_ch: int, width: int, out_ch: int, groups: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = FrozenBatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = FrozenBatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                            FrozenBatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class Body(nn.Module):
    """ResNeXt50 32x4d without its classifier; returns C3, C4, C5."""

    def __init__(self, layout: Layout):
        super().__init__()
        self.conv1 = nn.Conv2d(3, layout.stem, 7, 2, 3, bias=False)
        self.bn1 = FrozenBatchNorm2d(layout.stem)
        ch = layout.stem
        for stage, (n, width, out_ch) in enumerate(zip(layout.blocks, layout.widths, layout.outs, strict=True), 1):
            blocks = []
            for block in range(n):
                blocks.append(Bottleneck(ch, width, out_ch, layout.groups, 2 if stage > 1 and block == 0 else 1))
                ch = out_ch
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return [c3, c4, self.layer4(c4)]


class LastLevelP6P7(nn.Module):
    """P6 = stride-2 3x3 conv of P5 (in == out channels), P7 the same on ReLU(P6)."""

    def __init__(self, width: int):
        super().__init__()
        self.p6 = nn.Conv2d(width, width, 3, 2, 1)
        self.p7 = nn.Conv2d(width, width, 3, 2, 1)

    def forward(self, p5: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(p5)
        return [p6, self.p7(torch.relu(p6))]


class FPN(nn.Module):
    """torchvision's FeaturePyramidNetwork on C3-C5 (1x1 laterals, nearest top-down, 3x3 outputs) plus P6/P7."""

    def __init__(self, channels: tuple[int, ...], width: int):
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(c, width, 1)) for c in channels)
        self.layer_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(width, width, 3, 1, 1)) for _ in channels)
        self.extra_blocks = LastLevelP6P7(width)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        last = self.inner_blocks[-1](features[-1])
        results = [self.layer_blocks[-1](last)]
        for i in range(len(features) - 2, -1, -1):
            lateral = self.inner_blocks[i](features[i])
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            results.insert(0, self.layer_blocks[i](last))
        return results + self.extra_blocks(results[-1])


class Backbone(nn.Module):
    """``backbone.body`` and ``backbone.fpn``: P3..P7."""

    def __init__(self, layout: Layout):
        super().__init__()
        self.body = Body(layout)
        self.fpn = FPN(layout.outs[1:], layout.fpn)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.fpn(self.body(x))


class Head(nn.Module):
    """4 x (3x3 conv + ReLU) and an output conv, shared by every level (Conv2dNormActivation's key layout)."""

    def __init__(self, width: int, out_ch: int, out_name: str):
        super().__init__()
        self.conv = nn.Sequential(*(nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.ReLU()) for _ in range(4)))
        self.out_name = out_name
        setattr(self, out_name, nn.Conv2d(width, out_ch, 3, 1, 1))

    def forward(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        out = getattr(self, self.out_name)
        return [out(self.conv(x)) for x in levels]


class Heads(nn.Module):
    """``head.classification_head`` (``cls_logits``) and ``head.regression_head`` (``bbox_reg``)."""

    def __init__(self, layout: Layout):
        super().__init__()
        self.classification_head = Head(layout.fpn, layout.anchors * layout.classes, "cls_logits")
        self.regression_head = Head(layout.fpn, layout.anchors * 4, "bbox_reg")


class RetinaNet(nn.Module):
    """Normalisation, backbone, heads and torchvision's ``postprocess_detections`` for one image."""

    def __init__(self, layout: Layout = Layout()):  # noqa: B008 (a frozen dataclass: immutable)
        super().__init__()
        self.layout = layout
        self.backbone = Backbone(layout)
        self.head = Heads(layout)
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).reshape(1, 3, 1, 1), persistent=False)
        # Anchors as (centre x, centre y, width, height) per level, float32 per (side, device); plain
        # attributes, not buffers, so that ``module.to(dtype)`` leaves them in float32.
        self._priors: dict[tuple[int, str], list[torch.Tensor]] = {}

    def priors(self, side: int, device: torch.device) -> list[torch.Tensor]:
        """torchvision's anchors for a ``side`` x ``side`` input, as the ONNX graph's decoding table."""
        key = (side, str(device))
        if key not in self._priors:
            tables = []
            for level in anchors(side):
                widths = level[:, 2:] - level[:, :2]
                centres = level[:, :2] + np.float32(0.5) * widths
                tables.append(torch.from_numpy(np.concatenate([centres, widths], axis=1)).to(device))
            self._priors[key] = tables
        return self._priors[key]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if images.dim() != 4 or images.shape[0] != 1 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
            raise ValueError(f"expected images [1,3,S,S] (batch 1, square), got {list(images.shape)}")
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        levels = self.backbone(x)
        cls = self.head.classification_head(levels)
        box = self.head.regression_head(levels)
        return postprocess(cls, box, self.priors(images.shape[-1], images.device), self.layout.classes,
                           images.shape[-1])


def postprocess(cls_outputs: list[torch.Tensor], box_outputs: list[torch.Tensor], priors: list[torch.Tensor],
                classes: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per level the 1000 best sigmoid scores over (H, W, A, C) above 0.05, BoxCoder decoding (weights 1,
    dw/dh clamped), clipping to the image, per-class NMS and the 300 best: the ONNX graph's steps, in float32."""
    scores, labels, deltas, chosen = [], [], [], []
    for cls, box, table in zip(cls_outputs, box_outputs, priors, strict=True):
        h, w = cls.shape[-2:]
        anchors_per_location = box.shape[1] // 4
        # (1, A*C, H, W) -> (H, W, A, C) flattened: index = anchor * C + class.
        logits = cls.float().reshape(anchors_per_location, classes, h, w).permute(2, 3, 0, 1).reshape(-1)
        top, idx = torch.topk(torch.sigmoid(logits), min(TOPK_CANDIDATES, logits.numel()), sorted=True)
        keep = top > SCORE_THRESHOLD
        top, idx = top[keep], idx[keep]
        anchor_idx = torch.div(idx, classes, rounding_mode="floor")
        scores.append(top)
        labels.append(idx % classes)
        reg = box.float().reshape(anchors_per_location, 4, h, w).permute(2, 3, 0, 1).reshape(-1, 4)
        deltas.append(reg[anchor_idx])
        chosen.append(table[anchor_idx])
    side = float(image_size)
    score, label, delta, prior = (torch.cat(t) for t in (scores, labels, deltas, chosen))
    centre = delta[:, :2] * prior[:, 2:] + prior[:, :2]
    half = torch.exp(torch.clamp(delta[:, 2:], max=BBOX_XFORM_CLIP)) * prior[:, 2:] * 0.5
    boxes = torch.clamp(torch.cat([centre - half, centre + half], dim=1), 0.0, side)
    keep = batched_nms(boxes, score, label, side)
    return boxes[keep], score[keep], label[keep]


def _iou(boxes: torch.Tensor) -> torch.Tensor:
    """IoU matrix of x1, y1, x2, y2 boxes; 0 where a box or the union has no area (as ONNX Runtime's NMS)."""
    lo = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (hi - lo).clamp(min=0).prod(dim=2)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1)
    union = area[:, None] + area[None, :] - inter
    valid = (area[:, None] > 0) & (area[None, :] > 0) & (union > 0) & (inter > 0)
    return torch.where(valid, inter / torch.where(valid, union, torch.ones_like(union)), torch.zeros_like(inter))


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, side: float) -> torch.Tensor:
    """Indices of the boxes greedy per-class NMS keeps (IoU > 0.5 suppressed), by descending score, at most 300.

    As the exported model: each class's boxes are offset by label * (side + 1) so classes never overlap
    (the IoU is computed on the offset float32 coordinates, as ONNX Runtime does). Since boxes of different
    classes never suppress each other, the greedy pass runs per class on small IoU matrices; the classes'
    survivors merged by score are the global greedy pass's, whose first 300 are kept.
    """
    if scores.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=scores.device)
    order = torch.argsort(scores, descending=True, stable=True)
    shifted = (boxes + (labels.to(boxes.dtype) * (side + 1.0))[:, None])[order]
    ranked_labels = labels[order]
    kept = []
    for label in torch.unique(ranked_labels):
        members = torch.nonzero(ranked_labels == label).flatten()
        over = (_iou(shifted[members]) > NMS_IOU).cpu().numpy()
        alive = np.ones(len(members), dtype=bool)
        for i in range(len(members)):
            if alive[i]:
                alive[i + 1:] &= ~over[i, i + 1:]
        kept.append(members[torch.from_numpy(alive).to(members.device)])
    ranks = torch.sort(torch.cat(kept)).values[:DETECTIONS_PER_IMAGE]
    return order[ranks]


def build_module(state_dict: dict[str, torch.Tensor]) -> RetinaNet:
    """The RetinaNet of ``state_dict`` (torchvision layout, old key spellings accepted), loaded strictly.

    The variant (blocks per stage, widths, groups) comes from the tensors' shapes. Raises
    :class:`ModelError` naming up to 5 missing or unexpected keys or tensors of the wrong shape.
    """
    if not isinstance(state_dict, dict) or not state_dict:
        raise ModelError("The RetinaNet weights are not a state dict.", _OFFICIAL_FIX)
    state = upgrade_keys(state_dict)
    module = RetinaNet(layout_of(state, _OFFICIAL_FIX))
    load_strictly(module, state, "RetinaNet ResNeXt50-32x4d FPN", _OFFICIAL_FIX)
    return module.eval()


def state_dict_from_onnx(onnx_path: Path) -> dict[str, torch.Tensor]:
    """The synthetic ONNX RetinaNet's weights in torchvision's layout: the same seeded network for PyTorch
    (:func:`~.synthetic_retinanet.reference_state` as tensors; the same :class:`ModelError` for a foreign file)."""
    return {key: torch.from_numpy(value) for key, value in reference_state(onnx_path).items()}


def load_official(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of the official ``resnext50_32x4d_fpn.pth`` (TorchScript) or of a plain state-dict file.

    TorchScript first (``torch.jit.load``, as MLCommons publishes it); then ``torch.load`` with
    ``weights_only`` (tensors only, no code unpickled), unwrapping a ``model`` or ``state_dict`` entry.
    """
    try:
        with warnings.catch_warnings():
            # torch.jit is deprecated upstream, but it is the official file's format: nothing for a user to do.
            warnings.simplefilter("ignore", DeprecationWarning)
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    except Exception as exc:  # not TorchScript (or unreadable): try a plain state dict
        first = exc
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike
        raise ModelError(f"{path} is neither a TorchScript RetinaNet nor a PyTorch state dict "
                         f"({type(first).__name__}; {type(exc).__name__}: {str(exc)[:120]}).", _OFFICIAL_FIX) from None
    for wrapper in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} holds no RetinaNet state dict.", _OFFICIAL_FIX)
    return state
