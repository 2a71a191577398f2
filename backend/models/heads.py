"""Task heads on the msGFM encoder's four stage maps (strides 4, 8, 16 and 32).

- :class:`ClassificationHead`: global average pool of every stage (as the embedding export reads
  them), layer-normalised and concatenated, + one linear layer.
- :class:`FPNNeck`: a light feature pyramid (UPerNet's FPN part without the pyramid pooling):
  lateral 1x1 convs, top-down sum, 3x3 smoothing, every level fused at stride 4.
- :class:`SegmentationHead`: FPN -> per-class 1x1 conv -> x4 bilinear upsampling.
- :class:`ResidualImageHead`: dense decoder for image-to-image tasks (cloud removal,
  pan-sharpening): FPN features upsampled to the input grid, concatenated with the input pixels
  (the stride-4 tokens cannot carry the pan band's finest detail), two 3x3 convs to the output
  bands, added to a base image (the cloudy S2, the upsampled MS).
- :class:`GatedResidualImageHead`: the same decoder, plus a per-pixel cloud weight; the correction
  applies only where the weight is above zero, so clear pixels pass through unchanged.
- :class:`BroveyResidualImageHead`: pan-sharpening whose base is the Brovey transform computed in
  the graph from the inputs, so the untrained model is the classical method.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

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
    """Scene logits from every encoder stage: global average pools, concatenated, + linear.

    The last stage alone is the most collapsed one after masked image modelling; the embedding
    export concatenates the stages for that reason, and the scene head reads them the same way.
    Each pooled stage is layer-normalised so that no stage dominates by its scale.

    Args:
        in_channels: Width of each encoder stage (or of the last one only, an int).
        num_classes: Number of classes (one logit each).
    """

    def __init__(self, in_channels: Union[int, Sequence[int]], num_classes: int):
        super().__init__()
        widths = [in_channels] if isinstance(in_channels, int) else list(in_channels)
        self.stages = len(widths)
        self.norms = nn.ModuleList([nn.LayerNorm(c) for c in widths])
        self.fc = nn.Linear(sum(widths), num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        used = list(features)[-self.stages :]
        pooled = [norm(f.mean(dim=(2, 3))) for norm, f in zip(self.norms, used)]
        return self.fc(torch.cat(pooled, dim=1))


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


class GatedResidualImageHead(ResidualImageHead):
    """Cloud removal that keeps clear pixels by construction: ``base + weight * correction``.

    Besides the correction of :class:`ResidualImageHead`, the decoder predicts a per-pixel cloud
    probability ``p`` (trained against the simulated cloud opacity). The correction is applied
    with the weight ``max(0, p - floor) / (1 - floor)``: where the model sees no cloud
    (``p <= floor``) the output *is* the input, bit for bit, so a clear scene keeps its radiometry
    whatever the correction branch does.

    Args:
        in_channels: Width of each encoder stage.
        image_channels: Bands of all input images together (concatenated as a skip).
        out_channels: Output bands (those of the base image).
        channels: FPN width.
        floor: Cloud probability at or below which a pixel is passed through unchanged.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        image_channels: int,
        out_channels: int,
        channels: int,
        floor: float = 0.2,
    ):
        super().__init__(in_channels, image_channels, out_channels, channels)
        self.gate = nn.Conv2d(channels, 1, 3, padding=1)
        # Start from "no cloud anywhere": the untrained model returns its input.
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, -3.0)
        # The floor is part of the weights (a buffer): a floor calibrated after training on the
        # validation split travels with the checkpoint into the exported graph.
        self.register_buffer("gate_floor", torch.tensor(0.2))
        self.set_floor(floor)
        self.cloud_probability: Optional[Tensor] = None

    @property
    def floor(self) -> float:
        """Cloud probability at or below which a pixel is passed through unchanged."""
        return float(self.gate_floor)

    def set_floor(self, floor: float) -> None:
        """Change the floor (e.g. to one calibrated on validation patches)."""
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {floor}")
        with torch.no_grad():
            self.gate_floor.fill_(float(floor))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before the floor was a buffer keep the floor they were trained
        # with (0.2).
        state_dict.setdefault(prefix + "gate_floor", torch.tensor(0.2))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def weight(self, probability: Tensor) -> Tensor:
        """The correction's weight from the cloud probability (exactly 0 up to ``floor``)."""
        floor = self.gate_floor.to(probability.dtype)
        return torch.clamp((probability - floor) / (1.0 - floor), min=0.0)

    def forward(self, features: Sequence[Tensor], images: Tensor, base: Tensor) -> Tensor:
        fused = F.interpolate(
            self.neck(features), size=images.shape[-2:], mode="bilinear", align_corners=False
        )
        hidden = self.refine(torch.cat([fused, images], dim=1))
        probability = torch.sigmoid(self.gate(hidden))
        self.cloud_probability = probability[:, 0]
        return base + self.weight(probability) * self.out(hidden)


