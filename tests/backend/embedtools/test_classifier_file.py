"""The classifier file of a bands-only classifier: what it needs to read the bands, what it refuses."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from backend.embedtools.bands_only import sensor_input
from backend.embedtools.classifier_file import (
    ClassifierFile,
    ClassifierFileError,
    ClassInfo,
    EncoderIdentity,
)
from backend.embedtools.features import FeatureLayout
from backend.export.schema import read_model_metadata


@pytest.fixture
def bands_only(embedding_model_folder):
    model = embedding_model_folder / "embedding.onnx"
    metadata = read_model_metadata(model)
    return ClassifierFile(
        EncoderIdentity.of(model, metadata),
        [ClassInfo(1, "a", "#ff0000"), ClassInfo(2, "b", "#00ff00")],
        FeatureLayout(0, len(metadata.inputs[0].bands)),
        "logistic",
        {},
        [],
        [],
        input=asdict(metadata.inputs[0]),
    ), metadata


def test_a_bands_only_file_reads_its_bands_without_the_model(bands_only, tmp_path):
    saved, metadata = bands_only
    loaded = ClassifierFile.load(saved.save(tmp_path / "c.json"))
    assert loaded.features == "bands" and not loaded.needs_encoder
    reading = loaded.input_metadata()
    assert reading.inputs[0] == metadata.inputs[0]  # sensor, bands, normalisation
    assert reading.outputs == []
    loaded.check_input(metadata)  # the model it was fitted with reads the bands the same way


def test_a_model_that_reads_the_bands_otherwise_is_refused(bands_only, embedding_model_folder):
    saved, _ = bands_only
    sar = read_model_metadata(embedding_model_folder / "sar_embeddings.onnx")
    with pytest.raises(ClassifierFileError, match="leave the model empty"):
        saved.check_input(sar)


def test_an_edited_or_incomplete_file_is_refused(bands_only, tmp_path):
    saved, _ = bands_only
    data = saved.to_dict()
    data["features"] = "embedding+bands"
    (tmp_path / "edited.json").write_text(json.dumps(data))
    with pytest.raises(ClassifierFileError, match="the file was edited"):
        ClassifierFile.load(tmp_path / "edited.json")
    data = saved.to_dict()
    del data["input"]
    data["version"] = 1
    (tmp_path / "no_input.json").write_text(json.dumps(data))
    with pytest.raises(ClassifierFileError, match="names no input bands"):
        ClassifierFile.load(tmp_path / "no_input.json").input_metadata()
    data["version"] = 4
    (tmp_path / "newer.json").write_text(json.dumps(data))
    with pytest.raises(ClassifierFileError, match="newer msGFM"):
        ClassifierFile.load(tmp_path / "newer.json")


def test_a_bands_only_file_of_the_sensor_registry_names_no_model(tmp_path):
    """Version 3: a classifier on the bands read as the sensor registry says has no encoder."""
    spec = sensor_input("landsat")
    saved = ClassifierFile(
        None,
        [ClassInfo(1, "a", "#ff0000"), ClassInfo(2, "b", "#00ff00")],
        FeatureLayout(0, len(spec.bands)),
        "logistic",
        {},
        [],
        [],
        input=asdict(spec),
    )
    data = saved.to_dict()
    assert data["version"] == 3 and data["encoder"] is None
    loaded = ClassifierFile.load(saved.save(tmp_path / "c.json"))
    assert loaded.encoder is None and not loaded.needs_encoder
    reading = loaded.input_metadata()
    assert reading.inputs[0] == spec and reading.outputs == []
    assert reading.inputs[0].bands == ["B1", "B2", "B3", "B4", "B5", "B7"]
    # No encoder named, yet encoder features: an edited file.
    data["layout"] = {"embedding": 16, "bands": 6}
    data["features"] = "embedding+bands"
    (tmp_path / "edited.json").write_text(json.dumps(data))
    with pytest.raises(ClassifierFileError, match="names no embedding model"):
        ClassifierFile.load(tmp_path / "edited.json")
