"""Tiled inference end to end on real rasters: grid, seamless blending, nodata."""

from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from backend.inference.engine import run_inference
from backend.inference.inputs import RasterInput
from backend.products.separate import band_set

from .conftest import read_raster

# (sample file, bands) covering UTM, geographic, state plane; sizes from below a tile to several.
GRID_CASES = [
    ("landcover/lsat7_2000_10.tif", 1),  # 489 x 443, EPSG:32119, float32, nodata -99999
    ("rgb/rmnp-rgb.tif", 3),  # 485 x 373, EPSG:4326, uint8, nodata 255
    ("dem/dem.tif", 1),  # 400 x 400, EPSG:26915, float32, nodata -3.4e38
    ("pan_ms/pan1.tif", 1),  # 600 x 600, EPSG:32631, uint16, no nodata
    ("bigearthnet/S2/S2A_MSIL2A_20170613T101031_87_48/S2A_MSIL2A_20170613T101031_87_48_B01.tif", 1),
]


@pytest.mark.parametrize(("relative", "bands"), GRID_CASES)
def test_output_is_on_the_reference_grid(model_factory, sample_data, tmp_path, relative, bands):
    source = sample_data / relative
    if band_set(source):  # one band file of a set is read as the set: this test wants it alone
        source = Path(shutil.copy(source, tmp_path / "alone.tif"))
    model = model_factory("identity", bands=bands, tile=64)
    out = tmp_path / "out.tif"
    # The test model's statistics are arbitrary: this test is about the grid, not the domain.
    result = run_inference(model, [RasterInput("s2", source)], out, run_anyway=True)
    assert result.outputs == [str(out)]
    assert result.provider == "CPUExecutionProvider"
    with rasterio.open(source) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs
        assert dst.transform.almost_equals(src.transform)
        assert (dst.width, dst.height, dst.count) == (src.width, src.height, bands)
        if src.nodata is not None:
            assert dst.nodata == pytest.approx(src.nodata)
        else:
            assert np.isnan(dst.nodata)
        assert dst.profile["tiled"] and dst.compression is not None
        assert dst.descriptions == tuple(f"B{i + 1}" for i in range(bands))
        # Identity model: the values come back (the model sees them normalised, output rescaled).
        expected = src.read(masked=True).astype(np.float64)
        got = dst.read(masked=True).astype(np.float64)
        # A pixel is nodata in every output band when any input band is nodata there.
        invalid = np.broadcast_to(np.ma.getmaskarray(expected).any(axis=0), got.shape)
        np.testing.assert_array_equal(np.ma.getmaskarray(got), invalid)
        expected.mask = invalid
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(got - expected).max() <= 1e-6 * scale * 10


@pytest.mark.parametrize(("tile", "overlap"), [(32, 0.0), (32, 0.25), (64, 0.5), (48, 0.3)])
def test_identity_model_is_reproduced_through_tiling_and_blending(
    model_factory, sample_data, tmp_path, tile, overlap
):
    source = sample_data / "landcover/lsat7_2000_40.tif"
    model = model_factory("identity", bands=1, tile=tile)
    out = tmp_path / "out.tif"
    result = run_inference(model, [RasterInput("s2", source)], out, overlap=overlap, batch_size=3)
    assert result.tiles_run > 1
    expected = read_raster(source, 1)
    got = read_raster(out, 1)
    valid = expected != -99999
    # Values up to 255 in float32: blending several tiles must stay at float precision.
    assert np.abs(got[valid] - expected[valid]).max() < 1e-4
    assert (got[~valid] == -99999).all()


def box_mean(image: np.ndarray, size: int = 5) -> np.ndarray:
    """Reference 5 x 5 mean over the whole image, with the zero padding of the model's conv."""
    r = size // 2
    padded = np.pad(image.astype(np.float64), r)
    out = np.zeros_like(image, dtype=np.float64)
    for dy in range(size):
        for dx in range(size):
            out += padded[dy : dy + image.shape[0], dx : dx + image.shape[1]]
    return out / size**2


def test_receptive_field_model_shows_no_seams(model_factory, sample_data, tmp_path):
    # lidar DEM: a smooth, fully valid surface (380-411 m), 400 x 400; 64 px tiles.
    source = sample_data / "dem/dem.tif"
    mean, std = 400.0, 10.0
    model = model_factory("boxmean", bands=1, tile=64, mean=mean, std=std)
    image = read_raster(source, 1).astype(np.float64)
    # The model's conv pads normalised values with 0, i.e. raw values with the mean.
    expected = box_mean(image - mean) + mean
    interior = (slice(2, -2), slice(2, -2))  # the whole-image conv's own border differs

    def error(overlap: float) -> np.ndarray:
        out = tmp_path / f"out_{overlap}.tif"
        run_inference(model, [RasterInput("s2", source)], out, overlap=overlap)
        return np.abs(read_raster(out, 1).astype(np.float64) - expected)[interior]

    # Without overlap the conv sees padding at every tile border: seams of metres.
    seams = error(0.0)
    assert seams.max() > 5.0
    # Blended over a 16 px overlap, the tile-border predictions barely count: the largest error
    # drops by two orders of magnitude and the typical error is at float precision.
    blended = error(0.25)
    assert blended.max() < 0.02 * seams.max()
    assert np.median(blended) < 1e-3
    assert blended.mean() < 0.01


