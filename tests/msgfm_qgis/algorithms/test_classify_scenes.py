"""msgfm:classifyscenes on a real 200 x 200 WorldView-2 RGB tile, one prediction per 40 px window."""

from __future__ import annotations

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsVectorLayer

from .conftest import grid, read

ALG = "msgfm:classifyscenes"
WINDOW = 40


def expected_scene_probabilities(path) -> np.ndarray:
    """softmax([mR - mG, mG - mB, mB - mR]) of each 40 px window's normalised band means."""
    rgb = (read(path).astype(np.float64) - 120.0) / 50.0
    bands, height, width = rgb.shape
    means = rgb.reshape(bands, height // WINDOW, WINDOW, width // WINDOW, WINDOW).mean(axis=(2, 4))
    r, g, b = means
    logits = np.stack([r - g, g - b, b - r])
    exp = np.exp(logits - logits.max(axis=0))
    return exp / exp.sum(axis=0)


def test_scene_classes_probabilities_and_windows(run_algorithm, scene_model, sample_data, tmp_path):
    reference = sample_data / "sar_rgb/rgb_unmasked.tif"  # no nodata: every window is a full scene
    result = run_algorithm(
        ALG,
        {
            "INPUT": str(reference),
            "MODEL": str(scene_model),
            "OUTPUT": str(tmp_path / "scenes.tif"),
            "PROBABILITIES": str(tmp_path / "probabilities.tif"),
            "GRID": str(tmp_path / "windows.gpkg"),
        },
    )
    expected = expected_scene_probabilities(reference)
    probabilities = read(result["PROBABILITIES"])
    assert probabilities.shape == (3, 5, 5)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    classes = read(result["OUTPUT"])[0]
    assert np.array_equal(classes, np.argmax(expected, axis=0) + 1)  # class values are 1, 2, 3
    assert len(np.unique(classes)) > 1

    # One cell per window: the reference's CRS and origin, pixels 40 times larger, its nodata.
    want, got = grid(reference), grid(result["OUTPUT"])
    assert got["crs"] == want["crs"]
    a, b, c, d, e, f = want["transform"]
    assert got["transform"] == pytest.approx((a * WINDOW, b, c, d, e * WINDOW, f))
    assert got["size"] == (5, 5)
    assert want["nodata"] is None and got["nodata"] == 255  # a value no class (1, 2, 3) uses

    windows = QgsVectorLayer(result["GRID"], "windows", "ogr")
    assert windows.isValid() and windows.featureCount() == 25
    names = {1: "reddish", 2: "greenish", 3: "bluish"}
    x0, y0 = want["transform"][2], want["transform"][5]
    for feature in windows.getFeatures():
        centre = feature.geometry().centroid().asPoint()
        col = int((centre.x() - x0) // (a * WINDOW))
        row = int((centre.y() - y0) // (e * WINDOW))
        assert feature["top1"] == names[int(classes[row, col])]


def test_a_segmentation_model_is_refused(run_algorithm, probability_model, sample_data, tmp_path):
    with pytest.raises(
        QgsProcessingException,
        match=r"is a segmentation model; use msGFM > Segment land cover, or choose a scene "
        r"classification model",
    ):
        run_algorithm(
            ALG,
            {
                "INPUT": str(sample_data / "rgb/OSBS_029.tif"),
                "MODEL": str(probability_model),
                "OUTPUT": str(tmp_path / "x.tif"),
            },
        )
    assert list(tmp_path.iterdir()) == []


def test_one_model_session_per_run(run_algorithm, scene_model, sample_data, tmp_path, monkeypatch):
    """The pre-run checks read the model's metadata from the file; only the run opens a session."""
    import onnxruntime

    opened = []

    class CountedSession(onnxruntime.InferenceSession):
        def __init__(self, path, *args, **kwargs):
            opened.append(str(path))
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", CountedSession)
    run_algorithm(
        ALG,
        {
            "INPUT": str(sample_data / "sar_rgb/rgb_unmasked.tif"),
            "MODEL": str(scene_model),
            "OUTPUT": str(tmp_path / "scenes.tif"),
        },
    )
    # One session: on the model, or on its optimised form cached by an earlier run of it.
    assert len(opened) == 1
    assert opened[0] == str(scene_model) or opened[0].endswith(".ort")
