"""ResNet50 v1.5 as the project's own PyTorch module, in torchvision's state-dict layout (no torchvision).

Two weight sources load into the same module, both strictly (no missing or unexpected key):

- the official ``resnet50-19c8e357.pth`` (torchvision layout, 1000 classes, trained on mean/std-normalised
  RGB in [0, 1]);
- the synthetic ONNX stand-in's weights (:func:`state_dict_from_onnx`; 1001 classes with 0 = background,
  BatchNorm folded into the conv biases, mean-subtracted pixels), so that PyTorch and ONNX Runtime run the
  same seeded network.

The module's I/O is the ResNet50 task's, whatever the weights: it takes the reference's preprocessed
images (RGB, mean-subtracted, not divided by the standard deviation, NCHW float32) and returns the class
index in the official ONNX convention (1001-way, 0 = background). For torchvision weights the module
converts its input to torchvision's normalisation and adds the background class's 1 to the argmax.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from .torch_weights import load_strictly

IMAGENET_CLASSES = 1000
# The reference's preprocessing subtracts these RGB means (0-255 scale); torchvision's weights want
# (pixel / 255 - mean) / std instead, which is (pixel - 255 * mean) / (255 * std): the same means.
_TORCHVISION_STD = (0.229, 0.224, 0.225)
_BN_EPS = 1e-5
_STAGE_WIDTHS = (64, 128, 256, 512)
_EXPANSION = 4
_OFFICIAL_FIX = "use the official resnet50-19c8e357.pth (zenodo 4588417) or --model-source synthetic."


class ConvBN(nn.Module):
    """A bias-free conv and its BatchNorm's four tensors, folded into one conv with bias for inference."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False)
        for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(f"bn_{name}", torch.full((out_ch,), value))

    def fold(self) -> None:
        """Put the BatchNorm into the conv's weight and a bias (what ONNX Runtime does to the ONNX file)."""
        scale = self.bn_weight / torch.sqrt(self.bn_running_var + _BN_EPS)
        self.conv.weight.data.mul_(scale.reshape(-1, 1, 1, 1))
        self.conv.bias = nn.Parameter(self.bn_bias - self.bn_running_mean * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Bottleneck(nn.Module):
    """v1.5 bottleneck: the stride on the 3x3 conv."""

    def __init__(self, in_ch: int, width: int, stride: int):
        super().__init__()
        out_ch = width * _EXPANSION
        self.conv1 = ConvBN(in_ch, width, 1)
        self.conv2 = ConvBN(width, width, 3, stride)
        self.conv3 = ConvBN(width, out_ch, 1)
        self.downsample = ConvBN(in_ch, out_ch, 1, stride) if stride != 1 or in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv1(x))
        y = torch.relu(self.conv2(y))
        y = self.conv3(y)
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """ResNet50 v1.5 with ``blocks`` per stage and widths divided by ``divisor`` (1 = the real network)."""

    def __init__(self, blocks: tuple[int, ...] = (3, 4, 6, 3), divisor: int = 1, classes: int = 1001,
                 input_scale: tuple[float, ...] | None = None):
        super().__init__()
        stem = 64 // divisor
        self.conv1 = ConvBN(3, stem, 7, 2)
        ch = stem
        for stage, (n, width) in enumerate(zip(blocks, _STAGE_WIDTHS, strict=True), start=1):
            layers = []
            for block in range(n):
                layers.append(Bottleneck(ch, width // divisor, 2 if stage > 1 and block == 0 else 1))
                ch = width // divisor * _EXPANSION
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.fc = nn.Linear(ch, classes)
        # 1000 classes: torchvision's head, whose argmax is one less than the official ONNX model's.
        self.background = 1 if classes == IMAGENET_CLASSES else 0
        scale = torch.ones(3) if input_scale is None else torch.tensor(input_scale)
        self.register_buffer("input_scale", scale.reshape(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        x = images * self.input_scale.to(images.dtype)
        x = torch.relu(self.conv1(x))
        x = nn.functional.max_pool2d(x, 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        logits = self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
        return (torch.argmax(logits, dim=1) + self.background,)


def _to_module_key(key: str) -> str:
    """torchvision's names (``layer1.0.bn1.running_var``, ``downsample.1.weight``) to this module's."""
    key = re.sub(r"^bn1\.", "conv1.bn_", key)
    key = re.sub(r"\.bn(\d)\.", r".conv\1.bn_", key)
    key = re.sub(r"\.downsample\.0\.weight$", ".downsample.conv.weight", key)
    key = re.sub(r"\.downsample\.1\.", ".downsample.bn_", key)
    return re.sub(r"^(conv1|layer\d\.\d+\.conv\d)\.weight$", r"\1.conv.weight", key)


def _shape(state: dict[str, torch.Tensor]) -> tuple[tuple[int, ...], int, int]:
    """(blocks per stage, width divisor, classes) of a torchvision-layout ResNet50 state dict."""
    try:
        blocks = tuple(len({k.split(".")[1] for k in state if k.startswith(f"layer{s}.")}) for s in (1, 2, 3, 4))
        divisor = 64 // int(state["conv1.weight"].shape[0])
        classes = int(state["fc.weight"].shape[0])
    except (KeyError, ValueError, ZeroDivisionError, IndexError, AttributeError):
        raise ModelError("This file is not a ResNet50 state dict (no conv1.weight or fc.weight).",
                         _OFFICIAL_FIX) from None
    return blocks, divisor, classes


def build_module(state_dict: dict[str, torch.Tensor]) -> ResNet50:
    """The ResNet50 of ``state_dict`` (torchvision layout), loaded strictly and with BatchNorm folded.

    ``num_batches_tracked`` counters (training state) are dropped. Raises :class:`ModelError` naming the
    missing or unexpected keys, or the tensors of the wrong shape.
    """
    state = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    blocks, divisor, classes = _shape(state)
    scale = tuple(1.0 / (255.0 * s) for s in _TORCHVISION_STD) if classes == IMAGENET_CLASSES else None
    module = ResNet50(blocks, divisor, classes, scale)
    renamed = {_to_module_key(k): v for k, v in state.items()}
    load_strictly(module, renamed, "the ResNet50 v1.5 architecture", _OFFICIAL_FIX)
    for part in module.modules():
        if isinstance(part, ConvBN):
            part.fold()
    return module.eval()


def state_dict_from_onnx(onnx_path: Path) -> dict[str, torch.Tensor]:
    """The synthetic ONNX ResNet50's weights in torchvision's layout (:func:`synthetic_resnet50.reference_state`)
    as tensors: the same seeded network for PyTorch."""
    from .synthetic_resnet50 import reference_state

    return {key: torch.from_numpy(value) for key, value in reference_state(onnx_path).items()}


def load_official(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a torchvision ResNet50 ``.pth`` (tensors only: no code is unpickled)."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike
        raise ModelError(f"{path} is not a PyTorch state dict ({type(exc).__name__}: {str(exc)[:120]}).",
                         _OFFICIAL_FIX) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} holds no ResNet50 state dict.", _OFFICIAL_FIX)
    return state
