"""The maps on real scenes: S2 (bundled model), SAR and RGB (models exported from the encoder)."""

from __future__ import annotations

import json
from contextlib import ExitStack

import numpy as np
import pytest

from backend.embedtools.classifier_file import (
    ClassifierFile,
    ClassifierFileError,
    EncoderIdentity,
    class_infos,
)
from backend.embedtools.examples import Example, example_pixels
from backend.embedtools.features import PixelFeatures
from backend.embedtools.maps import (
    change_map,
    classification_map,
    cluster_map,
    fit_on_examples,
    training_set,
)
from backend.export.schema import read_model_metadata
from backend.inference import CancelToken, InferenceCancelledError, RasterInput, run_inference

from ...embedtools_scenes import make_scenes

BIGEARTHNET_S1 = (
    "bigearthnet/S1/S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48/"
    "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"
)


@pytest.fixture(scope="module")
def s2(sample_data, tmp_path_factory, embedding_model_folder):
    folder = tmp_path_factory.mktemp("s2_maps")
    scenes = make_scenes(sample_data, folder)
    model = embedding_model_folder / "embedding.onnx"
    run_inference(model, [RasterInput("s2", scenes.stack)], folder / "embedding.tif")
    return scenes, model, folder / "embedding.tif"


def point_examples(path):
    from osgeo import ogr

    source = ogr.Open(str(path))
    return [
        Example(f.GetField("cover"), str(f.GetFID()), json.loads(f.GetGeometryRef().ExportToJson()))
        for f in source.GetLayer(0)
    ]


def test_classifier_file_round_trip_gives_the_same_map(s2, tmp_path):
    import rasterio

    scenes, model, embedding = s2
    metadata = read_model_metadata(model)
    examples = point_examples(scenes.train_points)
    classes = class_infos([e.label for e in examples])
    index = {c.name: k for k, c in enumerate(classes)}
    with ExitStack() as stack:
        features = PixelFeatures(embedding, RasterInput("s2", scenes.stack), metadata, stack)
        training = training_set(features, examples, classes, lambda label: index[label])
        fitted = fit_on_examples(training, "auto", layout=features.layout)
        saved = ClassifierFile.from_fitted(
            fitted, EncoderIdentity.of(model, metadata), classes, features.layout, {}
        ).save(tmp_path / "classifier.json")
        loaded = ClassifierFile.load(saved)
        first = classification_map(features, fitted.predict_proba, classes, tmp_path / "a.tif")
        second = classification_map(features, loaded.predictor(), classes, tmp_path / "b.tif")
    with rasterio.open(first[0]) as a, rasterio.open(second[0]) as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert a.transform == features.grid.transform and a.crs == features.grid.crs
    assert loaded.check_encoder(model, metadata) == []
    assert loaded.encoder.channels == metadata.outputs[0].bands.__len__()


def test_classifier_file_refuses_other_files_and_encoders(s2, embedding_model_folder, tmp_path):
    _, model, _ = s2
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ClassifierFileError, match="is not an msGFM classifier file"):
        ClassifierFile.load(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ClassifierFileError, match="is not an msGFM classifier file"):
        ClassifierFile.load(tmp_path / "broken.json")
    s2_metadata = read_model_metadata(model)
    saved = ClassifierFile(EncoderIdentity.of(model, s2_metadata), [], None, "logistic", {}, [], [])
    sar = embedding_model_folder / "sar_embeddings.onnx"
    with pytest.raises(ClassifierFileError, match="choose that model"):
        saved.check_encoder(sar, read_model_metadata(sar))


def test_class_values_from_integer_and_text_fields():
    assert [(c.value, c.name) for c in class_infos([2, 1, 2])] == [(1, "1"), (2, "2")]
    assert [(c.value, c.name) for c in class_infos(["water", "crop"])] == [
        (1, "crop"),
        (2, "water"),
    ]
    assert [c.value for c in class_infos([1000, 7])] == [1, 2]  # out of 0-254: renumbered


