"""Mixture of experts on real image tokens: routing, capacity, dispatch cost and the aux loss."""

from __future__ import annotations

import math

import pytest
import torch

from backend.models.config import ModelConfig, get_config
from backend.models.cross_sensor_mim import MsGFMPretrainModel, SubBatch
from backend.models.encoder import MsGFMEncoder
from backend.models.moe import MoEMlp


@pytest.fixture(scope="module")
def real_tokens(bigearthnet_pairs, rgb_crops):
    """Stage-1 tokens (T, 32) of real S2 and RGB crops, from a freshly initialised encoder."""
    torch.manual_seed(0)
    encoder = MsGFMEncoder(get_config("small")).eval()
    with torch.no_grad():
        s2 = encoder.embed({"s2": torch.from_numpy(bigearthnet_pairs["s2"])})
        rgb = encoder.embed({"rgb": torch.from_numpy(rgb_crops)})
    return torch.cat([s2.reshape(-1, 32), rgb.reshape(-1, 32)])


def _track_expert_tokens(moe: MoEMlp):
    seen = []
    for e, expert in enumerate(moe.experts):
        expert.register_forward_hook(lambda m, i, o, e=e: seen.append((e, i[0].shape[0])))
    return seen


def test_every_expert_receives_tokens_of_real_images(bigearthnet_pairs, rgb_crops, dsm_crops):
    torch.manual_seed(0)
    encoder = MsGFMEncoder(get_config("small")).train()
    loads = []
    with torch.no_grad():
        for sensor, images in [
            ("s2", bigearthnet_pairs["s2"]),
            ("sar", bigearthnet_pairs["sar"]),
            ("rgb", rgb_crops),
            ("dsm", dsm_crops),
        ]:
            loads.append(encoder({sensor: torch.from_numpy(images)}).expert_load)
    load = torch.stack(loads).mean(0)  # (MoE blocks, experts), over all four sensors
    assert load.shape == (2, 4)
    assert (load > 0).all(), f"an expert received no tokens: {load}"
    torch.testing.assert_close(load.sum(1), torch.ones(2))


def test_eval_dispatch_equals_training_dispatch_when_nothing_is_dropped(real_tokens):
    torch.manual_seed(0)
    for top_k in (1, 2):
        # Capacity factor = number of experts: an expert can take every token, none is dropped.
        moe = MoEMlp(32, 64, num_experts=4, top_k=top_k, capacity_factor=4.0)
        train_out, train_aux, train_load = moe.train()(real_tokens)
        eval_out, eval_aux, eval_load = moe.eval()(real_tokens)
        torch.testing.assert_close(train_out, eval_out)
        torch.testing.assert_close(train_aux, eval_aux)
        torch.testing.assert_close(train_load, eval_load)
        # And the mixture is really computed: each token's output is its gated experts' sum.
        probs = moe.router(real_tokens).softmax(-1)
        gate, index = probs.topk(top_k, dim=-1)
        gate = gate / gate.sum(-1, keepdim=True) if top_k > 1 else gate
        token = 123
        expected = sum(
            gate[token, j] * moe.experts[int(index[token, j])](real_tokens[token])
            for j in range(top_k)
        )
        torch.testing.assert_close(eval_out[token], expected, rtol=1e-4, atol=1e-5)


def test_training_capacity_drops_overflow_and_never_runs_every_expert_on_every_token(real_tokens):
    torch.manual_seed(0)
    moe = MoEMlp(32, 64, num_experts=4, top_k=1, capacity_factor=1.25).train()
    with torch.no_grad():
        moe.router.weight[0] += 0.5 * real_tokens.mean(0)  # bias the router: expert 0 overflows
    seen = _track_expert_tokens(moe)
    T = real_tokens.shape[0]
    out, _, load = moe(real_tokens)
    capacity = math.ceil(1.25 * T / 4)
    counts = (load * T).round().long()
    assert counts[0] > capacity, "the biased router must overflow expert 0 for this test"
    processed = dict(seen)
    assert all(n <= capacity for n in processed.values())
    assert sum(processed.values()) == sum(min(int(c), capacity) for c in counts)
    assert sum(processed.values()) < T * 1.25  # gathered dispatch: not every expert on every token
    dropped = (out.abs().sum(-1) == 0).sum()
    assert dropped == counts[0] - capacity  # overflow tokens skip the MLP (residual carries them)
    # The drop rate that pretraining logs per block is exactly that share.
    assert moe.drop_fraction == pytest.approx(float(counts[0] - capacity) / T)

    # Eval: no capacity, each token processed exactly once by its expert.
    seen.clear()
    moe.eval()(real_tokens)
    assert sum(n for _, n in seen) == T


