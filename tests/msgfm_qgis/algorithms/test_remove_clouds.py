"""msgfm:removeclouds on a real BigEarthNet Sentinel-2 / Sentinel-1 pair (120 x 120 at 10 m)."""

from __future__ import annotations

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsProject

from .conftest import S2_BANDS, S2_STD, SAR_MEAN, SAR_STD, grid, read, stack

ALG = "msgfm:removeclouds"


def expected_reflectance(s2_path, s1_path) -> np.ndarray:
    """The model's output in S2 units: raw S2 + 0.1 x S2 std x mean of the normalised VV, VH,
    clipped to the physical range of S2 reflectance x 10000 (0 to 10000)."""
    s2 = read(s2_path).astype(np.float64)
    sar = (read(s1_path).astype(np.float64) - SAR_MEAN) / SAR_STD
    return np.clip(s2 + 0.1 * S2_STD * sar.mean(axis=0), 0, 10000)


def test_reflectance_on_the_s2_grid(
    run_algorithm, cloud_removal_model, s2_stack, s1_stack, tmp_path
):
    out = tmp_path / "clear.tif"
    result = run_algorithm(
        ALG,
        {
            "S2": str(s2_stack),
            "SAR": str(s1_stack),
            "MODEL": str(cloud_removal_model),
            "OUTPUT": str(out),
        },
    )
    assert result["OUTPUT"] == str(out)
    want, got = grid(s2_stack), grid(out)
    assert (got["crs"], got["transform"], got["size"], got["count"]) == (
        want["crs"],
        want["transform"],
        want["size"],
        12,
    )
    np.testing.assert_allclose(
        read(out), expected_reflectance(s2_stack, s1_stack), rtol=1e-5, atol=0.05
    )


def test_bands_are_found_by_name_in_a_13_band_stack(
    run_algorithm, cloud_removal_model, sample_data, s1_stack, s2_stack, tmp_path
):
    """An L1C-like stack with B10 and a shuffled order: the model's 12 bands are picked by name."""
    folder = next((sample_data / "bigearthnet" / "S2").glob("*_87_48"))
    names = ["B10", *S2_BANDS[::-1]]
    files = [next(folder.glob("*_B09.tif"))] + [
        next(folder.glob(f"*_{b}.tif")) for b in S2_BANDS[::-1]
    ]
    shuffled = stack(files, tmp_path / "l1c_like.vrt", names)
    out = tmp_path / "clear.tif"
    run_algorithm(
        ALG,
        {
            "S2": str(shuffled),
            "SAR": str(s1_stack),
            "MODEL": str(cloud_removal_model),
            "OUTPUT": str(out),
        },
    )
    np.testing.assert_allclose(
        read(out), expected_reflectance(s2_stack, s1_stack), rtol=1e-5, atol=0.05
    )


def test_sar_layer_elsewhere_is_refused(
    run_algorithm, cloud_removal_model, s2_stack, s1_elsewhere, tmp_path
):
    with pytest.raises(
        QgsProcessingException,
        match=r"Layer 's1_36_85' \(SAR layer .*\) does not overlap layer 's2_87_48' \(Cloudy "
        r"Sentinel-2 layer\): choose layers that cover the same area",
    ):
        run_algorithm(
            ALG,
            {
                "S2": str(s2_stack),
                "SAR": str(s1_elsewhere),
                "MODEL": str(cloud_removal_model),
                "OUTPUT": str(tmp_path / "x.tif"),
            },
        )


def test_too_few_sentinel2_bands(
    run_algorithm, cloud_removal_model, sample_data, s1_stack, tmp_path
):
    rgb = sample_data / "sar_rgb/rgb_unmasked.tif"
    with pytest.raises(
        QgsProcessingException,
        match=r"Layer 'rgb_unmasked' has 3 bands but the model's 's2' input needs 12 \(B01, B02, "
        r"B03, B04, B05, B06, B07, B08, B8A, B09, B11, B12\), so no choice of bands can feed it: "
        r"this model cannot use this layer. Instead: choose a model trained on this imagery",
    ):
        run_algorithm(
            ALG,
            {
                "S2": str(rgb),
                "SAR": str(s1_stack),
                "MODEL": str(cloud_removal_model),
                "OUTPUT": str(tmp_path / "x.tif"),
            },
        )


def test_output_loads_as_true_colour(
    run_algorithm, cloud_removal_model, s2_stack, s1_stack, tmp_path
):
    import processing

    result = processing.runAndLoadResults(
        ALG,
        {
            "S2": str(s2_stack),
            "SAR": str(s1_stack),
            "MODEL": str(cloud_removal_model),
            "OUTPUT": str(tmp_path / "rgb.tif"),
        },
    )
    project = QgsProject.instance()
    loaded = [layer for layer in project.mapLayers().values() if layer.source() == result["OUTPUT"]]
    try:
        assert len(loaded) == 1
        renderer = loaded[0].renderer()
        assert renderer.type() == "multibandcolor"
        assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (4, 3, 2)
        red = read(result["OUTPUT"])[3]
        stretch = renderer.redContrastEnhancement()
        assert np.percentile(red, 1) <= stretch.minimumValue() < stretch.maximumValue()
        assert stretch.maximumValue() <= np.percentile(red, 99.5)
    finally:
        for layer in loaded:
            project.removeMapLayer(layer.id())


def test_recipe_model_returns_a_clear_real_patch_unchanged(
    run_algorithm, owned_bundled_models, s2_stack, s1_stack, tmp_path
):
    """The recipe's own gated model (tests/bundled_models.py; its floor checked on validation
    draws) on the clear real patch 87_48: its cloud weight stays at or below the floor, so the
    output is the input up to the float32 normalisation round trip — no band mean moves, no
    value is clipped (the acceptance suite's clear-scene checks, on the tests' own model)."""
    import json

    manifest = json.loads((owned_bundled_models / "MANIFEST.json").read_text(encoding="utf-8"))
    entry = next(f for f in manifest["files"] if f["file"] == "cloud-removal.onnx")
    gate = entry["gate_validation"]
    assert gate["floor"] >= gate["model_floor"] and "0.2" in gate["floors"]
    out = tmp_path / "clear.tif"
    run_algorithm(
        ALG,
        {
            "S2": str(s2_stack),
            "SAR": str(s1_stack),
            "MODEL": str(owned_bundled_models / "cloud-removal.onnx"),
            "OUTPUT": str(out),
        },
    )
    clear, got = read(s2_stack).astype(np.float64), read(out).astype(np.float64)
    np.testing.assert_allclose(got, clear, rtol=1e-5, atol=0.02)
    means = got.reshape(12, -1).mean(axis=1) / clear.reshape(12, -1).mean(axis=1)
    assert np.abs(means - 1).max() < 1e-5