def test_polygons_points_and_places_off_the_grid(s2, sample_data):
    from affine import Affine

    from backend.inference.inputs import ReferenceGrid

    grid = ReferenceGrid(None, Affine(10, 0, 1000, 0, -10, 2000), 50, 40, None, "uint16")
    square = {
        "type": "Polygon",
        "coordinates": [[[1100, 1900], [1200, 1900], [1200, 1800], [1100, 1800], [1100, 1900]]],
    }
    point = {"type": "Point", "coordinates": [1055.0, 1985.0]}
    outside = {"type": "Point", "coordinates": [0.0, 0.0]}
    found = example_pixels(
        [Example(1, "a", square), Example(1, "b", point), Example(1, "c", outside)], grid, 50
    )
    assert len(found[0].rows) == 50  # 100 pixel centres inside, 50 kept
    assert found[0].rows.min() >= 10 and found[0].rows.max() < 20
    assert (found[1].rows.tolist(), found[1].cols.tolist()) == ([1], [5])
    assert len(found[2].rows) == 0


def test_detect_change_on_identical_dates_is_zero_and_cancel_leaves_nothing(s2, tmp_path):
    import rasterio

    scenes, model, embedding = s2
    metadata = read_model_metadata(model)
    with ExitStack() as stack:
        before = PixelFeatures(embedding, RasterInput("s2", scenes.stack), metadata, stack, False)
        after = PixelFeatures(embedding, RasterInput("s2", scenes.stack), metadata, stack, False)
        written = change_map(before, after, tmp_path / "none.tif")
        token = CancelToken()
        token.cancel()
        with pytest.raises(InferenceCancelledError):
            change_map(before, after, tmp_path / "cancelled.tif", cancel=token)
    with rasterio.open(written[0]) as dataset:
        assert np.abs(dataset.read(1)).max() < 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["none.tif"]


@pytest.mark.parametrize(
    ("sensor", "files"),
    [
        ("sar", [f"{BIGEARTHNET_S1}_VV.tif", f"{BIGEARTHNET_S1}_VH.tif"]),
        ("rgb", ["rgb/OSBS_029.tif"]),
        ("dsm", ["dem/dem.tif"]),  # per-tile normalised: standardised by the scene here
    ],
)
def test_other_sensors_cluster_at_full_resolution(
    sensor, files, sample_data, embedding_model_folder, tmp_path
):
    """SAR (VV, VH), RGB and elevation through their own embedding models, exported from the
    encoder."""
    import rasterio
    from osgeo import gdal

    image = tmp_path / "image.vrt"
    gdal.BuildVRT(str(image), [str(sample_data / f) for f in files], separate=len(files) > 1)
    model = embedding_model_folder / f"{sensor}_embeddings.onnx"
    run_inference(model, [RasterInput(sensor, image)], tmp_path / "embedding.tif")
    metadata = read_model_metadata(model)
    with ExitStack() as stack:
        features = PixelFeatures(
            tmp_path / "embedding.tif", RasterInput(sensor, image), metadata, stack
        )
        written, classes = cluster_map(features, 3, tmp_path / "clusters.tif", seed=1)
        grid = features.grid
    with rasterio.open(written[0]) as dataset:
        clusters = dataset.read(1)
        assert (dataset.width, dataset.height) == (grid.width, grid.height)
        assert dataset.transform == grid.transform
    assert set(np.unique(clusters).tolist()) <= {0, 1, 2, 3}
    assert len(set(np.unique(clusters).tolist()) - {0}) == 3
    assert [c.name for c in classes] == ["cluster 1", "cluster 2", "cluster 3"]


def test_examples_off_the_raster_or_on_nodata_are_reported(s2, tmp_path):
    import rasterio

    scenes, model, embedding = s2
    metadata = read_model_metadata(model)
    with rasterio.open(scenes.stack) as source:
        data, profile = source.read(), source.profile
        transform = source.transform
    data[:, :100, :100] = 0  # a corner of nodata
    profile.update(driver="GTiff", nodata=0)
    holed = tmp_path / "holed.tif"
    with rasterio.open(holed, "w", **profile) as out:
        out.write(data)
    inside = transform * (50, 50)
    outside = transform * (-500, -500)
    valid = transform * (500, 500)
    examples = [
        Example("a", "on nodata", {"type": "Point", "coordinates": list(inside)}),
        Example("a", "outside", {"type": "Point", "coordinates": list(outside)}),
        Example("b", "fine", {"type": "Point", "coordinates": list(valid)}),
    ]
    classes = class_infos(["a", "b"])
    with ExitStack() as stack:
        features = PixelFeatures(embedding, RasterInput("s2", holed), metadata, stack)
        training = training_set(features, examples, classes, {"a": 0, "b": 1}.get)
    assert training.off_grid == ["outside"]
    assert training.on_nodata == ["on nodata"]
    assert training.pixels_per_class == {"a": 0, "b": 1}