def test_aux_loss_balances_and_is_part_of_the_total_loss(bigearthnet_pairs):
    moe = MoEMlp(8, 16, num_experts=4)
    # Perfectly balanced routing with uniform router probabilities gives exactly 1.
    with torch.no_grad():
        moe.router.weight.zero_()
    _, aux, _ = moe(torch.randn(16, 8))
    torch.testing.assert_close(aux, torch.tensor(1.0))

    batch = [
        SubBatch(
            "s2",
            torch.from_numpy(bigearthnet_pairs["s2"]),
            "sar",
            torch.from_numpy(bigearthnet_pairs["sar"]),
        )
    ]
    losses = {}
    for weight in (0.01, 1.0):
        torch.manual_seed(0)
        model = MsGFMPretrainModel(
            ModelConfig(**{**get_config("small").to_dict(), "aux_loss_weight": weight})
        )
        torch.manual_seed(1)
        output = model(batch)
        torch.testing.assert_close(output.loss, output.l1 + weight * output.aux_loss)
        assert output.aux_loss > 0
        losses[weight] = output
        # The aux loss trains the routers.
        output.aux_loss.backward()
        router = model.encoder.stages[2].blocks[1].mlp.router
        assert router.weight.grad.abs().sum() > 0
    torch.testing.assert_close(losses[0.01].l1, losses[1.0].l1)
    torch.testing.assert_close(
        losses[1.0].loss - losses[0.01].loss, 0.99 * losses[0.01].aux_loss, rtol=1e-4, atol=1e-6
    )


def test_gate_noise_perturbs_training_routing_only(real_tokens):
    torch.manual_seed(0)
    moe = MoEMlp(32, 64, num_experts=4, top_k=1, capacity_factor=4.0, gate_noise=1.0)
    quiet = MoEMlp(32, 64, num_experts=4, top_k=1, capacity_factor=4.0, gate_noise=0.0)
    quiet.load_state_dict(moe.state_dict())
    # Eval mode ignores the noise: the exported model routes deterministically.
    torch.testing.assert_close(moe.eval()(real_tokens)[0], quiet.eval()(real_tokens)[0])
    # Training with noise changes some routing decisions, without noise none.
    torch.manual_seed(1)
    _, _, noisy_load = moe.train()(real_tokens)
    _, _, clean_load = quiet.train()(real_tokens)
    _, _, eval_load = quiet.eval()(real_tokens)
    torch.testing.assert_close(clean_load, eval_load)
    assert not torch.allclose(noisy_load, clean_load)


def test_encoder_sums_the_aux_loss_of_its_moe_blocks(bigearthnet_pairs):
    # Swin-MoE adds the l_aux of every MoE layer; a mean would give the 10 MoE blocks of base a
    # tenth of the paper's weight.
    torch.manual_seed(0)
    encoder = MsGFMEncoder(ModelConfig(**{**get_config("small").to_dict(), "gate_noise": 0.0}))
    encoder.eval()
    terms = []
    for stage in encoder.stages:
        for block in stage.blocks:
            if isinstance(block.mlp, MoEMlp):
                block.mlp.register_forward_hook(lambda m, i, o: terms.append(o[1]))
    with torch.no_grad():
        output = encoder({"s2": torch.from_numpy(bigearthnet_pairs["s2"])})
    assert len(terms) == encoder.num_moe_blocks == 2
    torch.testing.assert_close(output.aux_loss, torch.stack(terms).sum())
