"""The gate check of a cloud-removal model on real validation patches: a closed gate opens on no
clear pixel and finds no cloud, an open one changes every clear pixel and finds every cloud, and
the check reads a saved checkpoint (its floor included) as the recipe writes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from backend.checkpoints import save_checkpoint
from backend.data.tasks.bigearthnet import BigEarthNetDataset
from backend.models.config import get_config
from backend.models.tasks import TaskSpec, build_task_model
from backend.sensors import get_sensor
from backend.train.gate_check import (
    calibrated_floor,
    gate_validation,
    probability_predictor,
    write_floor,
)


def _checkpoint(folder: Path, gate_bias: float) -> Path:
    torch.manual_seed(0)
    config = get_config("lite")
    spec = TaskSpec("cloud-removal", ["s2", "sar"], image_size=96)
    model = build_task_model(config, spec).eval()
    with torch.no_grad():
        model.head.gate.bias.fill_(gate_bias)
    normalization = {
        name: {"mean": list(get_sensor(name).mean), "std": list(get_sensor(name).std)}
        for name in ("s2", "sar")
    }
    meta = {
        "task": "cloud-removal",
        "task_spec": spec.to_dict(),
        "model_config": config.to_dict(),
        "normalization": normalization,
    }
    return save_checkpoint(folder, model, {"step": 0}, meta)


@pytest.fixture(scope="module")
def validation_patches(sample_data: Path):
    root = sample_data / "samples" if (sample_data / "samples").is_dir() else sample_data
    dataset = BigEarthNetDataset(root / "bigearthnet" / "S2", root / "bigearthnet" / "S1")
    samples = []
    for index in range(2):
        sample = dataset[index]
        clear = np.asarray(sample["inputs"]["s2"], dtype=np.float32)[:, :96, :96]
        sar = np.asarray(sample["inputs"]["sar"], dtype=np.float32)[:, :96, :96]
        samples.append({"inputs": {"s2": clear.copy(), "sar": sar}, "target": clear})
    return samples


@pytest.mark.parametrize("gate_bias, opened", [(-8.0, 0.0), (8.0, 1.0)])
def test_gate_check_counts_opened_clear_pixels_and_found_clouds(
    tmp_path, validation_patches, gate_bias, opened
):
    predict, floor = probability_predictor(str(_checkpoint(tmp_path / "run", gate_bias)))
    assert floor == pytest.approx(0.2)
    report = gate_validation(predict, validation_patches, get_sensor("s2").bands, draws=2)
    assert report["n_samples"] == 2 and report["draws"] == 2
    for figures in report["floors"].values():
        assert figures["clear_open_fraction"] == opened
        assert figures["clear_part_open_fraction"] == opened
        assert figures["cloud_recall"] == opened
    assert report["clear_p_quantiles"]["1.0"] == pytest.approx(1.0 if opened else 0.0, abs=1e-3)


def test_gate_check_names_a_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        probability_predictor(str(tmp_path / "nothing"))


def _report(opened_by_floor):
    return {
        "floors": {
            f"{floor:g}": {"clear_open_fraction": opened} for floor, opened in opened_by_floor
        }
    }


def test_calibrated_floor_is_the_lowest_that_keeps_clear_validation_pixels():
    report = _report([(0.1, 0.2), (0.2, 0.01), (0.3, 0.0005), (0.4, 0.0), (0.5, 0.0)])
    assert calibrated_floor(report, 0.2) == pytest.approx(0.3)
    assert calibrated_floor(report, 0.4) == pytest.approx(0.4)  # never below the model's own
    closed = _report([(0.1, 0.0), (0.2, 0.0), (0.3, 0.0)])
    assert calibrated_floor(closed, 0.2) == pytest.approx(0.2)
    hopeless = _report([(0.2, 0.3), (0.5, 0.1)])
    assert calibrated_floor(hopeless, 0.2) == pytest.approx(0.5)


def test_written_floor_travels_into_the_checkpoint_and_leaves_the_source(tmp_path):
    source = _checkpoint(tmp_path / "run" / "checkpoint-best", gate_bias=-1.0)  # p = 0.27
    before = (source / "model.safetensors").read_bytes()
    _, floor = probability_predictor(str(source))
    assert floor == pytest.approx(0.2)
    calibrated = write_floor(str(source), 0.3)
    assert calibrated.name == "checkpoint-calibrated"
    assert (source / "model.safetensors").read_bytes() == before  # hard links not written through
    _, raised = probability_predictor(str(calibrated))
    assert raised == pytest.approx(0.3)
