"""The output writer hands GDAL every block once, whole, and writes what the engine released."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from backend.inference.block_assembler import BlockAssembler
from backend.inference.block_layout import PENDING_ROW_BYTES, choose_layout
from backend.inference.engine import run_inference
from backend.inference.inputs import RasterInput, ReferenceGrid
from backend.inference.writers import GeoTiffWriter

from .conftest import read_raster

# Every output kind: (test model, bands, tile, output files). Real Landsat band with a nodata
# border, 489 x 443; chunks of ~100 px make windows that cross the block grid everywhere.
KINDS = [
    ("threshold", 1, 64),  # class: uint8 with colours and names
    ("scene", 1, 32),  # probability, one cell per window
    ("boxmean", 1, 64),  # reflectance, float32 at full resolution
    ("embedding", 3, 32),  # embedding at stride 4, six bands
]


class _Recorder:
    """What the engine gave each writer (windows of cells) and what each writer gave GDAL."""

    def __init__(self, monkeypatch):
        self.released: Dict[Path, np.ndarray] = {}  # the cells as the old writer wrote them
        self.blocks: Dict[Path, List[Tuple[int, int, int, int]]] = {}
        self.layouts: Dict[Path, object] = {}
        give, write = GeoTiffWriter.write_window, GeoTiffWriter._write_blocks
        recorder = self

        def write_window(writer, row, col, block):
            canvas = recorder.released.setdefault(
                writer.path, np.full((writer.count, writer.height, writer.width), np.nan)
            )
            _, h, w = block.shape
            assert np.isnan(canvas[:, row : row + h, col : col + w]).all(), "a cell came twice"
            canvas[:, row : row + h, col : col + w] = block.astype(writer.dtype)
            give(writer, row, col, block)

        def write_blocks(writer, row, col, cells):
            _, h, w = cells.shape
            recorder.blocks.setdefault(writer.path, []).append((row, col, h, w))
            recorder.layouts[writer.path] = writer.layout
            write(writer, row, col, cells)

        monkeypatch.setattr(GeoTiffWriter, "write_window", write_window)
        monkeypatch.setattr(GeoTiffWriter, "_write_blocks", write_blocks)


def _blocks_written(writes, layout, height, width) -> Dict[Tuple[int, int], int]:
    """How often each block of the grid was handed to GDAL; every write must be whole blocks."""
    bh, bw = layout.block_height, layout.block_width
    counts: Dict[Tuple[int, int], int] = {}
    for row, col, h, w in writes:
        assert row % bh == 0 and col % bw == 0, f"write at ({row}, {col}) is off the block grid"
        assert h % bh == 0 or row + h == height, f"write of {h} rows ends inside a block"
        assert w % bw == 0 or col + w == width, f"write of {w} columns ends inside a block"
        for block_row in range(row // bh, math.ceil((row + h) / bh)):
            for block_col in range(col // bw, math.ceil((col + w) / bw)):
                key = (block_row, block_col)
                counts[key] = counts.get(key, 0) + 1
    return counts


def _bytes_outside_blocks(path: Path) -> int:
    """File size less every block's compressed bytes (headers, tags; rewritten blocks' leftovers)."""
    from osgeo import gdal

    dataset = gdal.Open(str(path))
    band = dataset.GetRasterBand(1)
    block_w, block_h = band.GetBlockSize()
    blocks = 0
    for index in range(1, dataset.RasterCount + 1):
        band = dataset.GetRasterBand(index)
        for y in range(math.ceil(dataset.RasterYSize / block_h)):
            for x in range(math.ceil(dataset.RasterXSize / block_w)):
                blocks += int(band.GetMetadataItem(f"BLOCK_SIZE_{x}_{y}", "TIFF") or 0)
                if dataset.GetMetadataItem("INTERLEAVE", "IMAGE_STRUCTURE") == "PIXEL":
                    break
            else:
                continue
            break
    band = None
    dataset = None
    return path.stat().st_size - blocks


@pytest.mark.parametrize(("name", "bands", "tile"), KINDS)
def test_every_block_is_written_once_whole_with_the_released_values(
    model_factory, sample_data, tmp_path, monkeypatch, name, bands, tile
):
    source = sample_data / "landcover/lsat7_2000_10.tif"
    raster = tmp_path / "landsat.tif"
    with rasterio.open(source) as src:
        profile = src.profile | {"count": bands}
        values = src.read(1)
    with rasterio.open(raster, "w", **profile) as dst:
        dst.write(np.stack([values] * bands))
    model = model_factory(name, bands=bands, tile=tile, mean=40.0, std=20.0)
    recorder = _Recorder(monkeypatch)
    out = tmp_path / "out.tif"
    result = run_inference(model, [RasterInput("s2", raster)], out, overlap=0.25, chunk_width=100)
    for written in result.outputs:
        path = Path(written)
        expected = recorder.released[path]
        got = read_raster(path)
        assert got.shape == expected.shape
        # Byte for byte what the engine released (what the old writer wrote window by window).
        np.testing.assert_array_equal(got, expected.astype(got.dtype))
        layout = recorder.layouts[path]
        counts = _blocks_written(recorder.blocks[path], layout, *got.shape[1:])
        rows = math.ceil(got.shape[1] / layout.block_height)
        cols = math.ceil(got.shape[2] / layout.block_width)
        assert sorted(counts) == [(r, c) for r in range(rows) for c in range(cols)]
        assert set(counts.values()) == {1}
        # Nothing in the file but its blocks and a few KiB of header and tags: no block was
        # written twice (a recompressed block that grew would have been appended).
        assert _bytes_outside_blocks(path) < 16 * 2**10 + 16 * rows * cols * got.shape[0]


def test_many_float_bands_are_band_interleaved_in_flat_blocks():
    # An embedding of a 10980 px Sentinel-2 tile at stride 32: 344 cells wide, 240 bands.
    layout = choose_layout(344, 344, 240, "float32", zstd=True)
    assert layout.interleave == "band" and layout.compress == "zstd" and layout.predictor == 3
    assert layout.block_height * 512 * 240 * 4 > PENDING_ROW_BYTES  # at the 16-row minimum
    assert layout.block_height == 16
    # One float band of 2048 px (8 KiB a row): 64 rows fit; DEFLATE where GDAL has no ZSTD.
    layout = choose_layout(2048, 2048, 1, "float32", zstd=False)
    assert layout.compress == "deflate" and layout.predictor == 3
    assert layout.block_height == 64
    # Never a block larger than the raster (rounded up to 16).
    assert choose_layout(40, 24, 4, "float32").block_width == 48
    assert choose_layout(40, 24, 4, "float32").block_height == 32
    # A class raster: one uint8 band, DEFLATE without predictor (categorical data).
    layout = choose_layout(10980, 10980, 1, "uint8", zstd=True)
    assert (layout.interleave, layout.compress, layout.predictor) == ("pixel", "deflate", 1)
    assert layout.block_height == 32  # 11 KiB a row: 32 rows fit, 64 would not


def test_cells_written_twice_are_refused():
    writes = []
    blocks = BlockAssembler(40, 40, 1, "float32", -1.0, 16, 16, lambda *a: writes.append(a))
    blocks.add(0, 0, np.ones((1, 10, 10), dtype=np.float32))
    with pytest.raises(ValueError, match="written twice"):
        blocks.add(5, 5, np.ones((1, 10, 10), dtype=np.float32))
    blocks.add(10, 0, np.ones((1, 30, 40), dtype=np.float32))
    with pytest.raises(ValueError, match="written twice"):
        blocks.add(16, 16, np.ones((1, 16, 16), dtype=np.float32))


def test_a_waiting_block_holds_only_the_cells_that_arrived():
    # A tile row's release ends mid-block (72 rows on 16-row blocks): the blocks across the
    # width wait for their other rows. They hold those that came, not whole filled blocks.
    writes = []
    blocks = BlockAssembler(64, 40, 3, "float32", -1.0, 16, 16, lambda *a: writes.append(a))
    top = np.arange(3 * 24 * 64, dtype=np.float32).reshape(3, 24, 64)
    blocks.add(0, 0, top)
    assert [(row, col) for row, col, _ in writes] == [(0, 0)]  # the first row of blocks, whole
    held = sum(part.nbytes for block in blocks.pending.values() for _, part in block.parts)
    assert len(blocks.pending) == 4 and held == 3 * 8 * 64 * 4
    bottom = -np.arange(3 * 16 * 64, dtype=np.float32).reshape(3, 16, 64)
    blocks.add(24, 0, bottom)
    blocks.flush()
    image = np.full((3, 40, 64), np.nan, dtype=np.float32)
    for row, col, cells in writes:
        image[:, row : row + cells.shape[1], col : col + cells.shape[2]] = cells
    assert not blocks.pending
    np.testing.assert_array_equal(image, np.concatenate([top, bottom], axis=1))


def _peak_traced(height: int, width: int, bands: int, tmp_path: Path) -> int:
    grid = ReferenceGrid(
        crs=None,
        transform=from_origin(0, height, 1, 1),
        width=width,
        height=height,
        dtype="float32",
        nodata=None,
    )
    writer = GeoTiffWriter(
        tmp_path / f"out_{height}.tif", grid, 1, bands, "float32", math.nan, ["b"] * bands
    )
    # Strips as the engine releases them (tile 192, overlap 24: 168 rows, the first 144) and
    # chunks of 504 columns, off the block grid.
    strip = np.random.default_rng(0).random((bands, 168, 504), dtype=np.float32).round(2)
    tracemalloc.start()
    try:
        top = 0
        while top < height:
            h = min(144 if top == 0 else 168, height - top)
            left = 0
            while left < width:
                w = min(480 if left == 0 else 504, width - left)
                writer.write_window(top, left, strip[:, :h, :w])
                left += w
            top += h
        writer.finish()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_flat_in_the_raster_height(tmp_path):
    # 7 float bands (probabilities) 2000 px wide: the writer holds one row of blocks across the
    # width at most, whatever the height; writing window by window copies one strip at most.
    small = _peak_traced(500, 2000, 7, tmp_path)
    large = _peak_traced(2000, 2000, 7, tmp_path)
    strip = 7 * 168 * 504 * 4
    row_of_blocks = PENDING_ROW_BYTES + 7 * 16 * 2048 * 4
    assert large - small < 2**20
    assert large < row_of_blocks + strip + 2**20


def test_a_class_map_gets_overviews_of_its_classes(sample_data, tmp_path):
    # Classes of the real 600 x 600 PAN band (above / below its median), written as the engine
    # writes a class map: QGIS draws it zoomed out from a nearest-neighbour overview.
    source = sample_data / "pan_ms/pan1.tif"
    pan = read_raster(source, 1)
    classes = np.where(pan > np.median(pan), 7, 1).astype(np.uint8)
    with rasterio.open(source) as src:
        grid = ReferenceGrid(src.crs, src.transform, src.width, src.height, None, "uint16")
    out = tmp_path / "classes.tif"
    writer = GeoTiffWriter(
        out, grid, 1, 1, "uint8", 255.0, ["class"],
        colormap={1: (0, 0, 255, 255), 7: (255, 0, 0, 255)},
        category_names=["", "low", "", "", "", "", "", "high"],
    )  # fmt: skip
    for top in range(0, 600, 168):  # strips off the block grid, as the engine releases them
        writer.write_window(top, 0, classes[None, top : top + 168])
    writer.finish()
    with rasterio.open(out) as dst:
        assert dst.overviews(1) == [2]
        overview = dst.read(1, out_shape=(300, 300))
        np.testing.assert_array_equal(dst.read(1), classes)
    assert set(np.unique(overview)) == {1, 7}  # class values, never a blend of them
    np.testing.assert_array_equal(overview, classes[::2, ::2])
