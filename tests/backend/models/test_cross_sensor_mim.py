"""Cross-sensor masked image modelling: masks, cross/self routing, loss, heterogeneous steps."""

from __future__ import annotations

import pytest
import torch

from backend.models.config import ModelConfig, get_config
from backend.models.cross_sensor_mim import (
    MsGFMPretrainModel,
    SubBatch,
    info_nce,
    masked_l1_per_sample,
    scored_samples,
    variance_covariance,
)
from backend.models.masking import BlockMaskGenerator


def _config(**changes) -> ModelConfig:
    return ModelConfig(**{**get_config("small").to_dict(), **changes})


def _tiny_config(**changes) -> ModelConfig:
    # Routing statistics do not depend on the model's size: a tiny encoder keeps many draws fast.
    tiny = dict(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 4], num_experts=2)
    tiny["moe_layers"] = None  # the default placement for these depths
    return _config(**{**tiny, **changes})


@pytest.fixture(scope="module")
def pairs(bigearthnet_pairs):
    return {k: torch.from_numpy(v) for k, v in bigearthnet_pairs.items()}


def _decoder_calls(model: MsGFMPretrainModel):
    calls = []
    for name, decoder in model.decoders.items():
        decoder.register_forward_hook(lambda m, i, o, name=name: calls.append((name, o)))
    return calls


def test_block_masks_have_the_ratio_and_32px_aligned_layout():
    torch.manual_seed(0)
    generator = BlockMaskGenerator(mask_patch_size=32, patch_size=4, mask_ratio=0.6)
    masks = generator(500, 192, 192)
    assert masks.shape == (500, 6, 6) and masks.dtype == torch.bool
    assert (masks.sum(dim=(1, 2)) == round(0.6 * 36)).all()  # 22 of 36 blocks in every image
    # Uniform over positions: each block is masked in ~60 % of images (binomial, 500 draws).
    frequency = masks.float().mean(0)
    assert (frequency - 22 / 36).abs().max() < 0.1
    assert len({tuple(m.flatten().tolist()) for m in masks}) > 490  # masks differ per image

    pixels = generator.to_pixels(masks[:4])
    tokens = generator.to_tokens(masks[:4])
    assert pixels.shape == (4, 192, 192) and tokens.shape == (4, 48, 48)
    blocks = pixels.reshape(4, 6, 32, 6, 32)
    assert (blocks.all(dim=(2, 4)) == masks[:4]).all()  # every 32x32 block entirely masked or not
    assert (blocks.any(dim=(2, 4)) == masks[:4]).all()
    assert (tokens.reshape(4, 6, 8, 6, 8).all(dim=(2, 4)) == masks[:4]).all()
    with pytest.raises(ValueError, match="multiple of the mask patch size 32"):
        generator(1, 100, 96)


def test_paired_samples_go_cross_sensor_about_p_cross_of_the_time(pairs):
    # The six real pairs, cut into 64 px crops and repeated: 24 paired samples per step.
    s2 = pairs["s2"][:, :, :64, :64].repeat(4, 1, 1, 1)
    sar = pairs["sar"][:, :, :64, :64].repeat(4, 1, 1, 1)
    for p_cross in (0.5, 0.2):
        torch.manual_seed(0)
        model = MsGFMPretrainModel(_tiny_config(p_cross=p_cross))
        calls = _decoder_calls(model)
        cross = total = 0
        with torch.no_grad():
            for _ in range(10):
                output = model([SubBatch("s2", s2, "sar", sar)])
                sar_rows = sum(o.shape[0] for name, o in calls if name == "sar")
                s2_rows = sum(o.shape[0] for name, o in calls if name == "s2")
                assert sar_rows + s2_rows == 24
                assert sar_rows == round(output.cross_fraction * 24)
                cross += sar_rows
                total += 24
                calls.clear()
        # 240 Bernoulli(p) draws: 4 standard deviations is 0.13 at p = 0.5.
        bound = 4 * (p_cross * (1 - p_cross) / total) ** 0.5
        assert abs(cross / total - p_cross) < bound, (p_cross, cross / total)


def test_unpaired_samples_always_reconstruct_themselves(pairs, rgb_crops):
    torch.manual_seed(0)
    model = MsGFMPretrainModel(_tiny_config(p_cross=1.0))
    calls = _decoder_calls(model)
    with torch.no_grad():
        for _ in range(5):
            output = model(
                [SubBatch("s2", pairs["s2"]), SubBatch("rgb", torch.from_numpy(rgb_crops))]
            )
            assert output.cross_fraction == 0.0 and output.num_paired == 0
    assert {name for name, _ in calls} == {"s2", "rgb"}
    assert all(o.shape[1] == {"s2": 12, "rgb": 3}[name] for name, o in calls)


