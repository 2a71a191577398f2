"""Task heads on the msGFM encoder's four stage maps (strides 4, 8, 16 and 32).

- :class:`ClassificationHead`: global average pool of the last stage + one linear layer.
- :class:`FPNNeck`: a light feature pyramid (UPerNet's FPN part without the pyramid pooling):
  lateral 1x1 convs, top-down sum, 3x3 smoothing, every level fused at stride 4.
- :class:`SegmentationHead`: FPN -> per-class 1x1 conv -> x4 bilinear upsampling.
- :class:`ResidualImageHead`: dense decoder for image-to-image tasks (cloud removal,
  pan-sharpening): FPN features upsampled to the input grid, concatenated with the input pixels
  (the stride-4 tokens cannot carry the pan band's finest detail), two 3x3 convs to the output
  bands, added to a base image (the cloudy S2, the upsampled MS).
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: finetuning batches are small (a few tiles per step on CPU) and the
    # exported graph must not depend on running statistics.
    return nn.GroupNorm(min(8, channels), channels)


class ConvNormAct(nn.Sequential):
    """``Conv2d`` + GroupNorm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            _norm(out_channels),
            nn.ReLU(inplace=True),
        )


class ClassificationHead(nn.Module):
    """Scene logits from the last stage: global average pool + linear.

    Args:
        in_channels: Width of the last encoder stage.
        num_classes: Number of classes (one logit each).
    """

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return self.fc(features[-1].mean(dim=(2, 3)))


class FPNNeck(nn.Module):
    """Feature pyramid over the encoder stages, fused into one stride-4 map.

    Args:
        in_channels: Width of each encoder stage, finest first.
        channels: Width of every pyramid level and of the fused output.
    """

    def __init__(self, in_channels: Sequence[int], channels: int):
        super().__init__()
        self.laterals = nn.ModuleList([nn.Conv2d(c, channels, 1) for c in in_channels])
        self.smooth = nn.ModuleList([ConvNormAct(channels, channels, 3) for _ in in_channels])
        self.fuse = ConvNormAct(channels * len(in_channels), channels, 3)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        laterals = [conv(f) for conv, f in zip(self.laterals, features)]
        # Top-down: each coarser level, upsampled to the finer one's exact size (odd maps do not
        # double evenly), adds its context to the finer level.
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest"
            )
        levels: List[Tensor] = [smooth(x) for smooth, x in zip(self.smooth, laterals)]
        size = levels[0].shape[-2:]
        fused = [levels[0]] + [
            F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in levels[1:]
        ]
        return self.fuse(torch.cat(fused, dim=1))


class SegmentationHead(nn.Module):
    """Per-pixel class logits at input resolution from the FPN's stride-4 map.

    Args:
        in_channels: Width of each encoder stage.
        num_classes: Number of classes.
        channels: FPN width.
        patch_size: Stride of the finest stage (the upsampling factor back to pixels).
    """

    def __init__(
        self, in_channels: Sequence[int], num_classes: int, channels: int, patch_size: int
    ):
        super().__init__()
        self.neck = FPNNeck(in_channels, channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.patch_size = patch_size

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        logits = self.classifier(self.neck(features))
        return F.interpolate(
            logits, scale_factor=float(self.patch_size), mode="bilinear", align_corners=False
        )


class ResidualImageHead(nn.Module):
    """Dense image decoder predicting a correction of a base image.

    Args:
        in_channels: Width of each encoder stage.
        image_channels: Bands of all input images together (concatenated as a skip).
        out_channels: Output bands (those of the base image).
        channels: FPN width.
    """

    def __init__(
        self, in_channels: Sequence[int], image_channels: int, out_channels: int, channels: int
    ):
        super().__init__()
        self.neck = FPNNeck(in_channels, channels)
        self.refine = ConvNormAct(channels + image_channels, channels, 3)
        self.out = nn.Conv2d(channels, out_channels, 3, padding=1)
        # Zero-initialised output: before finetuning the model returns the base image unchanged
        # (no clouds removed, plain upsampled MS), a sensible start for a residual.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, features: Sequence[Tensor], images: Tensor, base: Tensor) -> Tensor:
        fused = F.interpolate(
            self.neck(features), size=images.shape[-2:], mode="bilinear", align_corners=False
        )
        return base + self.out(self.refine(torch.cat([fused, images], dim=1)))
