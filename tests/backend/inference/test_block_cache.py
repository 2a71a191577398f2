"""GDAL's block cache is bounded during a run and given back afterwards, the option untouched."""

from __future__ import annotations

import pytest
from osgeo import gdal

from backend.inference.block_cache import ENGINE_BLOCK_CACHE_BYTES, current_limit
from backend.inference.engine import run_inference
from backend.inference.errors import InputMismatchError
from backend.inference.inputs import RasterInput


@pytest.fixture
def cache_limit():
    """Set GDAL's cache limit for one test and put the previous one back."""
    before = current_limit()
    yield gdal.SetCacheMax
    gdal.SetCacheMax(before)


def run_and_watch(model, source, out):
    seen = []
    run_inference(
        model,
        [RasterInput("s2", source)],
        out,
        batch_size=2,
        progress=lambda fraction, message: seen.append(current_limit()),
    )
    return seen


@pytest.mark.parametrize("user_limit", [512 * 2**20, 8 * 2**20])
def test_cache_is_bounded_during_the_run_and_restored(
    model_factory, sample_data, tmp_path, cache_limit, user_limit
):
    cache_limit(user_limit)
    gdal.SetConfigOption("GDAL_CACHEMAX", None)
    seen = run_and_watch(
        model_factory("identity", bands=1, tile=32),
        sample_data / "landcover/lsat7_2000_10.tif",
        tmp_path / "out.tif",
    )
    assert seen and set(seen) == {min(user_limit, ENGINE_BLOCK_CACHE_BYTES)}
    assert current_limit() == user_limit
    assert gdal.GetConfigOption("GDAL_CACHEMAX") is None  # the option is never set


def test_a_failed_run_restores_the_cache(model_factory, sample_data, tmp_path, cache_limit):
    cache_limit(512 * 2**20)
    with pytest.raises(InputMismatchError, match="band"):
        run_inference(
            model_factory("identity", bands=3, tile=32),  # 3 bands for a 1-band raster
            [RasterInput("s2", sample_data / "landcover/lsat7_2000_10.tif")],
            tmp_path / "out.tif",
        )
    assert current_limit() == 512 * 2**20
