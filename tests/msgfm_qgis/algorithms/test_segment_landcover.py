"""msgfm:segmentlandcover through Processing, on real RGB rasters, with a pixel classifier.

The classifier (``probability_model``) scores class k as ``(k + 1) * (R - G) + k * B`` on normalised
bands, so the expected land-cover map is an argmax computed here in numpy from the input pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsProject, QgsRasterLayer

from .conftest import grid, read

ALG = "msgfm:segmentlandcover"
RGB_RASTERS = ["rgb/OSBS_029.tif", "sar_rgb/rgb_unmasked.tif", "rgb/rmnp-rgb.tif"]


def expected_classes(path, n_classes: int = 3):
    """Argmax of the pixel classifier's logits, and a mask of pixels where it is not a near tie."""
    import rasterio

    with rasterio.open(path) as dataset:
        rgb = dataset.read().astype(np.float64)
        valid = np.all(dataset.read_masks() > 0, axis=0)
    r, g, b = (rgb[0] - 120) / 50, (rgb[1] - 120) / 50, (rgb[2] - 110) / 50
    logits = np.stack([(k + 1) * (r - g) + k * b for k in range(n_classes)])
    ordered = np.sort(logits, axis=0)
    clear = (ordered[-1] - ordered[-2]) > 1e-3
    return np.argmax(logits, axis=0), valid, clear


def assert_land_cover(out, reference):
    classes, valid, clear = expected_classes(reference)
    got = grid(out)
    want = grid(reference)
    assert (got["crs"], got["transform"], got["size"]) == (
        want["crs"],
        want["transform"],
        want["size"],
    )
    if want["nodata"] is not None:
        assert got["nodata"] == want["nodata"]
    band = read(out)[0]
    assert np.array_equal(band[valid & clear], classes[valid & clear])
    assert np.all(band[~valid] == got["nodata"])
    assert len(np.unique(classes[valid])) > 1  # the map is not trivially one class


def test_batch_over_real_rgb_rasters(run_algorithm, probability_model, sample_data, tmp_path):
    for name in RGB_RASTERS:
        reference = sample_data / name
        out = tmp_path / f"{reference.stem}_landcover.tif"
        result = run_algorithm(
            ALG, {"INPUT": str(reference), "MODEL": str(probability_model), "OUTPUT": str(out)}
        )
        assert result["OUTPUT"] == str(out)
        assert_land_cover(out, reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{(sample_data / n).stem}_landcover.tif{aux}"
        for n in RGB_RASTERS
        for aux in ("", ".aux.xml")
    )  # no staging folders or partial files left


def test_probabilities_and_class_legend(run_algorithm, probability_model, sample_data, tmp_path):
    from osgeo import gdal

    reference = sample_data / "sar_rgb/rgb_unmasked.tif"
    result = run_algorithm(
        ALG,
        {
            "INPUT": str(reference),
            "MODEL": str(probability_model),
            "OUTPUT": str(tmp_path / "classes.tif"),
            "PROBABILITIES": str(tmp_path / "probabilities.tif"),
        },
    )
    probabilities = read(result["PROBABILITIES"])
    assert probabilities.shape == (3, 200, 200)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-5)
    assert np.array_equal(np.argmax(probabilities, axis=0), read(result["OUTPUT"])[0])
    # GDAL 3.6's Python Band.GetCategoryNames returns None for GeoTIFF; gdalinfo's JSON reads them.
    band = gdal.Info(result["OUTPUT"], format="json")["bands"][0]
    assert band["categories"][:3] == ["class 0", "class 1", "class 2"]
    assert band["colorTable"]["entries"][2] == [80, 128, 175, 255]  # "#5080af"