def test_nodata_in_is_nodata_out(model_factory, sample_data, tmp_path):
    source = sample_data / "landcover/lsat7_2000_10.tif"
    with rasterio.open(source) as src:
        mask = src.read_masks(1) == 0
    assert 0 < mask.sum() < mask.size  # the sample has a nodata border
    out = tmp_path / "out.tif"
    run_inference(model_factory("boxmean", bands=1, tile=64), [RasterInput("s2", source)], out)
    with rasterio.open(out) as dst:
        np.testing.assert_array_equal(dst.read_masks(1) == 0, mask)
        assert (dst.read(1)[mask] == -99999).all()


def test_all_nodata_input_gives_all_nodata_output(model_factory, sample_data, tmp_path):
    source = sample_data / "landcover/lsat7_2000_10.tif"
    empty = tmp_path / "empty.tif"
    with rasterio.open(source) as src:
        profile = src.profile
        with rasterio.open(empty, "w", **profile) as dst:
            dst.write(np.full((1, src.height, src.width), src.nodata, dtype=np.float32))
    out = tmp_path / "out.tif"
    result = run_inference(
        model_factory("identity", bands=1, tile=64), [RasterInput("s2", empty)], out
    )
    assert result.tiles_run == 0
    assert result.tiles_skipped == 110
    got = read_raster(out, 1)
    assert got.shape == (443, 489)
    assert (got == -99999).all()


def test_nan_pixels_count_as_nodata(model_factory, sample_data, tmp_path):
    # solaris SAR: 4-pol dB with NaN outside the footprint and no nodata value set.
    source = sample_data / "sar_rgb/sar_masked.tif"
    out = tmp_path / "out.tif"
    run_inference(
        model_factory("identity", bands=4, tile=64, mean=-15.0, std=5.0),
        [RasterInput("s2", source)],
        out,
    )
    expected = read_raster(source)
    got = read_raster(out)
    invalid = np.any(np.isnan(expected), axis=0)
    assert 0 < invalid.sum() < invalid.size
    assert np.isnan(got[:, invalid]).all()
    np.testing.assert_allclose(got[:, ~invalid], expected[:, ~invalid], atol=1e-4)


def test_progress_reaches_one(model_factory, sample_data, tmp_path):
    calls = []
    run_inference(
        model_factory("identity", bands=1, tile=64),
        [RasterInput("s2", sample_data / "dem/dem.tif")],
        tmp_path / "out.tif",
        batch_size=5,
        progress=lambda fraction, message: calls.append((fraction, message)),
    )
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert "tiles" in calls[-1][1]


@pytest.mark.parametrize("blocks", [None, 128])
def test_progress_counts_only_go_up_and_agree_with_the_summary(
    model_factory, sample_data, tmp_path, blocks
):
    # The Landsat band below its first 150 rows as nodata: rows of tiles with nothing to run follow
    # tiles still waiting for their batch of 7 (waiting tiles are not skipped ones). In its strips
    # the run visits one tile row a band; in 128 px blocks, bands of three tile rows.
    source = sample_data / "landcover/lsat7_2000_10.tif"
    half = tmp_path / "half.tif"
    with rasterio.open(source) as src:
        data = src.read(1)
        data[150:] = src.nodata
        profile = dict(src.profile)
        if blocks:
            profile.update(tiled=True, blockxsize=blocks, blockysize=blocks)
        with rasterio.open(half, "w", **profile) as dst:
            dst.write(data[None])
    calls = []
    result = run_inference(
        model_factory("identity", bands=1, tile=64),
        [RasterInput("s2", half)],
        tmp_path / "out.tif",
        batch_size=7,
        progress=lambda fraction, message: calls.append(message),
    )
    counts = [
        tuple(int(n) for n in re.match(r"(\d+)/\d+ tiles \((\d+) run, (\d+) skipped", m).groups())
        for m in calls
        if " tiles (" in m
    ]
    assert len(counts) > 3
    for column in range(3):  # done, run, skipped: each only goes up
        values = [c[column] for c in counts]
        assert values == sorted(values), (column, counts)
    assert all(run + skipped <= done for done, run, skipped in counts)
    assert 0 < result.tiles_skipped < result.tiles_run + result.tiles_skipped
    total = result.tiles_run + result.tiles_skipped
    assert counts[-1] == (total, result.tiles_run, result.tiles_skipped)