def test_cross_reconstruction_is_scored_against_the_partner_image(pairs):
    torch.manual_seed(0)
    model = MsGFMPretrainModel(_config(p_cross=1.0))
    calls = _decoder_calls(model)
    torch.manual_seed(5)
    output = model([SubBatch("s2", pairs["s2"], "sar", pairs["sar"])])
    assert output.cross_fraction == 1.0 and [name for name, _ in calls] == ["sar"]
    # Replay the same RNG draws to get the masks, then score the SAR prediction by hand.
    torch.manual_seed(5)
    block_mask = model.mask_generator(6, 96, 96)
    pixel_mask = model.mask_generator.to_pixels(block_mask)
    prediction = calls[0][1]
    expected = masked_l1_per_sample(prediction, pairs["sar"], pixel_mask).mean()
    torch.testing.assert_close(output.l1, expected)
    # Only masked pixels count: changing the target where unmasked changes nothing.
    changed = pairs["sar"].clone()
    changed[~pixel_mask.unsqueeze(1).expand_as(changed)] += 100.0
    torch.testing.assert_close(
        masked_l1_per_sample(prediction, changed, pixel_mask).mean(), expected
    )


def test_heterogeneous_step_on_real_data_learns(pairs, rgb_crops, dsm_crops):
    torch.manual_seed(0)
    model = MsGFMPretrainModel(get_config("small"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    batch = [
        SubBatch("s2", pairs["s2"], "sar", pairs["sar"]),
        SubBatch("rgb", torch.from_numpy(rgb_crops)),
        SubBatch("dsm", torch.from_numpy(dsm_crops)),
    ]

    def fixed_mask_l1() -> float:
        # The same masks and cross/self draws before and after training.
        state = torch.get_rng_state()
        torch.manual_seed(123)
        with torch.no_grad():
            l1 = float(model(batch).l1)
        torch.set_rng_state(state)
        return l1

    before = fixed_mask_l1()
    for _ in range(8):
        output = model(batch)
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        assert torch.isfinite(output.loss)
    assert set(output.per_sensor_loss) == {"s2", "rgb", "dsm"}
    assert len(output.expert_load) == 2 and len(output.expert_load[0]) == 4
    after = fixed_mask_l1()
    # Same masks, same data: without learning the ratio would be exactly 1 (seen: 0.88-0.92).
    assert after < 0.95 * before, (before, after)


def test_same_seed_same_step_and_unknown_sensors_are_refused(pairs):
    torch.manual_seed(0)
    model = MsGFMPretrainModel(get_config("small"))
    batch = [SubBatch("sar", pairs["sar"], "s2", pairs["s2"])]
    torch.manual_seed(3)
    first = model(batch)
    torch.manual_seed(3)
    second = model(batch)
    assert first.cross_fraction == second.cross_fraction
    torch.testing.assert_close(first.loss, second.loss)

    with pytest.raises(KeyError, match="'pan' is not a sensor of this model"):
        model([SubBatch("pan", torch.zeros(1, 1, 96, 96))])
    with pytest.raises(ValueError, match="co-registered on the same grid"):
        model([SubBatch("s2", pairs["s2"], "sar", pairs["sar"][:, :, :64, :64])])
    with pytest.raises(ValueError, match="at least one sub-batch"):
        model([])


def test_bf16_autocast_step_runs(pairs):
    # The trainer uses bf16 autocast on CUDA; CPU autocast exercises the same mixed-dtype paths
    # (bf16 experts scattered into the fp32 residual stream, fp32 router and loss).
    torch.manual_seed(0)
    model = MsGFMPretrainModel(_tiny_config())
    s2, sar = pairs["s2"][:, :, :64, :64], pairs["sar"][:, :, :64, :64]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model([SubBatch("s2", s2, "sar", sar)])
    output.loss.backward()
    assert output.loss.dtype == torch.float32 and torch.isfinite(output.loss)
    assert model.encoder.embeddings["s2"].proj.weight.grad.abs().sum() > 0


def test_no_data_pixels_are_not_scored(pairs):
    # Crops may be half no-data collar (zeros after normalisation): the loss must not reward
    # painting zeros there.
    torch.manual_seed(0)
    prediction = torch.randn(6, 2, 96, 96)
    target = pairs["sar"]
    pixel_mask = torch.zeros(6, 96, 96, dtype=torch.bool)
    pixel_mask[:, :64] = True
    valid = torch.ones(6, 96, 96, dtype=torch.bool)
    valid[:, :32] = False  # the top third has no data
    scored = masked_l1_per_sample(prediction, target, pixel_mask, valid)
    changed = target.clone()
    changed[:, :, :32] = 0.0  # what no-data becomes after normalisation
    torch.testing.assert_close(masked_l1_per_sample(prediction, changed, pixel_mask, valid), scored)
    expected = (prediction - target)[:, :, 32:64].abs().mean(dim=(1, 2, 3))
    torch.testing.assert_close(scored, expected)
    # A sample whose masked pixels are all no data is not scored at all.
    valid[0, :64] = False
    assert scored_samples(pixel_mask, valid).tolist() == [False] + [True] * 5


def test_model_loss_ignores_no_data_and_skips_samples_without_data(pairs):
    # Cross-sensor targets (p_cross = 1) so the targets can change without changing the input.
    torch.manual_seed(0)
    model = MsGFMPretrainModel(_tiny_config(p_cross=1.0))
    s2, sar = pairs["s2"][:4, :, :64, :64], pairs["sar"][:4, :, :64, :64].clone()
    partner_valid = torch.ones(4, 64, 64, dtype=torch.bool)
    partner_valid[0] = False  # no data at all: this sample is not scored
    partner_valid[1, :, :32] = False

    def l1(target):
        torch.manual_seed(7)
        batch = SubBatch("s2", s2, "sar", target, partner_valid=partner_valid)
        return model.eval()([batch]).l1

    before = l1(sar)
    sar[0] = 50.0
    sar[1, :, :, :32] = -50.0
    torch.testing.assert_close(l1(sar), before)
    assert torch.isfinite(before) and before > 0


def test_alignment_pulls_two_views_of_a_window_together(pairs, rgb_crops):
    first = torch.randn(8, 16)
    aligned, accuracy = info_nce(first, first + 0.01 * torch.randn(8, 16), temperature=0.2)
    shuffled, _ = info_nce(first, first[torch.randperm(8)], temperature=0.2)
    assert accuracy == 1.0 and aligned < shuffled

    torch.manual_seed(0)
    model = MsGFMPretrainModel(_tiny_config(align_weight=1.0, embedding_stages=[2, 3]))
    s2, sar = pairs["s2"][:, :, :64, :64], pairs["sar"][:, :, :64, :64]
    rgb = torch.from_numpy(rgb_crops[:4, :, :64, :64])
    view = torch.flip(rgb, dims=[-1])
    calls = _decoder_calls(model)
    torch.manual_seed(1)
    output = model([SubBatch("s2", s2, "sar", sar), SubBatch("rgb", rgb, view_image=view)])
    # The paired sample's second view is its partner sensor, the unpaired one's a second crop:
    # both are encoded and reconstructed, and the InfoNCE term is part of the loss.
    assert output.align_loss > 0 and 0.0 <= output.align_accuracy <= 1.0
    torch.testing.assert_close(
        output.loss,
        output.l1 + 0.01 * output.aux_loss + torch.tensor(output.align_loss),
        rtol=1e-5,
        atol=1e-5,
    )
    assert {"s2", "sar", "rgb"} <= {name for name, _ in calls}
    output.loss.backward()
    assert model.projector.net[0].weight.grad.abs().sum() > 0
    # Without alignment there is no projector and no second view is encoded.
    plain = MsGFMPretrainModel(_tiny_config())
    assert plain.projector is None


def test_variance_covariance_penalise_collapse_only():
    torch.manual_seed(0)
    spread = torch.randn(256, 8) * 1.5  # independent features, std 1.5 > target 1
    variance, covariance = variance_covariance(spread)
    assert variance == 0.0 and covariance < 0.3  # sampling noise only (about 0.14)
    collapsed = torch.ones(256, 8) + 1e-3 * torch.randn(256, 8)
    variance, _ = variance_covariance(collapsed)
    assert variance == pytest.approx(1.0, abs=0.02)  # every feature lost its spread
    base = torch.randn(256, 1)
    redundant = base.repeat(1, 8) + 0.01 * torch.randn(256, 8)  # eight copies of one feature
    _, covariance = variance_covariance(redundant)
    assert covariance == pytest.approx(7.0, rel=0.1)  # 56 covariances of about 1, over 8
    zero = variance_covariance(torch.randn(1, 8))
    assert zero[0] == 0.0 and zero[1] == 0.0


def test_anti_collapse_terms_are_part_of_the_loss_and_reach_the_encoder(pairs, rgb_crops):
    torch.manual_seed(0)
    config = _tiny_config(variance_weight=1.0, covariance_weight=0.5, embedding_stages=[2, 3])
    model = MsGFMPretrainModel(config)
    s2, sar = pairs["s2"][:, :, :64, :64], pairs["sar"][:, :, :64, :64]
    rgb = torch.from_numpy(rgb_crops[:4, :, :64, :64])
    torch.manual_seed(1)
    output = model([SubBatch("s2", s2, "sar", sar), SubBatch("rgb", rgb)])
    assert output.variance_loss > 0 and output.covariance_loss > 0
    torch.testing.assert_close(
        output.loss,
        output.l1
        + 0.01 * output.aux_loss
        + torch.tensor(output.variance_loss + 0.5 * output.covariance_loss),
        rtol=1e-5,
        atol=1e-5,
    )
    # The terms alone move the encoder's deepest stage (the reconstruction reads it too, so
    # compare with a model whose anti-collapse weights are off on the same draw).
    output.loss.backward()
    with_terms = [p.grad.clone() for p in model.encoder.parameters() if p.grad is not None]
    torch.manual_seed(0)
    plain = MsGFMPretrainModel(_tiny_config(embedding_stages=[2, 3]))
    torch.manual_seed(1)
    result = plain([SubBatch("s2", s2, "sar", sar), SubBatch("rgb", rgb)])
    assert result.variance_loss == 0.0 and result.covariance_loss == 0.0
    result.loss.backward()
    without = [p.grad for p in plain.encoder.parameters() if p.grad is not None]
    assert any(not torch.allclose(a, b) for a, b in zip(with_terms, without))