class BroveyResidualImageHead(ResidualImageHead):
    """Pan-sharpening that *is* the Brovey transform before finetuning: ``brovey * exp(c)``.

    The base image is computed in the graph from the model's own inputs: the normalised pan and
    MS are brought back to their sensor units (the statistics the model normalises with, kept as
    buffers), the pan band is matched to the MS intensity (the mean of the bands) by mean and
    standard deviation over each tile, and every MS band is multiplied by ``pan / intensity``
    (bands kept where the intensity is not positive). The decoder sees that base beside the
    inputs and predicts one zero-initialised log-gain ``c`` per pixel (limited to +-1), applied
    to every band alike: the untrained model returns Brovey, and finetuning learns how bright
    each pixel should be (the detail Brovey over- or under-injects) but cannot turn a spectrum.
    The output's spectral angles are Brovey's, which are the upsampled MS's, by construction: a
    per-band correction learned on the sample pairs turned the spectra of the validation pair
    by half a degree (docs/models/pansharpening.md).

    Args:
        in_channels: Width of each encoder stage.
        image_channels: Bands of all input images together (concatenated as a skip).
        out_channels: Output (MS) bands.
        channels: FPN width.
        pan_channel: Index of the pan band among the concatenated input images.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        image_channels: int,
        out_channels: int,
        channels: int,
        pan_channel: int = 0,
    ):
        # One output channel: the log-gain shared by every band.
        super().__init__(in_channels, image_channels + out_channels, 1, channels)
        self.pan_channel = int(pan_channel)
        # The statistics the inputs are normalised with (saved with the weights): the registry's
        # until set_statistics() gives a run's own (the finetuning trainer does).
        self.register_buffer("ms_mean", torch.zeros(out_channels))
        self.register_buffer("ms_std", torch.ones(out_channels))
        self.register_buffer("pan_mean", torch.zeros(1))
        self.register_buffer("pan_std", torch.ones(1))

    def set_statistics(
        self,
        pan_mean: Sequence[float],
        pan_std: Sequence[float],
        ms_mean: Sequence[float],
        ms_std: Sequence[float],
    ) -> None:
        """The per-band mean and std the pan and MS inputs are normalised with."""
        for name, values in (
            ("pan_mean", pan_mean),
            ("pan_std", pan_std),
            ("ms_mean", ms_mean),
            ("ms_std", ms_std),
        ):
            buffer = getattr(self, name)
            tensor = torch.as_tensor([float(v) for v in values], dtype=buffer.dtype)
            if tensor.shape != buffer.shape:
                raise ValueError(f"{name}: {tensor.numel()} values for {buffer.numel()} band(s)")
            if name.endswith("std") and not bool((tensor > 0).all()):
                raise ValueError(f"{name} must be positive, got {tensor.tolist()}")
            with torch.no_grad():
                buffer.copy_(tensor)

    def brovey(self, pan: Tensor, ms: Tensor) -> Tensor:
        """Brovey-sharpened MS in sensor units from normalised ``pan`` (B, 1, H, W) and
        upsampled ``ms`` (B, C, H, W)."""
        ms_mean, ms_std = self.ms_mean.view(1, -1, 1, 1), self.ms_std.view(1, -1, 1, 1)
        ms_raw = ms * ms_std + ms_mean
        pan_raw = pan * self.pan_std.view(1, 1, 1, 1) + self.pan_mean.view(1, 1, 1, 1)
        intensity = ms_raw.mean(dim=1, keepdim=True)
        # The pan band matched to the intensity over the tile (as the classical method does over
        # the image), so that sharpening keeps the MS brightness.
        pan_centred = pan_raw - pan_raw.mean(dim=(2, 3), keepdim=True)
        pan_spread = pan_centred.pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
        mean_i = intensity.mean(dim=(2, 3), keepdim=True)
        spread_i = (intensity - mean_i).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
        matched = pan_centred / pan_spread.clamp(min=1e-6) * spread_i + mean_i
        positive = intensity > 0
        gain = torch.where(positive, matched / torch.where(positive, intensity, 1.0), 1.0)
        return ms_raw * gain

    def normalised(self, image: Tensor) -> Tensor:
        """An MS image in sensor units, normalised as the model's MS input and output are."""
        return (image - self.ms_mean.view(1, -1, 1, 1)) / self.ms_std.view(1, -1, 1, 1)

    def forward(self, features: Sequence[Tensor], images: Tensor, base: Tensor) -> Tensor:
        pan = images[:, self.pan_channel : self.pan_channel + 1]
        sharpened = self.brovey(pan, base)
        fused = F.interpolate(
            self.neck(features), size=images.shape[-2:], mode="bilinear", align_corners=False
        )
        hidden = self.refine(torch.cat([fused, images, self.normalised(sharpened)], dim=1))
        log_gain = torch.clamp(self.out(hidden), -1.0, 1.0)
        return self.normalised(sharpened * torch.exp(log_gain))
