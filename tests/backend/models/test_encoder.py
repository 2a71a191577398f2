"""The encoder: stage shapes for every sensor and both configs, fusion, masking, window clipping."""

from __future__ import annotations

import pytest
import torch

from backend.models.config import get_config
from backend.models.encoder import MsGFMEncoder
from backend.models.swin import SwinBlock
from backend.sensors import get_sensor


@pytest.fixture(scope="module")
def small_encoder():
    torch.manual_seed(0)
    return MsGFMEncoder(get_config("small"))


@pytest.mark.parametrize("sensor", ["rgb", "s2", "sar", "dsm"])
def test_small_forward_backward_shapes(small_encoder, sensor):
    config = small_encoder.config
    image = torch.randn(2, get_sensor(sensor).num_bands, 96, 96, requires_grad=True)
    output = small_encoder({sensor: image})
    expected = [(2, 32, 24, 24), (2, 64, 12, 12), (2, 128, 6, 6), (2, 256, 3, 3)]
    assert [tuple(f.shape) for f in output.features] == expected
    assert output.expert_load.shape == (len(config.moe_layers), config.num_experts)
    torch.testing.assert_close(output.expert_load.sum(dim=1), torch.ones(2))
    assert output.aux_loss.ndim == 0 and output.aux_loss >= 1.0 - 1e-6  # 1.0 = perfectly balanced
    (output.features[-1].sum() + output.aux_loss).backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    other = next(s for s in small_encoder.sensors if s != sensor)
    assert small_encoder.embeddings[other].proj.weight.grad is None
    small_encoder.zero_grad(set_to_none=True)


@pytest.mark.slow
def test_base_forward_shapes_at_192px():
    # One forward with the four sensors fused (their embeddings summed): each sensor's patch
    # embedding runs, and the trunk they share runs once (four forwards took 35 s here).
    torch.manual_seed(0)
    encoder = MsGFMEncoder(get_config("base")).eval()
    sensors = ["rgb", "s2", "sar", "dsm"]
    images = {s: torch.randn(1, get_sensor(s).num_bands, 192, 192) for s in sensors}
    with torch.no_grad():
        for sensor in sensors:
            assert tuple(encoder.embeddings[sensor](images[sensor]).shape) == (1, 48, 48, 128)
        output = encoder(images)
    assert [tuple(f.shape) for f in output.features] == [
        (1, 128, 48, 48),
        (1, 256, 24, 24),
        (1, 512, 12, 12),
        (1, 1024, 6, 6),
    ]
    assert output.expert_load.shape == (10, 8)
    assert all(torch.isfinite(f).all() for f in output.features)


def test_fusion_sums_embeddings_and_mask_token_replaces_tokens(small_encoder, bigearthnet_pairs):
    s2 = torch.from_numpy(bigearthnet_pairs["s2"][:2])
    sar = torch.from_numpy(bigearthnet_pairs["sar"][:2])
    encoder = small_encoder.eval()
    with torch.no_grad():
        fused = encoder.embed({"s2": s2, "sar": sar})
        separate = encoder.embeddings["s2"](s2) + encoder.embeddings["sar"](sar)
        torch.testing.assert_close(fused, separate)

        mask = torch.zeros(2, 24, 24, dtype=torch.bool)
        mask[:, :8, :8] = True
        masked = encoder.apply_mask(fused, mask)
        torch.testing.assert_close(masked[mask], encoder.mask_token.expand(int(mask.sum()), -1))
        torch.testing.assert_close(masked[~mask], fused[~mask])
        assert not torch.allclose(
            encoder({"s2": s2}, mask).features[-1], encoder({"s2": s2}).features[-1]
        )
    encoder.train()


def test_inputs_are_checked_with_clear_messages(small_encoder):
    with pytest.raises(ValueError, match=r"sensor 's2' expects images \(B, 12, H, W\)"):
        small_encoder({"s2": torch.zeros(1, 13, 96, 96)})
    with pytest.raises(KeyError, match="has no patch embedding"):
        small_encoder({"pan": torch.zeros(1, 1, 96, 96)})
    with pytest.raises(ValueError, match="must share one grid"):
        small_encoder({"s2": torch.zeros(1, 12, 96, 96), "sar": torch.zeros(1, 2, 64, 64)})
    with pytest.raises(ValueError, match="mask shape"):
        small_encoder({"s2": torch.zeros(1, 12, 96, 96)}, torch.zeros(1, 12, 12, dtype=torch.bool))


def _block(window_size, shifted):
    torch.manual_seed(1)
    return SwinBlock(16, 2, window_size, shifted, mlp=torch.nn.Identity()).eval()


def test_windows_partition_the_map_and_clip_to_small_maps():
    torch.manual_seed(2)
    x = torch.randn(1, 12, 12, 16)
    changed = x.clone()
    # A random change (a constant shift would be removed by the block's LayerNorm).
    changed[0, 0, 0] += 3.0 * torch.randn(16)
    with torch.no_grad():
        # 12x12 map, window 6, no shift: token (0, 0) only influences its own 6x6 window.
        delta = (_block(6, False)(changed)[0] - _block(6, False)(x)[0]).abs().sum(-1)[0]
        assert delta[:6, :6].min() > 0
        assert delta[6:, :].max() == 0 and delta[:, 6:].max() == 0
        # Shifted by 3: token (0, 0) is rolled into the bottom-right window together with tokens
        # of the far corners; the attention mask must keep it to its own 3x3 region.
        delta = (_block(6, True)(changed)[0] - _block(6, True)(x)[0]).abs().sum(-1)[0]
        assert delta[:3, :3].min() > 0
        delta[:3, :3] = 0
        assert delta.max() == 0

        # 4x4 map smaller than the window: one clipped window, no shift, everything sees everything.
        small = x[:, :4, :4].clone()
        small_changed = small.clone()
        small_changed[0, 0, 0] += 3.0 * torch.randn(16)
        for shifted in (False, True):
            delta = (_block(6, shifted)(small_changed)[0] - _block(6, shifted)(small)[0]).abs()
            assert delta.sum(-1)[0].min() > 0
            torch.testing.assert_close(_block(6, shifted)(small), _block(6, False)(small))

        # 8x8 map (not a window multiple) is padded to 12x12. The bottom-right window holds 2x2 real
        # tokens; with padding masked out of attention they give exactly what a lone 2x2 map gives.
        odd = x[:, :8, :8].clone()
        out = _block(6, False)(odd)[0]
        assert out.shape == odd.shape and torch.isfinite(out).all()
        corner = _block(6, False)(odd[:, 6:, 6:].contiguous())[0]
        torch.testing.assert_close(out[:, 6:, 6:], corner)
