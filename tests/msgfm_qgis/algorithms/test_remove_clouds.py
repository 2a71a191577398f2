"""msgfm:removeclouds on a real BigEarthNet Sentinel-2 / Sentinel-1 pair (120 x 120 at 10 m)."""

from __future__ import annotations

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsProject

from .conftest import S2_BANDS, S2_STD, SAR_MEAN, SAR_STD, RecordingFeedback, grid, read, stack

ALG = "msgfm:removeclouds"


def expected_reflectance(s2_path, s1_path) -> np.ndarray:
    """The model's output in S2 units: raw S2 + 0.1 x S2 std x mean of the normalised VV, VH,
    clipped to the physical range of S2 reflectance x 10000 (0 to 10000)."""
    s2 = read(s2_path).astype(np.float64)
    sar = (read(s1_path).astype(np.float64) - SAR_MEAN) / SAR_STD
    return np.clip(s2 + 0.1 * S2_STD * sar.mean(axis=0), 0, 10000)


def assert_written(out, expected: np.ndarray) -> None:
    """``out`` holds ``expected`` as Sentinel-2 products store reflectance (the uint16 layer's
    type): rounded to whole units (0.5 off at most, plus float32 noise), 1 at the lowest (0 marks
    nodata)."""
    got = read(out)
    assert got.dtype == np.uint16
    np.testing.assert_allclose(got, np.maximum(expected, 1), rtol=1e-5, atol=0.55)


def assert_on_grid_of(out, s2_path) -> None:
    """``out`` has the 12 model bands on the Sentinel-2 layer's grid (CRS, transform, size)."""
    want, got = grid(s2_path), grid(out)
    assert (got["crs"], got["transform"], got["size"], got["count"]) == (
        want["crs"],
        want["transform"],
        want["size"],
        12,
    )


def test_reflectance_on_the_s2_grid(
    run_algorithm, cloud_removal_model, s2_stack, s1_stack, tmp_path
):
    out = tmp_path / "clear.tif"
    feedback = RecordingFeedback()
    result = run_algorithm(
        ALG,
        {
            "S2": str(s2_stack),
            "SAR": str(s1_stack),
            "MODEL": str(cloud_removal_model),
            "OUTPUT": str(out),
        },
        feedback=feedback,
    )
    assert result["OUTPUT"] == str(out)
    assert result["RUN_MODE"] == "Sentinel-2 + SAR"
    assert "Run mode: Sentinel-2 + SAR" in feedback.infos
    assert_on_grid_of(out, s2_stack)
    assert_written(out, expected_reflectance(s2_stack, s1_stack))


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
    assert_written(out, expected_reflectance(s2_stack, s1_stack))


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


# --- without a SAR layer ------------------------------------------------------------------------


def run_mode_tags(path) -> dict:
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.tags()


def test_without_sar_the_model_gets_sar_as_training_fed_s2_only_patches(
    run_algorithm, s2_only_cloud_removal_model, s2_only_patch, tmp_path
):
    """SAR left empty for a model trained with S2-only samples: SAR is fed as 0 after
    normalisation (training's no-data SAR), so this model returns its S2 input (any other feed,
    such as raw zeros, moves every value by hundreds), every pixel valid, on the S2 grid; the
    result and the output's metadata say no SAR was used."""
    out = tmp_path / "no_sar.tif"
    result = run_algorithm(
        ALG,
        {"S2": str(s2_only_patch), "MODEL": str(s2_only_cloud_removal_model), "OUTPUT": str(out)},
    )
    assert result["RUN_MODE"].startswith("Sentinel-2 only (no SAR layer")
    assert_on_grid_of(out, s2_only_patch)
    clear = read(s2_only_patch).astype(np.float64)
    np.testing.assert_allclose(read(out), clear, rtol=1e-6, atol=0.02)
    tags = run_mode_tags(out)
    assert tags["MSGFM_ABSENT_INPUTS"] == "sar"
    assert tags["MSGFM_RUN_MODE"].startswith("run without sar")


