"""The trainer's AdamW: fused, and the same updates as torch's one-tensor-at-a-time AdamW."""

from __future__ import annotations

import pytest
import torch

from backend.models.config import get_config
from backend.models.cross_sensor_mim import MsGFMPretrainModel, SubBatch
from backend.train.trainer import Trainer, TrainerConfig, adamw


def _model() -> MsGFMPretrainModel:
    torch.manual_seed(0)
    config = get_config("lite")
    config.sensors = ["s2", "dem"]
    return MsGFMPretrainModel(config)


def _loss(model: MsGFMPretrainModel, step: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(step)
    image = torch.randn(3, 12, 96, 96, generator=generator)
    torch.manual_seed(100 + step)  # the same masks for both models
    return model([SubBatch("s2", image)]).loss


def test_trainer_adamw_is_fused_and_matches_the_single_tensor_update():
    reference, fused_model = _model(), _model()
    trainer = Trainer(TrainerConfig(lr=1e-3, weight_decay=0.05))
    fused = trainer.configure_optimizer(fused_model)
    assert all(group["fused"] for group in fused.param_groups)
    # The same groups (decay on matrices, none on norms, biases and tokens), one tensor at a
    # time: torch's CPU default before.
    groups = [
        {"params": g["params"], "weight_decay": g["weight_decay"]}
        for g in trainer.configure_optimizer(reference).param_groups
    ]
    single = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.999), foreach=False)
    for step in range(4):
        for model, optimizer in ((reference, single), (fused_model, fused)):
            optimizer.zero_grad(set_to_none=True)
            _loss(model, step).backward()
            optimizer.step()
    moved = 0
    initial = dict(_model().named_parameters())
    expected_parameters = dict(reference.named_parameters())
    for name, parameter in fused_model.named_parameters():
        expected = expected_parameters[name]
        torch.testing.assert_close(parameter, expected, rtol=1e-5, atol=1e-6)
        moved += int(not torch.equal(parameter, initial[name]))
    assert moved > 50  # the steps did update the model


def test_adamw_is_not_fused_for_half_precision_parameters():
    parameter = torch.nn.Parameter(torch.zeros(3, dtype=torch.float16))
    optimizer = adamw([{"params": [parameter]}], lr=1e-3)
    assert not optimizer.param_groups[0]["fused"]


@pytest.mark.parametrize("value", ["", "off", None])
def test_crop_cache_off_values(value):
    from backend.data.crop_cache import resolve_cache_dir

    assert resolve_cache_dir(value) is None