def test_memory_does_not_grow_with_raster_height(model_factory, sample_data, tmp_path):
    import tracemalloc

    # The lidar DEM stacked 2 and 8 times: same width, 4x the rows. The engine holds one row band
    # of tiles, so its numpy memory (traced by tracemalloc) must not grow with the height.
    source = sample_data / "dem/dem.tif"
    dem = read_raster(source, 1)
    model = model_factory("boxmean", bands=1, tile=64, mean=400.0, std=10.0)
    peaks = {}
    for copies in (2, 8):
        tall = tmp_path / f"dem_x{copies}.tif"
        with rasterio.open(source) as src:
            profile = src.profile | {"height": 400 * copies}
        with rasterio.open(tall, "w", **profile) as dst:
            dst.write(np.tile(dem, (copies, 1))[None])
        tracemalloc.start()
        run_inference(model, [RasterInput("s2", tall)], tmp_path / f"out_{copies}.tif")
        peaks[copies] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    whole_raster = 400 * 3200 * 4  # bytes of the tall raster as float32
    assert peaks[8] < 1.2 * peaks[2]
    assert peaks[8] < whole_raster


def _peak_traced_bytes(run) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_raster_width(model_factory, sample_data, tmp_path):
    # The lidar DEM side by side 4 and 16 times (1600 and 6400 px wide, 160 rows); 64 px tiles,
    # 16 px overlap. The engine reads and blends one 1024 px chunk of tile columns at a time; only
    # the 16 overlap rows shared with the next tile row (sums + weights, float32) span the width.
    source = sample_data / "dem/dem.tif"
    dem = read_raster(source, 1)[:160]
    model = model_factory("boxmean", bands=1, tile=64, mean=400.0, std=10.0)
    peaks = {}
    for copies in (4, 16):
        wide = tmp_path / f"dem_x{copies}.tif"
        with rasterio.open(source) as src:
            profile = src.profile | {"height": 160, "width": 400 * copies}
        with rasterio.open(wide, "w", **profile) as dst:
            dst.write(np.tile(dem, (1, copies))[None])
        out = tmp_path / f"out_{copies}.tif"
        run_inference(model, [RasterInput("s2", wide)], out)  # first-use allocations not counted
        peaks[copies] = _peak_traced_bytes(
            functools.partial(run_inference, model, [RasterInput("s2", wide)], out)
        )
    added_width = 400 * (16 - 4)
    overlap_rows = 2 * 16 * added_width * 4  # what the wider raster may add: the overlap band
    # Holding full-width rows of tiles (input, its padded copy, sums, weights) would add 4x a
    # float32 tile row: 64 * 4800 * 4 * 4 bytes = 4.9 MB.
    assert peaks[16] - peaks[4] < 2 * overlap_rows


