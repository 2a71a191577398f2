"""Task heads on real tiles: the gated cloud-removal head returns a clear tile unchanged where its
cloud weight is zero and corrects where it is not; the scene head reads every encoder stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.models.config import get_config
from backend.models.heads import ClassificationHead, GatedResidualImageHead
from backend.models.tasks import TaskSpec, build_task_model, cloud_weight_loss, task_loss


@pytest.fixture(scope="module")
def cloud_model():
    torch.manual_seed(0)
    spec = TaskSpec("cloud-removal", ["s2", "sar"], image_size=96)
    model = build_task_model(get_config("lite"), spec).eval()
    with torch.no_grad():  # a non-zero correction, so pass-through is the gate's doing
        model.head.out.weight.normal_(0.0, 0.05)
        model.head.out.bias.normal_(0.0, 0.5)
    return model


def _inputs(pairs, count=2):
    return {s: torch.from_numpy(np.ascontiguousarray(pairs[s][:count])) for s in ("s2", "sar")}


def test_untrained_gated_head_returns_its_input(bigearthnet_pairs):
    spec = TaskSpec("cloud-removal", ["s2", "sar"], image_size=96)
    model = build_task_model(get_config("lite"), spec).eval()
    inputs = _inputs(bigearthnet_pairs)
    with torch.no_grad():
        output = model(inputs)
    assert isinstance(model.head, GatedResidualImageHead)
    assert torch.equal(output, inputs["s2"])


def test_clear_tile_passes_through_unchanged_where_the_weight_is_zero(
    cloud_model, bigearthnet_pairs
):
    inputs = _inputs(bigearthnet_pairs)
    head = cloud_model.head
    with torch.no_grad():
        head.gate.bias.fill_(-8.0)  # probability ~0 everywhere: below the floor
        closed = cloud_model(inputs)
        assert head.cloud_probability.max() < head.floor
        assert torch.equal(closed, inputs["s2"])  # bit for bit

        head.gate.bias.fill_(8.0)  # probability ~1: full correction
        opened = cloud_model(inputs)
        correction = opened - inputs["s2"]
        assert correction.abs().mean() > 0.05
        # Half-way open: the correction scales with the weight.
        probability = head.floor + 0.5 * (1 - head.floor)
        head.gate.bias.fill_(float(np.log(probability / (1 - probability))))
        head.gate.weight.zero_()
        half = cloud_model(inputs)
        opened_weight = head.weight(torch.sigmoid(torch.tensor(8.0)))
        assert torch.allclose(half - inputs["s2"], 0.5 / opened_weight * correction, atol=1e-4)
        head.gate.bias.fill_(-3.0)


def test_weight_is_zero_up_to_the_floor_and_one_at_certainty():
    head = GatedResidualImageHead([8, 8, 8, 8], 3, 3, 8, floor=0.2)
    probability = torch.tensor([0.0, 0.1, 0.2, 0.6, 1.0])
    assert torch.allclose(head.weight(probability), torch.tensor([0.0, 0.0, 0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="floor"):
        GatedResidualImageHead([8, 8, 8, 8], 3, 3, 8, floor=1.0)


def test_cloud_weight_loss_trains_the_gate_towards_the_opacity(cloud_model, bigearthnet_pairs):
    inputs = _inputs(bigearthnet_pairs)
    cloud_model.train()
    output = cloud_model(inputs)
    opacity = torch.zeros(2, 96, 96)
    opacity[:, :48] = 1.0
    loss = task_loss(cloud_model.spec, output, inputs["s2"]) + cloud_weight_loss(
        cloud_model.head.cloud_probability, opacity
    )
    loss.backward()
    assert cloud_model.head.gate.weight.grad.abs().sum() > 0
    cloud_model.zero_grad()
    cloud_model.eval()
    valid = torch.zeros(2, 96, 96, dtype=torch.bool)
    nothing = cloud_weight_loss(torch.full((2, 96, 96), 0.5), opacity, valid)
    assert float(nothing) == 0.0


def test_scene_head_reads_every_stage():
    torch.manual_seed(0)
    head = ClassificationHead([8, 16, 32, 64], 5)
    with torch.no_grad():
        head.fc.weight.normal_()
    features = [torch.randn(2, c, s, s) for c, s in ((8, 16), (16, 8), (32, 4), (64, 2))]
    base = head(features)
    for stage in range(4):
        changed = list(features)
        changed[stage] = torch.randn_like(features[stage])
        assert not torch.allclose(head(changed), base), f"stage {stage} is not read"
    assert head.fc.in_features == 8 + 16 + 32 + 64


def test_class_weights_change_the_segmentation_loss():
    spec = TaskSpec("segmentation", ["landsat"], 3, image_size=32)
    logits = torch.zeros(1, 3, 4, 4)
    logits[:, 0] = 2.0  # confident in class 0 everywhere
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, 0, 0] = 2
    plain = task_loss(spec, logits, target)
    weighted = task_loss(spec, logits, target, class_weights=[0.5, 1.0, 4.0])
    assert float(weighted) > float(plain)
    with pytest.raises(ValueError, match="class_weights"):
        task_loss(TaskSpec("pansharpening", ["pan", "ms"]), torch.zeros(1, 4, 32, 32),
                  torch.zeros(1, 4, 32, 32), class_weights=[1.0])  # fmt: skip


def test_floor_travels_with_the_weights_and_old_checkpoints_keep_theirs():
    head = GatedResidualImageHead([8, 8, 8, 8], 3, 3, 8)
    head.set_floor(0.35)
    state = head.state_dict()
    other = GatedResidualImageHead([8, 8, 8, 8], 3, 3, 8)
    other.load_state_dict(state)
    assert other.floor == pytest.approx(0.35)
    # A checkpoint written before the floor was a weight: the floor it was trained with.
    legacy = {k: v for k, v in state.items() if k != "gate_floor"}
    other.load_state_dict(legacy)
    assert other.floor == pytest.approx(0.2)
    probability = torch.tensor([0.3, 0.35, 0.675])
    assert torch.allclose(head.weight(probability), torch.tensor([0.0, 0.0, 0.5]))
