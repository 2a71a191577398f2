"""None shipped that fails: the gate moves a failing model out, and the algorithm and its help
then say there is no bundled model and how to get one."""

import json
import shutil
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException

from backend.accept.gate import apply_gate
from backend.accept.suite import thresholds_table

ROOT = Path(__file__).resolve().parents[2]


def _results():
    def model(task, passed, check, value):
        return {
            "task": task,
            "passed": passed,
            "scenes": [
                {
                    "scene": "landsat7_olinda",
                    "checks": [{"check": check, "value": value, "passed": passed, "note": ""}],
                }
            ],
        }

    return {
        "thresholds": thresholds_table(),
        "models": {
            "segmentation.onnx": model("segmentation", False, "water_recall", 0.0),
            "pansharpening.onnx": model("pansharpening", True, "psnr_over_classical_db", 1.5),
        },
    }


def test_gate_moves_the_failing_model_out_and_records_why(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for name in ("segmentation.onnx", "pansharpening.onnx"):
        (models / name).write_bytes(name.encode())
    manifest = {
        "files": [
            {"file": "segmentation.onnx", "task": "segmentation", "sha256": "a"},
            {"file": "pansharpening.onnx", "task": "pansharpening", "sha256": "b"},
        ]
    }
    (models / "MANIFEST.json").write_text(json.dumps(manifest))
    moved = apply_gate(_results(), models, tmp_path / "rejected")
    assert moved == ["segmentation.onnx"]
    assert not (models / "segmentation.onnx").exists()
    assert (tmp_path / "rejected" / "segmentation.onnx").read_bytes() == b"segmentation.onnx"
    assert (models / "pansharpening.onnx").exists()
    written = json.loads((models / "MANIFEST.json").read_text())
    assert [e["file"] for e in written["files"]] == ["pansharpening.onnx"]
    (rejected,) = written["rejected"]
    assert rejected["file"] == "segmentation.onnx" and rejected["sha256"] == "a"
    assert rejected["failed_checks"] == [
        {"scene": "landsat7_olinda", "check": "water_recall", "value": 0.0, "passes_when": ">= 0.8"}
    ]
    assert written["acceptance"]["pansharpening.onnx"]["passed"] is True


def test_without_a_bundled_model_the_algorithm_stops_and_names_finetune_and_a_model_file(
    run_algorithm, sample_data, tmp_path, monkeypatch
):
    import msgfm_qgis.bundled_models
    import msgfm_qgis.model_checks

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(ROOT / "resources/models/segmentation.onnx", models)
    shutil.copy(ROOT / "resources/models/MANIFEST.json", models)
    apply_gate(_results(), models, tmp_path / "rejected")
    monkeypatch.setattr(msgfm_qgis.model_checks, "models_dir", lambda: models)
    monkeypatch.setattr(msgfm_qgis.bundled_models, "models_dir", lambda: models)
    output = tmp_path / "landcover.tif"
    with pytest.raises(
        QgsProcessingException,
        match=r"no bundled model for segmentation input .*msGFM > Finetune.*model file \(\.onnx\)",
    ):
        run_algorithm(
            "msgfm:segmentlandcover",
            {"INPUT": str(sample_data / "multispectral_dem/L7_ETMs.tif"), "OUTPUT": str(output)},
        )
    assert not output.exists()
    note = msgfm_qgis.bundled_models.help_note("segmentation")
    assert "none" in note and "Finetune" in note and "model file (.onnx)" in note
