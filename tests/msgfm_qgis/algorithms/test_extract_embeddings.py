"""msgfm:extractembeddings on a real 400 x 400 LiDAR DEM with a stride-4 embedding model, and the
choice of the bundled embedding model (one per sensor) by the input layer's bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException

from backend.export.schema import read_model_metadata
from backend.sensors import SENSORS

from .conftest import DEM_MEAN, DEM_STD, RecordingFeedback, grid, read

ALG = "msgfm:extractembeddings"


def test_stride_4_embeddings(run_algorithm, embedding_model, sample_data, tmp_path):
    import rasterio

    reference = sample_data / "dem/dem.tif"
    out = tmp_path / "embeddings.tif"
    run_algorithm(ALG, {"INPUT": str(reference), "MODEL": str(embedding_model), "OUTPUT": str(out)})
    want, got = grid(reference), grid(out)
    assert got["crs"] == want["crs"]
    a, b, c, d, e, f = want["transform"]
    assert got["transform"] == (a * 4, b, c, d, e * 4, f)
    assert got["size"] == (100, 100) and got["count"] == 2

    with rasterio.open(reference) as dataset:
        dem = dataset.read(1).astype(np.float64)
        valid = dataset.read_masks(1) > 0
    z = (dem - DEM_MEAN) / DEM_STD
    blocks = z.reshape(100, 4, 100, 4)
    full = valid.reshape(100, 4, 100, 4).all(axis=(1, 3))
    embeddings = read(out)
    assert full.sum() > 5000  # most cells are fully valid DEM
    np.testing.assert_allclose(embeddings[0][full], blocks.mean(axis=(1, 3))[full], atol=1e-4)
    np.testing.assert_allclose(
        embeddings[1][full], (blocks**2).mean(axis=(1, 3))[full], rtol=1e-4, atol=1e-4
    )


# Without a model file, the bundled embedding model of the input's sensor runs (one per sensor):
# the tests' own bundled models (the ``bundled_models`` fixture, tests/bundled_models.py).


def _embed_bundled(run_algorithm, layer_path, out, **parameters):
    feedback = RecordingFeedback()
    run_algorithm(
        ALG, {"INPUT": str(layer_path), "OUTPUT": str(out), **parameters}, feedback=feedback
    )
    return [line for line in feedback.infos if "Bundled embedding model" in line]


def _engine(model: Path, sensor, layer_path, out):
    from backend.inference import RasterInput, run_inference

    run_inference(model, [RasterInput(sensor=sensor, path=layer_path)], out)
    return read(out)


def _copy(path: Path, folder: Path) -> Path:
    """A copy to run on: QGIS writes statistics (.aux.xml) beside a one-band layer it opens, and
    the sample folders are shared with other tests."""
    import shutil

    return Path(shutil.copy(path, folder / path.name))


def test_the_bundled_model_is_chosen_by_the_layers_bands(
    run_algorithm, bundled_models, sample_data, tmp_path
):
    dem = _copy(sample_data / "dem/olinda_dem_utm25s.tif", tmp_path)  # 1 band, 111 x 111, 90 m
    chosen = _embed_bundled(run_algorithm, dem, tmp_path / "auto.tif", PREVIEW=None)
    assert len(chosen) == 1 and "embedding-dem.onnx (dem: 1 bands DEM)" in chosen[0]
    assert grid(tmp_path / "auto.tif")["crs"] == grid(dem)["crs"]
    dem_model = bundled_models / "embedding-dem.onnx"
    expected = _engine(dem_model, "dem", dem, tmp_path / "engine_dem.tif")
    np.testing.assert_allclose(read(tmp_path / "auto.tif"), expected, atol=1e-5)

    # The advanced Sensor parameter picks another sensor's model for the same band count.
    sar_index = 1 + list(SENSORS).index("sar_vv")
    chosen = _embed_bundled(
        run_algorithm, dem, tmp_path / "as_sar.tif", SENSOR=sar_index, PREVIEW=None
    )
    assert "embedding-sar_vv.onnx" in chosen[0]
    sar_model = bundled_models / "embedding-sar_vv.onnx"
    other = _engine(sar_model, "sar_vv", dem, tmp_path / "engine_sar.tif")
    np.testing.assert_allclose(read(tmp_path / "as_sar.tif"), other, atol=1e-5)
    assert np.abs(other - expected).max() > 0.1  # two different models, not one


def test_many_output_bands_are_summed_up_in_the_log():
    from msgfm_qgis.algorithms.raster_outputs import band_summary

    assert band_summary(["R", "G", "B"]) == "R, G, B"
    features = [f"feature_{k:03d}" for k in range(240)]
    assert band_summary(features) == (
        "feature_000, feature_001, feature_002, ..., feature_238, feature_239 (240 bands)"
    )


def test_rgb_and_sar_layers_get_their_models(run_algorithm, bundled_models, sample_data, tmp_path):
    rgb = sample_data / "rgb/OSBS_029.tif"
    assert "embedding-rgb.onnx" in _embed_bundled(run_algorithm, rgb, tmp_path / "rgb.tif")[0]
    # One band, as a DEM, but its name says VV: the SAR model.
    vv = _copy(next((sample_data / "s1_vv").glob("*_VV_*.tif")), tmp_path)
    assert "embedding-sar_vv.onnx" in _embed_bundled(run_algorithm, vv, tmp_path / "vv.tif")[0]
    rgb_model = read_model_metadata(bundled_models / "embedding-rgb.onnx")
    assert read(tmp_path / "rgb.tif").shape[0] == len(rgb_model.outputs[0].bands)


def test_a_layer_no_bundled_model_takes_is_a_clear_error(
    run_algorithm, bundled_models, sample_data, tmp_path
):
    from osgeo import gdal

    two = tmp_path / "two_bands.vrt"
    dem = str(_copy(sample_data / "dem/olinda_dem_utm25s.tif", tmp_path))
    gdal.BuildVRT(str(two), [dem, dem], options=gdal.BuildVRTOptions(separate=True))
    with pytest.raises(QgsProcessingException) as raised:
        _embed_bundled(run_algorithm, two, tmp_path / "out" / "x.tif")
    message = str(raised.value)
    assert "has 2 band(s) (band 1, band 2) that fit no known sensor; there is no model" in message
    assert "embedding-rgb.onnx (rgb: 3 bands R, G, B)" in message  # what there is
    assert not (tmp_path / "out").exists()
