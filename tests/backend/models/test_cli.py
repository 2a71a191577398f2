"""``msgfm model-summary``: parameters per part and FLOPs per image."""

from __future__ import annotations

import json

from backend.cli import main
from backend.models.config import ModelConfig, get_config
from backend.models.cross_sensor_mim import MsGFMPretrainModel
from backend.models.summary import summarize


def test_model_summary_prints_parts_and_flops(capsys):
    assert main(["model-summary", "small"]) == 0
    text = capsys.readouterr().out
    for part in ("embedding s2", "stage 1", "stage 4", "MoE experts", "decoder sar", "total"):
        assert part in text
    assert "FLOPs per 96x96 image" in text

    assert main(["model-summary", "small", "--json", "--no-flops"]) == 0
    data = json.loads(capsys.readouterr().out)
    model = MsGFMPretrainModel(get_config("small"))
    assert data["total_parameters"] == sum(p.numel() for p in model.parameters())
    parts = {k: v for k, v in data["parameters"].items() if "of which" not in k}
    assert sum(parts.values()) == data["total_parameters"]  # the parts cover the whole model


def test_moe_flops_per_image_equal_the_dense_model():
    # Top-1 routing: each token runs one expert MLP, so MoE costs a dense model's FLOPs per image.
    config = ModelConfig(**{**get_config("small").to_dict(), "sensors": ["s2"]})
    dense = ModelConfig(**{**config.to_dict(), "use_moe": False})
    moe_summary, dense_summary = summarize(config), summarize(dense)
    assert moe_summary.total_parameters > dense_summary.total_parameters
    for sensor in config.sensors:
        router = moe_summary.encoder_flops[sensor] - dense_summary.encoder_flops[sensor]
        assert 0 < router < 0.01 * dense_summary.encoder_flops[sensor]
    # Decoder: a 1x1 conv from 256 channels to 32*32*12 at 3x3 positions, 2 FLOPs per MAC.
    assert moe_summary.decoder_flops["s2"] == 2 * 256 * 32 * 32 * 12 * 3 * 3


def test_unknown_config_is_a_clear_error(capsys):
    assert main(["model-summary", "gigantic"]) == 2
    assert "unknown model config 'gigantic'" in capsys.readouterr().err
