"""backend/train/heldout.py: the masked L1 against the visible-mean predictor and the effective rank,
on real BigEarthNet Sentinel-2 crops (which pretraining never reads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.models.config import ModelConfig, get_config
from backend.models.cross_sensor_mim import MsGFMPretrainModel
from backend.train.heldout import reconstruction_check, visible_mean_l1


def _tiny() -> MsGFMPretrainModel:
    tiny = dict(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 4], num_experts=2)
    config = ModelConfig(**{**get_config("small").to_dict(), **tiny, "moe_layers": None})
    torch.manual_seed(0)
    return MsGFMPretrainModel(config)


def test_visible_mean_predictor_by_hand(bigearthnet_pairs):
    images = torch.from_numpy(bigearthnet_pairs["s2"][:2])
    mask = torch.zeros(2, 96, 96, dtype=torch.bool)
    mask[:, :32, :] = True  # the top third is masked
    got = visible_mean_l1(images, mask)
    x = images.numpy().astype(np.float64)
    for k in range(2):
        means = x[k, :, 32:, :].mean(axis=(1, 2))
        expected = np.abs(x[k, :, :32, :] - means[:, None, None]).mean()
        assert float(got[k]) == pytest.approx(expected, rel=1e-5)
    # A crop whose bands are constant is predicted exactly.
    flat = torch.ones(1, 12, 96, 96) * torch.arange(12.0)[None, :, None, None]
    assert float(visible_mean_l1(flat, mask[:1])) == pytest.approx(0.0, abs=1e-6)


def test_check_scores_the_same_masks_every_time_and_keeps_the_training_state(bigearthnet_pairs):
    model = _tiny()
    images = torch.from_numpy(bigearthnet_pairs["s2"])
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = reconstruction_check(model, "s2", images, seed=7)
    assert torch.rand(1) == before  # the global random stream is left as it was
    second = reconstruction_check(model, "s2", images, seed=7)
    assert first == second and model.training
    other = reconstruction_check(model, "s2", images, seed=8)
    assert other["visible_mean_l1"] != first["visible_mean_l1"]  # other masks
    # An untrained decoder predicts about zero (the normalised mean): worse than each crop's mean.
    assert first["masked_l1"] > first["visible_mean_l1"] > 0
    assert first["l1_over_visible_mean"] == pytest.approx(
        first["masked_l1"] / first["visible_mean_l1"]
    )
    assert 1.0 <= first["effective_rank"] <= len(images)
