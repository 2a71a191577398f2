"""Model configurations: the named sizes, the MoE placement, JSON round trips and validation."""

from __future__ import annotations

import json

import pytest

from backend.models.config import CONFIGS, DEFAULT_SENSORS, ModelConfig, get_config


def test_base_is_the_papers_swin_b_with_moe_in_stage_3_and_4():
    config = get_config("base")
    assert (config.embed_dim, config.depths, config.num_heads) == (
        128,
        [2, 2, 18, 2],
        [4, 8, 16, 32],
    )
    assert (config.window_size, config.image_size, config.patch_size) == (6, 192, 4)
    assert (config.num_experts, config.top_k, config.capacity_factor) == (8, 1, 1.25)
    # Every other block of stage 3 (9 of 18) and the first block of stage 4.
    assert config.moe_layers == [(2, b) for b in range(1, 18, 2)] + [(3, 0)]
    assert config.stage_dims[-1] == 8 * config.embed_dim
    assert config.encoder_stride == 32
    assert (config.mask_patch_size, config.mask_ratio, config.p_cross) == (32, 0.6, 0.5)
    assert config.aux_loss_weight == 0.01
    # The paper's four modalities, and the sensors the sample corpus is filed under.
    assert config.sensors == list(DEFAULT_SENSORS)
    assert {"rgb", "s2", "sar", "dsm"} <= set(config.sensors)


def test_small_config_and_dense_ablation():
    config = get_config("small")
    assert config.moe_layers == [(2, 1), (3, 0)]
    assert config.is_moe_block(2, 1) and not config.is_moe_block(2, 0)
    dense = ModelConfig.from_dict({**config.to_dict(), "use_moe": False})
    assert not any(dense.is_moe_block(s, b) for s, b in dense.moe_layers)
    assert set(CONFIGS) >= {"small", "base"}


def test_json_file_round_trip(tmp_path):
    config = get_config("small")
    config.num_experts = 6
    path = tmp_path / "my_model.json"
    path.write_text(json.dumps(config.to_dict()))
    loaded = get_config(str(path))
    assert loaded == config
    assert loaded.moe_layers == [(2, 1), (3, 0)]


def test_bad_configs_are_clear_errors(tmp_path):
    with pytest.raises(KeyError, match="unknown model config 'huge'"):
        get_config("huge")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_config(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"embed_dim": 32, "depth": [2, 2, 2, 2]}))
    with pytest.raises(ValueError, match=r"unknown model config keys \['depth'\]"):
        get_config(str(bad))
    with pytest.raises(ValueError, match="not divisible by 3 heads"):
        ModelConfig(embed_dim=32, num_heads=[3, 2, 4, 8])
    with pytest.raises(ValueError, match="multiple of the encoder stride"):
        ModelConfig(image_size=100)
    with pytest.raises(ValueError, match="is not a block"):
        ModelConfig(moe_layers=[(2, 5)])
    with pytest.raises(ValueError, match="unknown sensor 'lidar'"):
        ModelConfig(sensors=["s2", "lidar"])
