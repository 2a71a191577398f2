"""The benchmark's model: the msGFM ``small`` encoder with a light dense land-cover head.

Shared by the ONNX export (the engine's side) and the naive torch loop, so both run the very same
weights. The head sums 1 x 1 projections of the four encoder stages at stride 4 (an FPN without
its top-down convolutions), classifies, and upsamples the class scores bilinearly to the input
grid: a per-pixel class output, as a land-cover model has.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from backend.models.config import get_config
from backend.models.encoder import MsGFMEncoder

TILE = 192  # 48 tokens at stride 4: 8 x 8 windows of 6 tokens in stage 1, one window in stage 4
OVERLAP = 0.125  # 24 px = one 6-token window of stage 1 on each side
CLASSES = 7
HEAD_WIDTH = 32


class LandCoverNet(nn.Module):
    """msGFM encoder (``small`` config, Sentinel-2 embedding) + light dense head.

    Args:
        classes: land-cover classes.
    """

    def __init__(self, classes: int = CLASSES):
        super().__init__()
        self.encoder = MsGFMEncoder(get_config("small"))
        dims = self.encoder.config.stage_dims
        self.lateral = nn.ModuleList([nn.Conv2d(d, HEAD_WIDTH, 1) for d in dims])
        self.classify = nn.Conv2d(HEAD_WIDTH, classes, 1)

    def forward(self, s2: Tensor) -> Tensor:
        features = self.encoder({"s2": s2}).features
        fused = self.lateral[0](features[0])
        for lateral, feature in zip(self.lateral[1:], features[1:]):
            fused = fused + nn.functional.interpolate(
                lateral(feature), size=fused.shape[-2:], mode="nearest"
            )
        scores = self.classify(torch.relu(fused))
        return nn.functional.interpolate(scores, size=s2.shape[-2:], mode="bilinear")


def build_net(weights: str = "") -> LandCoverNet:
    """The benchmark net in eval mode: seeded weights, or the saved ``weights`` state dict."""
    torch.manual_seed(0)
    net = LandCoverNet()
    if weights:
        net.load_state_dict(torch.load(weights))
    return net.eval()


def flops_per_tile(net: nn.Module, bands: int) -> int:
    """Floating-point operations of one ``TILE`` x ``TILE`` forward pass (torch's flop counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, bands, TILE, TILE))
    return int(counter.get_total_flops())