def test_subprocess_backend_gives_the_same_map(
    run_algorithm, probability_model, sample_data, tmp_path
):
    reference = str(sample_data / "sar_rgb/rgb_unmasked.tif")
    outputs = {}
    for backend in (0, 1):
        out = tmp_path / f"backend{backend}.tif"
        run_algorithm(
            ALG,
            {
                "INPUT": reference,
                "MODEL": str(probability_model),
                "OUTPUT": str(out),
                "BACKEND": backend,
            },
        )
        outputs[backend] = read(out)
    assert np.array_equal(outputs[0], outputs[1])
    assert grid(tmp_path / "backend0.tif") == grid(tmp_path / "backend1.tif")


def test_a_layer_that_is_not_a_file_is_read_through_qgis(
    run_algorithm, probability_model, sample_data, tmp_path
):
    from osgeo import gdal

    reference = sample_data / "rgb/OSBS_029.tif"
    gdal.Translate("/vsimem/osbs_in_memory.tif", str(reference))
    layer = QgsRasterLayer("/vsimem/osbs_in_memory.tif", "osbs in memory")
    assert layer.isValid()
    try:
        out = tmp_path / "from_memory.tif"
        run_algorithm(ALG, {"INPUT": layer, "MODEL": str(probability_model), "OUTPUT": str(out)})
        assert_land_cover(out, reference)
    finally:
        del layer
        gdal.Unlink("/vsimem/osbs_in_memory.tif")


def test_cancel_mid_run_leaves_no_output(run_algorithm, probability_model, sample_data, tmp_path):
    feedback = QgsProcessingFeedback()
    progress = []

    def cancel_once_running(percent):
        progress.append(percent)
        if percent > 0:
            feedback.cancel()

    feedback.progressChanged.connect(cancel_once_running)
    out = tmp_path / "cancelled.tif"
    with pytest.raises(QgsProcessingException, match="cancelled"):
        run_algorithm(
            ALG,
            {
                "INPUT": str(sample_data / "rgb/OSBS_029.tif"),
                "MODEL": str(probability_model),
                "OUTPUT": str(out),
                "BATCH_SIZE": 1,
            },
            feedback=feedback,
        )
    assert 0 < max(progress) < 50  # it stopped early, not at the end
    assert list(tmp_path.iterdir()) == []


def test_wrong_band_count_names_layer_and_bands(
    run_algorithm, probability_model, sample_data, tmp_path
):
    pan = QgsRasterLayer(str(sample_data / "pan_ms/pan1.tif"), "pan1")
    message = (
        r"Layer 'pan1' has 1 band but the model's 'rgb' input needs 3 \(R, G, B\), so no choice of "
        r"bands can feed it: this model cannot use this layer. Instead: .*msGFM > Finetune"
    )
    with pytest.raises(QgsProcessingException, match=message):
        run_algorithm(
            ALG, {"INPUT": pan, "MODEL": str(probability_model), "OUTPUT": str(tmp_path / "x.tif")}
        )
    with pytest.raises(QgsProcessingException, match=r"Layer 'pan1': 2 band\(s\) chosen in"):
        run_algorithm(
            ALG,
            {
                "INPUT": str(sample_data / "pan_ms/pan1.tif"),
                "BANDS": [1, 1],
                "MODEL": str(probability_model),
                "OUTPUT": str(tmp_path / "x.tif"),
            },
        )
    assert list(tmp_path.iterdir()) == []


def test_chosen_bands_feed_the_model_in_order(
    run_algorithm, probability_model, sample_data, tmp_path
):
    """Bands 3, 2, 1 of an RGB raster make it BGR: the map follows the chosen order."""
    import rasterio

    reference = sample_data / "sar_rgb/rgb_unmasked.tif"
    with rasterio.open(reference) as dataset:
        bgr = dataset.read()[::-1]
        profile = dataset.profile
    swapped = tmp_path / "bgr.tif"
    with rasterio.open(swapped, "w", **profile) as dataset:
        dataset.write(bgr)
    out = tmp_path / "classes.tif"
    run_algorithm(
        ALG,
        {
            "INPUT": str(swapped),
            "BANDS": [3, 2, 1],
            "MODEL": str(probability_model),
            "OUTPUT": str(out),
        },
    )
    assert_land_cover(out, reference)


