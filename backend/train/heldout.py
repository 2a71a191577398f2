"""Whether masked modelling has learned to use context, on crops pretraining never reads.

Masked image modelling first learns each crop's average colour, and only later how the visible
pixels around a masked block predict it. Two figures on fixed held-out crops with fixed masks tell
the phases apart:

- the model's masked L1 against the *visible-mean predictor* (each masked pixel predicted by the
  mean of its crop's visible pixels, band by band): a model below it uses more than the crop's
  average;
- the effective rank of the pooled embeddings of the whole (unmasked) crops: a collapsing
  encoder describes every crop with a few directions.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from ..models.cross_sensor_mim import MsGFMPretrainModel, masked_l1_per_sample
from ..models.embedding_head import embedding_stages, pooled_stage_features


def visible_mean_l1(images: Tensor, pixel_mask: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """Per sample, the masked L1 of predicting each band by its mean over the visible pixels.

    Args:
        images: ``(B, C, H, W)`` normalised crops.
        pixel_mask: ``(B, H, W)``, True where masked.
        valid: ``(B, H, W)``, True where the crop has data (None: everywhere).
    """
    mask = pixel_mask.to(torch.bool)
    data = torch.ones_like(mask) if valid is None else valid.to(torch.bool)
    visible = (~mask & data).unsqueeze(1).to(images.dtype)
    means = (images * visible).sum(dim=(2, 3)) / visible.sum(dim=(2, 3)).clamp_min(1.0)
    prediction = means[:, :, None, None].expand_as(images)
    return masked_l1_per_sample(prediction, images, mask, valid)


@torch.no_grad()
def reconstruction_check(
    model: MsGFMPretrainModel,
    sensor: str,
    images: Tensor,
    valid: Optional[Tensor] = None,
    seed: int = 0,
) -> Dict[str, float]:
    """Masked L1, the visible-mean predictor's masked L1 and the embeddings' effective rank.

    The masks are drawn from ``seed`` alone, so every call (every step of a run, every run)
    scores the same masked pixels.

    Args:
        model: the pretraining model (encoder, decoders, mask generator).
        sensor: the crops' sensor (a sensor of the model).
        images: ``(N, C, H, W)`` crops normalised as the model's training data.
        valid: ``(N, H, W)`` True where a crop has data.
        seed: the masks' seed.
    """
    from .probe import effective_rank

    was_training = model.training
    model.eval()
    try:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        n, _, height, width = images.shape
        block_mask = model.mask_generator(n, height, width, device=images.device)
        torch.random.set_rng_state(generator_state)
        pixel_mask = model.mask_generator.to_pixels(block_mask).to(torch.bool)
        embedded = model.encoder.embed({sensor: images})
        tokens = model.encoder.apply_mask(embedded, model.mask_generator.to_tokens(block_mask))
        features = model.encoder.encode_tokens(tokens).features
        prediction = model.decoders[sensor](features[-1])
        model_l1 = masked_l1_per_sample(prediction.float(), images, pixel_mask, valid)
        baseline_l1 = visible_mean_l1(images, pixel_mask, valid)
        whole = model.encoder.encode_tokens(embedded).features
        pooled = pooled_stage_features(whole, embedding_stages(model.config)).mean(dim=(2, 3))
    finally:
        model.train(was_training)
    masked = float(model_l1.mean())
    visible_mean = float(baseline_l1.mean())
    return {
        "masked_l1": masked,
        "visible_mean_l1": visible_mean,
        "l1_over_visible_mean": masked / max(visible_mean, 1e-12),
        "effective_rank": effective_rank(pooled.float().cpu().numpy().astype(np.float64)),
    }


def normalised_crops(
    images: Sequence[np.ndarray], statistics: Dict[str, Any], size: int
) -> Tuple[Tensor, Tensor]:
    """Centre crops of raw ``(C, H, W)`` patches (NaN = no data), normalised with a sensor's
    ``mean`` / ``std``; returns ``(images, valid)`` with no data as 0 and False.

    Args:
        images: patches in the sensor's units (a probe set's, :class:`.probe.ProbeSet`).
        statistics: the sensor's entry of a run's band statistics.
        size: crop side (the model's image size; a multiple of its mask block).
    """
    mean = np.asarray(statistics["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(statistics["std"], dtype=np.float32)[:, None, None]
    crops, valid = [], []
    for image in images:
        _, height, width = image.shape
        if height < size or width < size:
            raise ValueError(f"a {height} x {width} patch is smaller than the {size} px crop")
        top, left = (height - size) // 2, (width - size) // 2
        crop = image[:, top : top + size, left : left + size].astype(np.float32)
        has_data = np.isfinite(crop).all(axis=0)
        crops.append(np.where(np.isfinite(crop), (crop - mean) / std, 0.0).astype(np.float32))
        valid.append(has_data)
    return torch.from_numpy(np.stack(crops)), torch.from_numpy(np.stack(valid))