def test_the_run_mode_is_in_the_users_language(
    run_algorithm, s2_only_cloud_removal_model, s2_only_patch, tmp_path
):
    """The run mode in the log and the result goes through Qt's translation (the algorithm's
    class is the context), like the plugin's other texts."""
    from qgis.PyQt.QtCore import QCoreApplication, QTranslator

    french = {
        "Run mode: {}": "Mode : {}",
        "Sentinel-2 only (no SAR layer: the model ran as trained on S2 patches without SAR)": (
            "Sentinel-2 seul"
        ),
    }

    class Translator(QTranslator):
        def translate(self, context, text, disambiguation=None, n=-1):
            return french.get(text, "") if context == "RemoveCloudsAlgorithm" else ""

        def isEmpty(self):
            return False

    translator = Translator()
    QCoreApplication.installTranslator(translator)
    feedback = RecordingFeedback()
    try:
        result = run_algorithm(
            ALG,
            {
                "S2": str(s2_only_patch),
                "MODEL": str(s2_only_cloud_removal_model),
                "OUTPUT": str(tmp_path / "no_sar.tif"),
            },
            feedback=feedback,
        )
    finally:
        QCoreApplication.removeTranslator(translator)
    assert result["RUN_MODE"] == "Sentinel-2 seul"
    assert "Mode : Sentinel-2 seul" in feedback.infos


def test_without_sar_a_model_not_trained_so_refuses_before_writing(
    run_algorithm, cloud_removal_model, s2_only_patch, tmp_path
):
    out = tmp_path / "no_sar.tif"
    with pytest.raises(
        QgsProcessingException,
        match=r"The SAR layer is empty, but the model '.*' was not trained with Sentinel-2 "
        r"samples without SAR, so it cannot remove clouds without one. Choose a Sentinel-1 VV/VH "
        r"layer in .*, or a cloud-removal model trained with S2-only samples",
    ):
        run_algorithm(
            ALG, {"S2": str(s2_only_patch), "MODEL": str(cloud_removal_model), "OUTPUT": str(out)}
        )
    assert list(tmp_path.iterdir()) == []


def test_recipe_model_without_sar_keeps_a_clear_real_s2_only_patch(
    run_algorithm, owned_bundled_models, s2_only_patch, tmp_path
):
    """The recipe's own model (trained, as the shipped one, with S2 patches without an S1
    partner): export marks its SAR optional from the training split, and on a clear real patch
    with no S1 partner its cloud weight stays at or below the floor, so the clear pixels come
    out as they went in (up to the float32 normalisation round trip)."""
    import json

    from backend.export.schema import read_model_metadata

    model = owned_bundled_models / "cloud-removal.onnx"
    manifest = json.loads((owned_bundled_models / "MANIFEST.json").read_text(encoding="utf-8"))
    entry = next(f for f in manifest["files"] if f["file"] == "cloud-removal.onnx")
    assert entry["absent_inputs"]["sar"] > 0 and entry["absent_inputs"]["s2"] == 0
    assert read_model_metadata(model).optional_sensors == ["sar"]
    out = tmp_path / "clear.tif"
    result = run_algorithm(ALG, {"S2": str(s2_only_patch), "MODEL": str(model), "OUTPUT": str(out)})
    assert result["RUN_MODE"].startswith("Sentinel-2 only")
    assert grid(out)["transform"] == grid(s2_only_patch)["transform"]
    clear, got = read(s2_only_patch).astype(np.float64), read(out).astype(np.float64)
    np.testing.assert_allclose(got, clear, rtol=1e-5, atol=0.02)


def test_a_bundled_model_whose_s2_only_mode_failed_acceptance_refuses_an_empty_sar(
    run_algorithm, owned_bundled_models, s2_only_patch, tmp_path
):
    """Trained with S2-only samples, but its folder's acceptance record says the mode failed
    (as ``msgfm accept --gate`` writes it): refused before any work, with the cause and the fix."""
    import json

    from ...bundled_models import copy_models

    folder = copy_models(owned_bundled_models, tmp_path / "models")
    manifest_path = folder / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest.setdefault("acceptance", {})["cloud-removal.onnx"] = {
        "task": "cloud-removal",
        "passed": True,
        "modes": {"without sar": False},
    }
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    out = tmp_path / "out" / "x.tif"
    out.parent.mkdir()
    with pytest.raises(
        QgsProcessingException,
        match=r"is empty: the model cloud-removal.onnx runs without sar only where that mode "
        r"passed acceptance .* it failed its acceptance checks \(docs/acceptance.md\). Give a "
        r"sar raster",
    ):
        run_algorithm(
            ALG,
            {
                "S2": str(s2_only_patch),
                "MODEL": str(folder / "cloud-removal.onnx"),
                "OUTPUT": str(out),
            },
        )
    assert list(out.parent.iterdir()) == []