def test_a_corrupt_model_is_refused(run_algorithm, sample_data, tmp_path):
    corrupt = tmp_path / "landcover.onnx"
    corrupt.write_bytes(b"\x08\x07partial download")
    with pytest.raises(QgsProcessingException, match=r"landcover\.onnx is not a valid ONNX model"):
        run_algorithm(
            ALG,
            {
                "INPUT": str(sample_data / "rgb/OSBS_029.tif"),
                "MODEL": str(corrupt),
                "OUTPUT": str(tmp_path / "x.tif"),
            },
        )


def test_missing_bundled_model_says_to_choose_one(
    run_algorithm, sample_data, tmp_path, monkeypatch
):
    import msgfm_qgis.model_checks

    monkeypatch.setattr(msgfm_qgis.model_checks, "models_dir", lambda: tmp_path / "models")
    with pytest.raises(
        QgsProcessingException,
        match=r"no bundled model for segmentation input .*msGFM > Finetune, or choose a model file",
    ):
        run_algorithm(
            ALG, {"INPUT": str(sample_data / "rgb/OSBS_029.tif"), "OUTPUT": str(tmp_path / "x.tif")}
        )


def test_all_nodata_input_warns_and_writes_nodata(
    run_algorithm, probability_model, sample_data, tmp_path
):
    """Decided behaviour: a run over nodata only succeeds, warns, and writes an all-nodata map."""
    import rasterio

    with rasterio.open(sample_data / "rgb/OSBS_029.tif") as dataset:
        profile = dataset.profile
        shape = (dataset.count, dataset.height, dataset.width)
    empty = tmp_path / "all_nodata.tif"
    with rasterio.open(empty, "w", **profile) as dataset:
        dataset.write(np.full(shape, profile["nodata"], dtype=profile["dtype"]))
    warnings = []
    feedback = QgsProcessingFeedback()
    feedback.pushWarning = warnings.append  # Python-side calls from the algorithm land here
    out = tmp_path / "classes.tif"
    run_algorithm(
        ALG,
        {"INPUT": str(empty), "MODEL": str(probability_model), "OUTPUT": str(out)},
        feedback=feedback,
    )
    assert np.all(read(out) == 255)
    assert any("the output is all nodata" in w for w in warnings)


def test_output_loads_with_the_model_classes(
    probability_model, sample_data, tmp_path, run_algorithm
):
    import processing

    out = tmp_path / "styled.tif"
    result = processing.runAndLoadResults(
        ALG,
        {
            "INPUT": str(sample_data / "sar_rgb/rgb_unmasked.tif"),
            "MODEL": str(probability_model),
            "OUTPUT": str(out),
        },
    )
    project = QgsProject.instance()
    loaded = [layer for layer in project.mapLayers().values() if layer.source() == result["OUTPUT"]]
    try:
        assert len(loaded) == 1
        renderer = loaded[0].renderer()
        assert renderer.type() == "paletted"
        assert [(c.value, c.label, c.color.name()) for c in renderer.classes()] == [
            (0, "class 0", "#0080ff"),
            (1, "class 1", "#2880d7"),
            (2, "class 2", "#5080af"),
        ]
    finally:
        for layer in loaded:
            project.removeMapLayer(layer.id())


def test_missing_onnxruntime_says_what_to_install(
    run_algorithm, probability_model, sample_data, tmp_path, monkeypatch
):
    """Simulated: onnxruntime is installed here, so the import check is made to fail."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "onnxruntime" else real_find_spec(name, *args),
    )
    out = tmp_path / "landcover.tif"
    with pytest.raises(QgsProcessingException, match=r"-m pip install .*onnxruntime numpy=="):
        run_algorithm(
            ALG,
            {
                "INPUT": str(sample_data / "rgb/OSBS_029.tif"),
                "MODEL": str(probability_model),
                "OUTPUT": str(out),
            },
        )
    assert not out.exists()
