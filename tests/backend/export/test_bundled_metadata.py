"""The bundled models carry their test scores, split counts and the licence (bundled_metadata)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from backend.export.bundled_metadata import LICENSE, MANIFEST_FILE, update_bundled_models
from backend.export.schema import read_model_metadata
from backend.files import sha256_file

MODELS = Path(__file__).resolve().parents[3] / "resources" / "models"
MANIFEST = json.loads((MODELS / MANIFEST_FILE).read_text())
ONNX_ENTRIES = [entry for entry in MANIFEST["files"] if entry["file"].endswith(".onnx")]


@pytest.mark.parametrize("entry", ONNX_ENTRIES, ids=lambda entry: entry["file"])
def test_a_bundled_model_carries_its_test_scores_and_licence(entry):
    path = MODELS / entry["file"]
    assert entry["sha256"] == sha256_file(path) and entry["bytes"] == path.stat().st_size
    metadata = read_model_metadata(path)
    assert metadata.license == LICENSE
    if "evaluation" in entry:
        assert metadata.extra["metrics_split"] == "test"
        assert metadata.metrics == entry["evaluation"]["metrics"]
        assert metadata.extra["validation_metrics"] != metadata.metrics
        assert f"{entry['n_val']} validation and {entry['n_test']} test" in metadata.trained_on
        assert "held-back" not in metadata.trained_on
    else:
        assert metadata.task == "embedding" and not metadata.metrics


def test_an_exported_model_is_relabelled_in_place(tmp_path):
    import onnx

    from backend.export.schema import embed_metadata

    # The bundled segmentation model as `msgfm export` wrote it: validation scores, no licence.
    shipped = read_model_metadata(MODELS / "segmentation.onnx")
    exported = replace(
        shipped,
        metrics=shipped.extra["validation_metrics"],
        license="",
        trained_on=shipped.trained_on.replace(
            "52 training, 39 validation and 39 test", "52 training and 39 held-back"
        ),
        extra={
            k: v
            for k, v in shipped.extra.items()
            if k not in ("validation_metrics", "test_baseline")
        }
        | {"metrics_split": "validation"},
    )
    model = onnx.load(str(MODELS / "segmentation.onnx"))
    embed_metadata(model, exported)
    onnx.save(model, str(tmp_path / "segmentation.onnx"))
    entry = next(e for e in MANIFEST["files"] if e["file"] == "segmentation.onnx")
    manifest = {**MANIFEST, "files": [{**entry, "sha256": "old", "bytes": 0}]}
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))

    assert update_bundled_models(tmp_path) == ["segmentation.onnx"]
    relabelled = read_model_metadata(tmp_path / "segmentation.onnx")
    assert relabelled.to_dict() == shipped.to_dict()
    written = json.loads((tmp_path / MANIFEST_FILE).read_text())["files"][0]
    assert written["sha256"] == sha256_file(tmp_path / "segmentation.onnx")
    assert update_bundled_models(tmp_path) == []  # a second run changes nothing


def test_info_prints_a_summary_and_strict_json(capsys):
    from backend.cli import main

    assert main(["info", str(MODELS / "segmentation.onnx")]) == 0
    summary = capsys.readouterr().out.splitlines()
    assert summary[0] == "msgfm-lite-segmentation 0.1.0: segmentation model"
    assert any(line.startswith("Input 'landsat': sensor landsat, 6 bands") for line in summary)
    assert any("7 classes: 1 developed, 2 agriculture" in line for line in summary)
    assert any(line.startswith("Test scores (held-back tiles") for line in summary)
    assert summary[-1] == f"Licence: {LICENSE}"
    assert len(summary) < 15
    assert main(["info", str(MODELS / "segmentation.onnx"), "--json"]) == 0
    metadata = json.loads(capsys.readouterr().out, parse_constant=pytest.fail)
    assert metadata["metrics"]["iou_agriculture"] is None  # a class absent from the test tiles


def test_an_undefined_score_is_written_as_null():
    from backend.export.schema import from_metadata_props, to_metadata_props

    shipped = read_model_metadata(MODELS / "segmentation.onnx")
    props = to_metadata_props(replace(shipped, metrics={"mean_iou": float("nan"), "oa": 0.5}))
    assert json.loads(props["metrics"]) == {"mean_iou": None, "oa": 0.5}
    assert from_metadata_props(props).metrics["mean_iou"] is None
