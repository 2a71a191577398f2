"""A Sentinel-2 product loaded in QGIS through GDAL's SENTINEL2 driver: one resolution's subdataset
is the layer, the whole product is what runs (tests/data/sentinel2_safe builds the SAFE from real
BigEarthNet bands)."""

from __future__ import annotations

import os

import pytest
from qgis.core import QgsProcessingException, QgsRasterLayer

from msgfm_qgis import model_checks

from ...data.sentinel2_safe.data import generate

ALG = "msgfm:removeclouds"


@pytest.fixture(scope="module")
def l2a_product(sample_data, tmp_path_factory):
    made = generate(tmp_path_factory.mktemp("s2"), sample_data)
    return made["l2a_0509"]


def subdataset_layer(safe, resolution: str) -> QgsRasterLayer:
    from osgeo import gdal

    names = [name for name, _ in gdal.Open(str(safe / "MTD_MSIL2A.xml")).GetSubDatasets()]
    source = next(name for name in names if f":{resolution}:" in name)
    layer = QgsRasterLayer(source, f"S2 {resolution}", "gdal")
    assert layer.isValid(), source
    return layer


def test_a_20m_subdataset_layer_is_read_as_the_whole_product(l2a_product):
    layer = subdataset_layer(l2a_product, "20m")
    assert layer.bandCount() < 12  # the layer shows one resolution's bands only
    facts = model_checks.layer_facts(layer)
    names = [band.name for band in facts.bands]
    assert names[:4] == ["B01", "B02", "B03", "B04"] and "B8A" in names and len(names) >= 12
    assert facts.sensor == "s2"


def test_band_numbers_of_a_subdataset_are_refused_before_any_work(
    run_algorithm, cloud_removal_model, l2a_product, s1_stack, tmp_path
):
    layer = subdataset_layer(l2a_product, "20m")
    out = tmp_path / "clear.tif"
    with pytest.raises(QgsProcessingException, match="one subdataset of a Sentinel-2 product") as e:
        run_algorithm(
            ALG,
            {
                "S2": layer,
                "S2_BANDS": [1, 2, 3],
                "SAR": str(s1_stack),
                "MODEL": str(cloud_removal_model),
                "OUTPUT": str(out),
            },
        )
    # Why (one subdataset of the product) and what the run reads instead (the whole product).
    assert "(20m)" in str(e.value) and "Leave" in str(e.value)
    assert f"has {layer.bandCount()} band(s) but is read as " in str(e.value)
    assert not out.exists()


def test_facts_are_read_once_while_the_file_is_unchanged(l2a_product, monkeypatch):
    from backend.inference import raster_facts

    reads = []
    real = raster_facts.read_facts
    monkeypatch.setattr(
        raster_facts, "read_facts", lambda *a, **k: reads.append(1) or real(*a, **k)
    )
    layer = subdataset_layer(l2a_product, "10m")
    first = model_checks.layer_facts(layer, "S2")
    second = model_checks.layer_facts(layer, "Sentinel-2 layer")
    assert len(reads) == 1 and first.bands == second.bands
    assert second.label == "Layer 'S2 10m' (Sentinel-2 layer)"
    metadata = l2a_product / "MTD_MSIL2A.xml"
    stat = metadata.stat()
    os.utime(metadata, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    model_checks.layer_facts(layer, "S2")
    assert len(reads) == 2  # the product changed: read again


def test_band_numbers_of_one_band_file_of_a_set_are_refused(
    run_algorithm, cloud_removal_model, sample_data, s1_stack, tmp_path
):
    # BigEarthNet's B04 file beside its 11 siblings: the run reads the 12-band set.
    band = next((sample_data / "bigearthnet" / "S2").glob("*_87_48/*_B04.tif"))
    layer = QgsRasterLayer(str(band), "B04", "gdal")
    out = tmp_path / "clear.tif"
    with pytest.raises(QgsProcessingException, match="is read as 12 bands") as error:
        run_algorithm(
            ALG,
            {
                "S2": layer,
                "S2_BANDS": [1],
                "SAR": str(s1_stack),
                "MODEL": str(cloud_removal_model),
                "OUTPUT": str(out),
            },
        )
    assert "one band file of a set" in str(error.value)  # why it is read as 12 bands
    assert "Leave" in str(error.value) and not out.exists()
