"""What the dialog tells a user before a run: help text from the bundled models' metadata, help
URLs into the user guide, the layers preselected for each input, and advice when a layer cannot fit.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProcessingException, QgsProject, QgsRasterLayer

from backend.export.schema import read_model_metadata
from msgfm_qgis.algorithms import ALGORITHMS
from msgfm_qgis.help_urls import heading_anchor, repository_url

ROOT = Path(__file__).resolve().parents[2]
S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
ANALYSIS_TASKS = {
    "classifyscenes": "classification",
    "segmentlandcover": "segmentation",
    "removeclouds": "cloud-removal",
    "pansharpen": "pansharpening",
    "extractembeddings": "embedding",
}


def guide_anchors():
    text = (ROOT / "docs" / "user-guide.md").read_text(encoding="utf-8")
    return {heading_anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.NAME)
def test_every_algorithm_has_a_help_url_into_the_user_guide(algorithm):
    url = algorithm().helpUrl()
    base, _, anchor = url.partition("#")
    assert base == f"{repository_url()}/blob/main/docs/user-guide.md"
    assert anchor in guide_anchors(), f"no section of docs/user-guide.md has anchor #{anchor}"


@pytest.mark.parametrize("name", sorted(ANALYSIS_TASKS))
def test_help_names_the_bundled_models_sensor_and_bands(msgfm_provider, bundled_models, name):
    metadata = read_model_metadata(bundled_models / f"{ANALYSIS_TASKS[name]}.onnx")
    help_text = QgsApplication.processingRegistry().algorithmById(f"msgfm:{name}").shortHelpString()
    assert metadata.model_name in help_text
    for spec in metadata.inputs:
        assert f"{spec.sensor} imagery with {len(spec.bands)} band" in help_text
        assert f"({', '.join(spec.bands)})" in help_text
    assert "msGFM > Finetune" in help_text


def test_a_layer_that_cannot_fit_the_bundled_model_gets_advice(
    run_algorithm, bundled_models, sample_data, tmp_path
):
    rgb = QgsRasterLayer(str(sample_data / "rgb/OSBS_029.tif"), "aerial_rgb_layer")
    metadata = read_model_metadata(bundled_models / "segmentation.onnx")
    spec = metadata.inputs[0]
    with pytest.raises(QgsProcessingException) as raised:
        run_algorithm("msgfm:segmentlandcover", {"INPUT": rgb, "OUTPUT": str(tmp_path / "x.tif")})
    message = str(raised.value)
    assert f"Layer 'aerial_rgb_layer' has 3 bands but the model's '{spec.sensor}' input" in message
    assert "so no choice of bands can feed it: the bundled model cannot use this layer" in message
    assert "msGFM > Finetune" in message and "embedding tools" in message
    assert list(tmp_path.iterdir()) == []


def vrt(files, out: Path, names) -> Path:
    from osgeo import gdal

    options = gdal.BuildVRTOptions(separate=True, resolution="highest")
    dataset = gdal.BuildVRT(str(out), [str(f) for f in files], options=options)
    for k, name in enumerate(names, start=1):
        dataset.GetRasterBand(k).SetDescription(name)
    dataset = None
    return out


def test_remove_clouds_preselects_the_s2_and_sar_layers(
    msgfm_provider, bundled_models, sample_data, tmp_path
):
    """The layers are matched to the bundled model's inputs (the tests' own)."""
    s2_folder = next((sample_data / "bigearthnet" / "S2").glob("*_87_48"))
    s1_folder = next((sample_data / "bigearthnet" / "S1").glob("*_87_48"))
    s2 = vrt([next(s2_folder.glob(f"*_{b}.tif")) for b in S2_BANDS], tmp_path / "a.vrt", S2_BANDS)
    s1 = vrt(
        [next(s1_folder.glob(f"*_{p}.tif")) for p in ("VV", "VH")], tmp_path / "b.vrt", ["VV", "VH"]
    )
    project = QgsProject.instance()
    # The SAR layer first, as in the report: QGIS alone would put it in both boxes.
    layers = [
        QgsRasterLayer(str(s1), "s1_87_48 layer"),
        QgsRasterLayer(str(sample_data / "rgb/rmnp-rgb.tif"), "rgb layer"),
        QgsRasterLayer(str(s2), "s2_87_48 layer"),
    ]
    try:
        for layer in layers:
            assert layer.isValid()
            project.addMapLayer(layer)
        algorithm = QgsApplication.processingRegistry().createAlgorithmById("msgfm:removeclouds")
        assert algorithm.parameterDefinition("S2").defaultValue() == layers[2].id()
        assert algorithm.parameterDefinition("SAR").defaultValue() == layers[0].id()
    finally:
        project.removeMapLayers([layer.id() for layer in layers])
    # Without layers in the project nothing is preselected (qgis_process, an empty project).
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("msgfm:removeclouds")
    assert algorithm.parameterDefinition("S2").defaultValue() is None


def test_bundled_embedding_models_are_read_again_only_when_the_folder_changes(
    monkeypatch, owned_bundled_models, tmp_path
):
    import shutil

    import msgfm_qgis.bundled_models as bundled

    monkeypatch.setattr(bundled, "models_dir", lambda: tmp_path)
    shutil.copy(owned_bundled_models / "embedding-dem.onnx", tmp_path)
    first = bundled.bundled_embedding_models()
    assert [m.sensor for m in first] == ["dem"]
    assert bundled.bundled_embedding_models() is first  # the dialog's help reads no file again
    shutil.copy(owned_bundled_models / "embedding-rgb.onnx", tmp_path)
    assert [m.sensor for m in bundled.bundled_embedding_models()] == ["dem", "rgb"]
