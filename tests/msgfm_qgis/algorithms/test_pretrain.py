"""msgfm:pretrain through Processing: real layers, a real (tiny) training run, cancel, bad input."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException, QgsRasterLayer

from msgfm_qgis.settings import set_worker_python

from .conftest import RecordingFeedback

ALG = "msgfm:pretrain"
NO_TORCH_PYTHON = Path("/usr/bin/python3")  # Debian's Python: PyQGIS and GDAL, but no torch


@pytest.fixture
def worker_without_torch():
    set_worker_python(str(NO_TORCH_PYTHON))
    yield NO_TORCH_PYTHON
    set_worker_python("")


def test_pretrain_on_two_real_layers(run_algorithm, sample_data, tmp_path):
    rgb = QgsRasterLayer(str(sample_data / "rgb/OSBS_029.tif"), "neon rgb")
    dem = QgsRasterLayer(str(sample_data / "dem/dem.tif"), "lidar dem")
    feedback = RecordingFeedback()
    out = tmp_path / "run"
    result = run_algorithm(
        ALG,
        {
            "LAYERS": [rgb, dem],
            "SENSORS": "rgb, dsm",
            "MAX_STEPS": 2,
            "BATCH_SIZE": 1,
            "DEVICE": 1,
            "OUTPUT": str(out),
        },
        feedback=feedback,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert [list(s["sensors"].items()) for s in manifest["sources"]] == [
        [("rgb", {"path": str(sample_data / "rgb/OSBS_029.tif")})],
        [("dsm", {"path": str(sample_data / "dem/dem.tif")})],
    ]
    assert result["MANIFEST_USED"] == str(out / "manifest.json")
    assert result["CHECKPOINT"] == str(out / "checkpoint-last")
    assert (out / "checkpoint-last" / "model.safetensors").stat().st_size > 100_000
    assert result["STEPS"] == 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses)
    assert result["LOSS"] == pytest.approx(losses[-1], rel=1e-4)
    assert json.loads((out / "summary.json").read_text())["step"] == 2
    # Progress followed the steps, and the training log reached the Processing log.
    assert max(feedback.progress) == 100 and 50 in feedback.progress
    assert feedback.texts[-2:] == [f"step 2/2 loss {losses[-1]:.4f}", "done at step 2"]
    assert any("training on cpu" in line.lower() for line in feedback.infos + feedback.console)


def test_cancel_stops_the_training_process_promptly(run_algorithm, sample_data, tmp_path):
    feedback = RecordingFeedback(cancel_at_step=1)
    out = tmp_path / "cancelled"
    with pytest.raises(QgsProcessingException, match="cancelled"):
        run_algorithm(
            ALG,
            {
                "LAYERS": [str(sample_data / "dem/dem.tif")],
                "SENSORS": "dsm",
                "MAX_STEPS": 5000,
                "BATCH_SIZE": 2,
                "DEVICE": 1,
                "OUTPUT": str(out),
            },
            feedback=feedback,
        )
    assert feedback.cancelled_at is not None
    assert time.monotonic() - feedback.cancelled_at < 10  # not the 5000 steps
    # Steps of this run take well under a second, so a few progress events may already be in the
    # pipe when the cancel arrives; the run must still stop a handful of steps later, not at 5000.
    steps = [int(t.split()[1].split("/")[0]) for t in feedback.texts if t.startswith("step ")]
    assert steps and max(steps) < 50
    [started] = [i for i in feedback.infos if i.startswith("Backend: local subprocess ")]
    pid = int(started.split()[3])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the training process has ended


def test_worker_python_without_torch_says_what_to_do(
    run_algorithm, sample_data, tmp_path, worker_without_torch
):
    message = (
        rf"'{worker_without_torch}' has no torch\. Either install it there: "
        rf"{worker_without_torch} -m pip install \"torch\".*or set the QGIS setting "
        r"msgfm/worker_python"
    )
    with pytest.raises(QgsProcessingException, match=message):
        run_algorithm(ALG, {"MAX_STEPS": 1, "OUTPUT": str(tmp_path / "run")})


def test_a_co_registered_pair_becomes_one_paired_scene(
    run_algorithm, sample_data, tmp_path, worker_without_torch
):
    """The manifest is written before training starts; the backend reads it as one pair."""
    from backend.data.manifest import load_manifest

    rgb, dem = sample_data / "rgb/rmnp-rgb.tif", sample_data / "dem/rmnp-dem.tif"
    out = tmp_path / "pair"
    with pytest.raises(QgsProcessingException, match="has no torch"):
        run_algorithm(
            ALG,
            {
                "LAYERS": [str(rgb), str(dem)],
                "SENSORS": "rgb,dsm",
                "PAIRED": True,
                "OUTPUT": str(out),
            },
        )
    manifest = load_manifest(out / "manifest.json")
    [source] = manifest.sources
    [scene] = source.scenes
    assert scene.paired and scene.sensors == ["rgb", "dsm"]


@pytest.mark.parametrize(
    ("layers", "sensors", "message"),
    [
        (["rgb/OSBS_029.tif", "dem/dem.tif"], "rgb, dsm, sar", r"2 layers are chosen but 3"),
        (["dem/dem.tif"], "lidar", r"Unknown sensor 'lidar' for layer 'dem': use one of .*dsm"),
        (["dem/dem.tif"], "", r"Name the sensor of each layer"),
        (
            ["multispectral_dem/L7_ETMs.tif"],
            "rgb",
            r"Layer 'L7_ETMs' has 6 bands but the model's 'rgb' input needs 3 \(R, G, B\)",
        ),
    ],
)
def test_layer_and_sensor_mistakes_are_named(
    run_algorithm, sample_data, tmp_path, layers, sensors, message
):
    with pytest.raises(QgsProcessingException, match=message):
        run_algorithm(
            ALG,
            {
                "LAYERS": [str(sample_data / p) for p in layers],
                "SENSORS": sensors,
                "OUTPUT": str(tmp_path / "run"),
            },
        )
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_a_manifest_and_layers_together_are_refused(run_algorithm, sample_data, tmp_path):
    manifest = tmp_path / "m.json"
    manifest.write_text("{}")
    with pytest.raises(QgsProcessingException, match="either a pretraining manifest or raster"):
        run_algorithm(
            ALG,
            {
                "MANIFEST": str(manifest),
                "LAYERS": [str(sample_data / "dem/dem.tif")],
                "SENSORS": "dsm",
                "OUTPUT": str(tmp_path / "run"),
            },
        )