@pytest.mark.parametrize(
    ("name", "bands", "tile", "overlap"),
    [("boxmean", 1, 64, 0.25), ("boxmean", 1, 48, 0.5), ("embedding", 1, 64, 0.25)],
)
def test_column_chunks_do_not_change_the_output(
    model_factory, sample_data, tmp_path, name, bands, tile, overlap
):
    # Landsat band with a nodata border, 489 x 443 px in strips of 4 rows (one tile row a band):
    # one chunk, chunks of ~100 px and one tile column per chunk must blend to the same raster
    # (seams and overlap rows carried exactly); so must the same pixels in 128 and 256 px blocks,
    # read in bands of several tile rows (of 3 or 6 at the 48 px step, 2 or 3 at 96).
    import backend.inference.engine as engine
    from backend.inference.tiling import MAX_BAND_ROWS

    source = sample_data / "landcover/lsat7_2000_10.tif"
    with rasterio.open(source) as src:
        assert src.block_shapes[0][0] == 4
        profile, pixels = src.profile, src.read()
    sources = {"strips": source}
    for side in (128, 256):
        sources[side] = tmp_path / f"blocks_{side}.tif"
        profile.update(tiled=True, blockxsize=side, blockysize=side)
        with rasterio.open(sources[side], "w", **profile) as dst:
            dst.write(pixels)
    model = model_factory(name, bands=bands, tile=tile)
    outputs, layouts = {}, {}
    plan = engine.plan_tiles

    def plan_tiles(*args, **kwargs):
        layouts[key] = plan(*args, **kwargs)
        return layouts[key]

    for key in [("strips", 10_000), ("strips", 100), ("strips", 1), (128, 100), (256, 1)]:
        out = tmp_path / f"out_{key[0]}_{key[1]}.tif"
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(engine, "plan_tiles", plan_tiles)
            run_inference(
                model,
                [RasterInput("s2", sources[key[0]])],
                out,
                overlap=overlap,
                chunk_width=key[1],
            )
        outputs[key] = read_raster(out)
    step = layouts["strips", 1].step
    rows = [min(MAX_BAND_ROWS, -(-side // step)) for side in (128, 256)]
    assert [layouts[key].band_rows for key in layouts] == [1, 1, 1, *rows]
    whole = outputs["strips", 10_000]
    valid = np.isfinite(whole) & (whole != -99999)
    assert valid.mean() > 0.5
    for got in outputs.values():
        np.testing.assert_array_equal(got[~valid], whole[~valid])
        np.testing.assert_allclose(got[valid], whole[valid], rtol=1e-5, atol=1e-5)


def test_chunks_read_ahead_never_overwrite_tiles_still_in_use(
    model_factory, sample_data, tmp_path, monkeypatch
):
    # Chunks are read into a few sets of arrays in turn (engine.CHUNK_SLOTS). With a slow model
    # the prefetch thread runs as far ahead as it may; if it reused a set too early, tiles of a
    # chunk still being batched would be overwritten by a later chunk's pixels.
    import contextlib
    import time

    import backend.inference.engine as engine

    source = sample_data / "landcover/lsat7_2000_10.tif"
    model = model_factory("boxmean", bands=1, tile=64)

    def run(out):
        # Chunks of two or three tile columns and batches of two: batches run mid-chunk.
        run_inference(
            model, [RasterInput("s2", source)], out, overlap=0.25, chunk_width=100, batch_size=2
        )
        return read_raster(out)

    @contextlib.contextmanager
    def in_turn(produce, depth=1):
        yield iter(produce())

    with monkeypatch.context() as patch:
        patch.setattr(engine, "prefetched", in_turn)
        expected = run(tmp_path / "in_turn.tif")
    run_batch = engine._run_batch

    def slow_model(*args, **kwargs):
        time.sleep(0.003)
        return run_batch(*args, **kwargs)

    monkeypatch.setattr(engine, "_run_batch", slow_model)
    np.testing.assert_array_equal(run(tmp_path / "ahead.tif"), expected)


def test_chunked_edges_are_reflected_like_the_whole_raster():
    from backend.inference.engine import _axis_read

    # 10 pixels wanted at [-3, 7) of a 5 px axis: read all 5, mirror 3 before and 2 after.
    read = _axis_read(-3, 10, 5)
    assert (read.start, read.count, read.pad, read.offset) == (0, 5, (3, 2), 0)
    # A window at the right edge reads further left than it starts, so the mirrored pixels are
    # the raster's own (as when the whole width is padded at once).
    read = _axis_read(98, 16, 100)
    assert (read.start, read.count, read.pad, read.offset) == (85, 15, (0, 14), 13)
    axis = np.arange(100)
    padded = np.pad(axis[read.start : read.start + read.count], read.pad, mode="reflect")
    window = padded[read.offset : read.offset + 16]
    np.testing.assert_array_equal(window, np.pad(axis, (0, 14), mode="reflect")[98:114])


@pytest.mark.parametrize("size", [1, 2, 3, 7, 96])
def test_windows_past_the_raster_are_mirrored_as_numpy_pads_them(size):
    # An edge window's pixels are gathered by mirrored indexes (no padded copy of the read): the
    # same pixels as numpy's reflect padding wherever a pad fits in one reflection, a one-pixel
    # axis repeats its pixel, and far past a tiny raster the mirror keeps going back and forth.
    from backend.inference.engine import _axis_read, _mirrored

    pixels = np.arange(size) * 10
    for length in (1, 5, 24, 96):
        for start in range(-length, size + 3):
            axis = _axis_read(start, length, size)
            read = pixels[axis.start : axis.start + axis.count]
            got = read[_mirrored(start, length, size) - axis.start]
            if max(axis.pad) <= max(size - 1, 0) or size == 1:
                mode = "reflect" if size > 1 else "edge"
                padded = np.pad(read, (axis.pad,), mode=mode)
                np.testing.assert_array_equal(got, padded[axis.offset : axis.offset + length])
            # Whatever the pad: raster pixels as they are where the window is on the raster, and
            # a mirror walks one pixel a step, turning at the edges without repeating them.
            inside = [x for x in range(start, start + length) if 0 <= x < size]
            np.testing.assert_array_equal(got[[x - start for x in inside]], pixels[inside])
            steps = np.abs(np.diff(got))
            assert np.all(steps == (10 if size > 1 else 0))
