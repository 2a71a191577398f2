"""Per-sensor SimMIM decoder: a 1x1 convolution to ``stride**2 * C_sensor`` channels and a pixel
shuffle back to full resolution (``Conv2d(8D, 32*32*C, 1) + PixelShuffle(32)`` for four stages)."""

from __future__ import annotations

from torch import Tensor, nn


class SimMIMDecoder(nn.Module):
    """Reconstruct a sensor's bands from the last encoder stage.

    Args:
        in_dim: Width of the last stage (8 * embed_dim for four stages).
        out_chans: Bands of the sensor to reconstruct.
        stride: Pixels per last-stage token (32 for patch 4 and four stages).
    """

    def __init__(self, in_dim: int, out_chans: int, stride: int):
        super().__init__()
        self.out_chans = out_chans
        self.proj = nn.Conv2d(in_dim, stride * stride * out_chans, kernel_size=1)
        self.shuffle = nn.PixelShuffle(stride)

    def forward(self, features: Tensor) -> Tensor:
        """``(B, in_dim, H/stride, W/stride)`` to ``(B, out_chans, H, W)``."""
        return self.shuffle(self.proj(features))
