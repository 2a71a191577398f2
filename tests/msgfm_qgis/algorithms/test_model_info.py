"""msgfm:modelinfo through Processing, on a real exported ONNX model."""

from __future__ import annotations

import json

import pytest
from qgis.core import QgsProcessingException


def test_reports_the_metadata(run_algorithm, probability_model, tmp_path):
    out = tmp_path / "info" / "model.json"
    result = run_algorithm("msgfm:modelinfo", {"MODEL": str(probability_model), "OUTPUT": str(out)})
    assert result["TASK"] == "segmentation"
    assert result["MODEL_NAME"] == "test-pixel-classifier"
    written = json.loads(out.read_text())
    assert written == json.loads(result["METADATA"])
    assert written["inputs"][0]["bands"] == ["R", "G", "B"]
    assert written["tile_size"] == 32
    assert [p.name for p in out.parent.iterdir()] == ["model.json"]  # no temporary files left


def test_without_json_output(run_algorithm, probability_model):
    result = run_algorithm("msgfm:modelinfo", {"MODEL": str(probability_model)})
    assert json.loads(result["METADATA"])["outputs"][0]["kind"] == "probability"


def test_a_file_that_is_not_a_model_is_refused_clearly(run_algorithm, tmp_path):
    corrupt = tmp_path / "downloaded.onnx"
    corrupt.write_text("<html>404 not found</html>")
    with pytest.raises(QgsProcessingException, match=r"downloaded\.onnx is not a valid ONNX model"):
        run_algorithm("msgfm:modelinfo", {"MODEL": str(corrupt)})


def test_an_onnx_model_without_msgfm_metadata_is_refused(
    run_algorithm, probability_model, tmp_path
):
    import onnx

    plain = tmp_path / "plain.onnx"
    model = onnx.load(str(probability_model))
    del model.metadata_props[:]
    onnx.save(model, str(plain))
    with pytest.raises(QgsProcessingException, match="not an msGFM model"):
        run_algorithm("msgfm:modelinfo", {"MODEL": str(plain)})


def test_missing_onnxruntime_says_what_to_install(run_algorithm, probability_model, monkeypatch):
    """Simulated: onnxruntime is installed here, so the import check is made to fail."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "onnxruntime" else real_find_spec(name, *args),
    )
    with pytest.raises(QgsProcessingException, match=r"-m pip install .*onnxruntime numpy=="):
        run_algorithm("msgfm:modelinfo", {"MODEL": str(probability_model)})
