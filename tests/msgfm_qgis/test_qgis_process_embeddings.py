"""The Embeddings algorithms from the built zip through qgis_process, on the real S2 L1C scene."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ..embedtools_scenes import make_scenes, points_of
from .test_qgis_process import installed_plugin, qgis_process  # noqa: F401  (module fixture)

pytestmark = pytest.mark.qgis_process


@pytest.fixture(scope="module")
def scenes(sample_data, tmp_path_factory):
    return make_scenes(sample_data, tmp_path_factory.mktemp("qgis_process_scenes"))


def test_embedding_algorithms_are_listed_in_their_group(installed_plugin):  # noqa: F811
    result = qgis_process(["list"], *installed_plugin)
    assert result.returncode == 0, result.stderr
    for name in (
        "classifywithexamples",
        "applyclassifier",
        "findsimilar",
        "clusterembeddings",
        "detectchange",
    ):
        assert f"msgfm:{name}" in result.stdout


def test_classify_then_apply_from_the_zip(installed_plugin, scenes, tmp_path):  # noqa: F811
    import rasterio

    out, classifier = tmp_path / "cover.tif", tmp_path / "cover.json"
    result = qgis_process(
        [
            "run",
            "msgfm:classifywithexamples",
            "--json",
            "--",
            f"INPUT={scenes.stack}",
            f"EXAMPLES={scenes.train_points}",
            "CLASS_FIELD=cover",
            f"OUTPUT={out}",
            f"OUTPUT_CLASSIFIER={classifier}",
        ],
        *installed_plugin,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["results"]["ACCURACY"] > 0.8
    # The default features (the pixel's bands) read no model, even with embedding models in
    # the zip: the sensor registry's S2 entry gives the bands, their order and normalisation.
    info = "\n".join(report["log"]["info"])
    assert "Sensor of the input: " in info and "('s2':" in info
    assert "as the sensor registry reads them" in info
    assert "Bundled embedding model for this input" not in info
    applied = tmp_path / "applied.tif"
    result = qgis_process(
        [
            "run",
            "msgfm:applyclassifier",
            "--json",
            "--",
            f"INPUT={scenes.stack}",
            f"CLASSIFIER={classifier}",
            f"OUTPUT={applied}",
        ],
        *installed_plugin,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    xs, ys, cover = points_of(scenes.test_points)
    with rasterio.open(out) as first, rasterio.open(applied) as second:
        np.testing.assert_array_equal(first.read(), second.read())
        rows, cols = rasterio.transform.rowcol(first.transform, xs, ys)
        values = first.read(1)[np.array(rows), np.array(cols)]
    saved = json.loads(classifier.read_text())
    code = {c["name"]: c["value"] for c in saved["classes"]}
    assert np.mean(values == np.array([code[c] for c in cover])) > 0.9


def test_detect_change_from_the_zip(installed_plugin, scenes, tmp_path):  # noqa: F811
    import rasterio

    out = tmp_path / "change.tif"
    result = qgis_process(
        [
            "run",
            "msgfm:detectchange",
            "--json",
            "--",
            f"BEFORE={scenes.stack}",
            f"AFTER={scenes.pasted}",
            f"OUTPUT={out}",
        ],
        *installed_plugin,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    row, col, height, width = scenes.pasted_window
    with rasterio.open(out) as dataset:
        score = dataset.read(1)
    block = score[row + 16 : row + height - 16, col + 16 : col + width - 16]
    assert np.median(block) > 3 * np.median(score)
