"""The bundled models carry their test scores, split counts and the licence (bundled_metadata).

The shipped models (those the acceptance gate left) are checked against their manifest; how the
metadata is rewritten is checked on a segmentation model of the tests' own, made by the same
recipe (tests/bundled_models.py), whatever ships.
"""

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


@pytest.fixture(scope="module")
def segmentation(owned_bundled_models):
    """(the recipe's segmentation model, its MANIFEST.json entry, that manifest)."""
    manifest = json.loads((owned_bundled_models / MANIFEST_FILE).read_text())
    entry = next(e for e in manifest["files"] if e["file"] == "segmentation.onnx")
    return owned_bundled_models / "segmentation.onnx", entry, manifest


def test_an_exported_model_is_relabelled_in_place(segmentation, tmp_path):
    import onnx

    from backend.export.schema import embed_metadata

    # The segmentation model as `msgfm export` wrote it: validation scores, no licence.
    path, entry, recipe_manifest = segmentation
    shipped = read_model_metadata(path)
    counts = f"{entry['n_train']} training, {entry['n_val']} validation and {entry['n_test']} test"
    assert counts in shipped.trained_on
    exported = replace(
        shipped,
        metrics=shipped.extra["validation_metrics"],
        license="",
        trained_on=shipped.trained_on.replace(
            counts, f"{entry['n_train']} training and {entry['n_val'] + entry['n_test']} held-back"
        ),
        extra={
            k: v
            for k, v in shipped.extra.items()
            if k not in ("validation_metrics", "test_baseline")
        }
        | {"metrics_split": "validation"},
    )
    model = onnx.load(str(path))
    embed_metadata(model, exported)
    onnx.save(model, str(tmp_path / "segmentation.onnx"))
    manifest = {**recipe_manifest, "files": [{**entry, "sha256": "old", "bytes": 0}]}
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))

    assert update_bundled_models(tmp_path) == ["segmentation.onnx"]
    relabelled = read_model_metadata(tmp_path / "segmentation.onnx")
    assert relabelled.to_dict() == shipped.to_dict()
    written = json.loads((tmp_path / MANIFEST_FILE).read_text())["files"][0]
    assert written["sha256"] == sha256_file(tmp_path / "segmentation.onnx")
    assert update_bundled_models(tmp_path) == []  # a second run changes nothing


def test_info_prints_a_summary_and_strict_json(segmentation, capsys):
    from backend.cli import main

    path, _, _ = segmentation
    assert main(["info", str(path)]) == 0
    summary = capsys.readouterr().out.splitlines()
    assert summary[0] == "msgfm-test-bundled-segmentation 0.1.0: segmentation model"
    assert any(line.startswith("Input 'landsat': sensor landsat, 6 bands") for line in summary)
    assert any("7 classes: 1 developed, 2 agriculture" in line for line in summary)
    assert any(line.startswith("Test scores (held-back tiles") for line in summary)
    assert summary[-1] == f"Licence: {LICENSE}"
    assert len(summary) < 15
    assert main(["info", str(path), "--json"]) == 0
    metadata = json.loads(capsys.readouterr().out, parse_constant=pytest.fail)
    assert metadata["metrics"]["iou_agriculture"] is None  # a class absent from the test tiles


def test_an_undefined_score_is_written_as_null(segmentation):
    from backend.export.schema import from_metadata_props, to_metadata_props

    shipped = read_model_metadata(segmentation[0])
    props = to_metadata_props(replace(shipped, metrics={"mean_iou": float("nan"), "oa": 0.5}))
    assert json.loads(props["metrics"]) == {"mean_iou": None, "oa": 0.5}
    assert from_metadata_props(props).metrics["mean_iou"] is None


@pytest.mark.parametrize("entry", ONNX_ENTRIES, ids=lambda entry: entry["file"])
def test_a_bundled_model_marks_optional_the_inputs_its_training_lacked(entry):
    """An input is optional in the metadata exactly where the manifest counts training samples
    without any data for it (never the first input, the run's grid)."""
    metadata = read_model_metadata(MODELS / entry["file"])
    absent = entry.get("absent_inputs", {})
    want = [s.sensor for s in metadata.inputs[1:] if absent.get(s.sensor, 0) > 0]
    assert metadata.optional_sensors == want
    if entry["task"] == "cloud-removal":  # 3 of its 6 training patches have no S1 partner
        assert absent == {"s2": 0, "sar": 3} and want == ["sar"]


@pytest.mark.parametrize("entry", ONNX_ENTRIES, ids=lambda entry: entry["file"])
def test_a_bundled_model_states_the_product_levels_of_its_statistics(entry, capsys):
    """Statistics equal to the registry's (BigEarthNet L2A) state L2A/L3A: a Sentinel-2 L1C input
    is refused; ``msgfm info`` says so on the input's line."""
    from backend.cli import main
    from backend.export.bundled_metadata import registry_statistics_levels

    path = MODELS / entry["file"]
    metadata = read_model_metadata(path)
    assert metadata.product_levels == registry_statistics_levels(metadata)
    if entry["task"] == "cloud-removal":
        assert metadata.product_levels == {"s2": ["L2A", "L3A"]}
        assert main(["info", str(path)]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("Input 's2'"))
        assert line.endswith(
            "; domain: product level L2A or L3A (surface reflectance), not L1C (top of atmosphere)"
        )
    # Other statistics than the registry's state no level.
    moved = [
        replace(spec, mean=[m + 1 for m in spec.mean]) if spec.sensor == "s2" else spec
        for spec in metadata.inputs
    ]
    assert "s2" not in registry_statistics_levels(replace(metadata, inputs=moved))
