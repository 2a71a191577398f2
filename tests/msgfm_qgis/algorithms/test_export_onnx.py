"""msgfm:exportonnx through Processing: a real finetuning checkpoint to an .onnx that
msgfm:modelinfo reads; a parity failure and a folder without a checkpoint are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback

from ...tiny_model import write_tiny_config
from .test_finetune import LANDSAT_BANDS

ALG = "msgfm:exportonnx"


@pytest.fixture(scope="module")
def finetuned_run(sample_data, tmp_path_factory) -> Path:
    """One step of ``msgfm finetune`` (tiny model, land cover of the Landsat-7 sample): a run
    folder with checkpoint-last and checkpoint-best."""
    from backend.cli import main

    folder = tmp_path_factory.mktemp("export_source")
    config = write_tiny_config(folder, image_size=32)
    out = folder / "run"
    argv = [
        "finetune", "--task", "segmentation", "--init", "none", "--config", str(config),
        "--data", "finetune_segmentation", "--data-root", str(sample_data), "--out", str(out),
        "--max-steps", "1", "--batch-size", "2", "--tile-size", "32", "--device", "cpu",
        "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    assert (out / "checkpoint-last" / "model.safetensors").is_file()
    return out


def test_exported_checkpoint_is_a_model_modelinfo_reads(run_algorithm, finetuned_run, tmp_path):
    out = tmp_path / "landcover.onnx"
    result = run_algorithm(
        ALG, {"CHECKPOINT": str(finetuned_run / "checkpoint-last"), "OUTPUT": str(out)}
    )
    assert result["OUTPUT"] == str(out) and out.stat().st_size > 50_000
    assert result["TASK"] == "segmentation"
    assert 0.0 <= result["MAX_ABS_DIFF"] <= 1e-4

    info = run_algorithm("msgfm:modelinfo", {"MODEL": str(out)})
    metadata = json.loads(info["METADATA"])
    assert info["TASK"] == "segmentation" and metadata["tile_size"] == 32
    [inputs] = metadata["inputs"]
    assert inputs["sensor"] == "landsat" and inputs["bands"] == LANDSAT_BANDS
    [class_output] = [o for o in metadata["outputs"] if o["kind"] == "class"]
    assert [c["value"] for c in class_output["classes"]] == [1, 2, 3, 4, 5, 6, 7]
    assert "mean_iou" in metadata["metrics"]


def test_a_training_folder_exports_its_best_checkpoint(run_algorithm, finetuned_run, tmp_path):
    feedback_lines = []

    class Lines(QgsProcessingFeedback):
        def pushInfo(self, info):
            feedback_lines.append(info)

    out = tmp_path / "model"  # the .onnx suffix is added
    result = run_algorithm(
        ALG, {"CHECKPOINT": str(finetuned_run), "OUTPUT": str(out)}, feedback=Lines()
    )
    assert result["OUTPUT"] == str(out) + ".onnx" and Path(result["OUTPUT"]).is_file()
    assert feedback_lines[0] == (f"Exporting {finetuned_run / 'checkpoint-best'} to {out}.onnx")
    assert any(
        line.startswith("Exported a segmentation model; ONNX Runtime matches torch within")
        for line in feedback_lines
    )


def test_a_parity_failure_is_an_error_and_writes_nothing(run_algorithm, finetuned_run, tmp_path):
    """No tolerance at all: float32 ONNX Runtime kernels never match torch's to the last bit."""
    out = tmp_path / "strict.onnx"
    with pytest.raises(
        QgsProcessingException,
        match=r"msGFM export failed: ONNX Runtime differs from torch on output '\w+' by max abs "
        r"diff .* > tolerance 0 .*the model was not written",
    ):
        run_algorithm(
            ALG,
            {
                "CHECKPOINT": str(finetuned_run / "checkpoint-last"),
                "TOLERANCE": 0.0,
                "OUTPUT": str(out),
            },
        )
    assert list(tmp_path.iterdir()) == []


def test_a_folder_without_a_checkpoint_is_named(run_algorithm, sample_data, tmp_path):
    folder = sample_data / "landcover"
    with pytest.raises(
        QgsProcessingException, match=rf"'{folder}' holds no msGFM checkpoint .*model.safetensors"
    ):
        run_algorithm(ALG, {"CHECKPOINT": str(folder), "OUTPUT": str(tmp_path / "x.onnx")})
    assert not (tmp_path / "x.onnx").exists()
