"""What an embedding model outputs: chosen encoder stages, pooled onto the last stage's grid.

Masked-image-modelling encoders carry much of what a linear probe can read in their middle stages,
not only in the last one (the SimMIM and MAE papers probe intermediate layers for this reason). The
embedding of a pixel window is therefore the concatenation of the selected stages' features, each
average-pooled onto the grid of the last stage (stride ``encoder_stride``): stage ``i`` of a
four-stage encoder is pooled by ``2 ** (3 - i)``. The same function serves the ONNX export, the
probe (``msgfm probe``) and pretraining's health checks, so what is measured is what is shipped.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def embedding_stages(config) -> List[int]:
    """The zero-based stages an embedding of this model config concatenates."""
    stages = getattr(config, "embedding_stages", None)
    if not stages:
        return [config.num_stages - 1]
    return sorted({int(s) for s in stages})


def embedding_width(config) -> int:
    """Channels of the embedding output."""
    return sum(config.stage_dims[s] for s in embedding_stages(config))


def pooled_stage_features(features: Sequence[Tensor], stages: Sequence[int]) -> Tensor:
    """Concatenate ``features[s]`` for ``s`` in ``stages``, average-pooled onto the last map's grid.

    Args:
        features: Per-stage maps ``(B, C_i, H_i, W_i)``, each stage half the size of the previous.
        stages: Zero-based stages to keep.

    Returns:
        ``(B, sum C_s, H_last, W_last)``.
    """
    last = features[-1]
    height = last.shape[-2]
    maps = []
    for s in stages:
        feature = features[s]
        factor = feature.shape[-2] // height
        if factor > 1:
            feature = F.avg_pool2d(feature, kernel_size=factor, stride=factor)
        maps.append(feature)
    return maps[0] if len(maps) == 1 else torch.cat(maps, dim=1)