# --- product level: a model trained on L2A refuses an input known to be L1C --------------------


@pytest.fixture(scope="session")
def l2a_cloud_removal_model(cloud_removal_model, models_root):
    """:func:`cloud_removal_model` whose metadata says its S2 input was trained on L2A (as export
    writes it from L2A statistics, and the bundled model's metadata states)."""
    from ...onnx_models import with_product_levels

    target = models_root / "clouds_l2a.onnx"
    return with_product_levels(cloud_removal_model, target, {"s2": ["L2A"]})


@pytest.fixture
def l1c_like_stack(sample_data, tmp_path):
    """The real patch with a band named B10 (the cirrus band that only L1C products hold)."""
    folder = next((sample_data / "bigearthnet" / "S2").glob("*_87_48"))
    files = [next(folder.glob(f"*_{b}.tif")) for b in S2_BANDS]
    files.insert(10, next(folder.glob("*_B09.tif")))  # in B10's place: B09, B10, B11
    names = [*S2_BANDS[:10], "B10", *S2_BANDS[10:]]
    (tmp_path / "inputs").mkdir()
    return stack(files, tmp_path / "inputs" / "scene.vrt", names)


def _copy_as(source, target):
    """A GeoTIFF copy of ``source`` under another name, optionally with GDAL metadata."""
    import rasterio

    with rasterio.open(source) as dataset:
        profile = dataset.profile | {"driver": "GTiff"}
        data = dataset.read()
        descriptions = dataset.descriptions
    target.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(target, "w", **profile) as out:
        out.write(data)
        out.descriptions = descriptions
    return target


def test_an_l1c_input_is_refused_by_an_l2a_model_before_writing(
    run_algorithm, l2a_cloud_removal_model, l1c_like_stack, s1_stack, tmp_path
):
    out = tmp_path / "outputs" / "clear.tif"
    out.parent.mkdir()
    with pytest.raises(
        QgsProcessingException,
        match=r"this Sentinel-2 input is L1C \(top of atmosphere: it holds band B10, which only "
        r"L1C products have\); the model was trained on L2A \(surface reflectance\). Use the L2A "
        r"product of the scene \(e.g. made with Sen2Cor from the L1C\).*run anyway",
    ):
        run_algorithm(
            ALG,
            {
                "S2": str(l1c_like_stack),
                "SAR": str(s1_stack),
                "MODEL": str(l2a_cloud_removal_model),
                "OUTPUT": str(out),
            },
        )
    assert list(out.parent.iterdir()) == []


def test_an_l1c_named_input_is_refused_and_runs_anyway_marked_out_of_domain(
    run_algorithm, l2a_cloud_removal_model, s2_stack, s1_stack, tmp_path
):
    import rasterio

    named = _copy_as(s2_stack, tmp_path / "S2A_MSIL1C_20170613T101031_T33UUP.tif")
    out = tmp_path / "outputs" / "clear.tif"
    out.parent.mkdir()
    parameters = {
        "S2": str(named),
        "SAR": str(s1_stack),
        "MODEL": str(l2a_cloud_removal_model),
        "OUTPUT": str(out),
    }
    with pytest.raises(QgsProcessingException, match=r"is L1C \(top of atmosphere: its name"):
        run_algorithm(ALG, parameters)
    assert list(out.parent.iterdir()) == []
    run_algorithm(ALG, {**parameters, "RUN_ANYWAY": True})
    assert_written(out, expected_reflectance(s2_stack, s1_stack))
    with rasterio.open(out) as dataset:
        assert "run anyway" in dataset.tags()["MSGFM_OUT_OF_DOMAIN"]


@pytest.mark.parametrize("name", ["s2_87_48.tif", "S2A_MSIL2A_20170613T101031_T33UUP.tif"])
def test_unknown_and_l2a_inputs_run_on_an_l2a_model(
    run_algorithm, l2a_cloud_removal_model, s2_stack, s1_stack, tmp_path, name
):
    import rasterio

    named = _copy_as(s2_stack, tmp_path / name)
    out = tmp_path / "clear.tif"
    run_algorithm(
        ALG,
        {
            "S2": str(named),
            "SAR": str(s1_stack),
            "MODEL": str(l2a_cloud_removal_model),
            "OUTPUT": str(out),
        },
    )
    assert_written(out, expected_reflectance(s2_stack, s1_stack))
    with rasterio.open(out) as dataset:
        assert "MSGFM_OUT_OF_DOMAIN" not in dataset.tags()
