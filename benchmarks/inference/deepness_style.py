"""A raster processed the way PUTvision's Deepness QGIS plugin processes one.

Written for the benchmark after reading Deepness' source (``map_processor.py``,
``map_processor_segmentation.py``, ``map_processor_regression.py``, ``tile_params.py``,
``processing_utils.py``, ``models/model_base.py``, ``models/regressor.py``); none of its code is
used. What it does, step by step:

- The processed extent is widened so that tiles of ``tile`` pixels stepping by ``stride =
  tile - overlap`` cover it exactly; pixels beyond the raster read as 0.
- Tiles are read one by one (Deepness asks the QGIS data provider for one block per band and
  tile), as height x width x bands, and collected into batches with ``np.array``.
- A batch is converted to float, standardised with the model's mean and standard deviation, and
  transposed to N x C x H x W for ONNX Runtime, opened with its default options except
  ``ORT_ENABLE_ALL`` graph optimisation.
- Only each tile's centre is kept (half the overlap is cut at every inner edge, nothing at the
  raster's edges) and copied into one image of the whole extent, held in memory; at the end the
  image is cropped to the raster and written as a GeoTIFF.

Two of Deepness' model types:

- **segmentation** (:func:`process_raster`): each tile's class is the argmax of the first output,
  kept in a uint8 image. Deepness then median-filters it and turns it into polygons; here it is
  written as a GeoTIFF instead, like the engine's class raster.
- **regression** (:func:`process_raster_regression`), the type an image-to-image model such as
  cloud removal falls under: Deepness feeds its model the bands of ONE raster layer as its only
  input, so a model of several sensors is given one raster with their bands stacked, and each
  batch is split into the model's inputs by band count (the only step Deepness lacks: it feeds
  ``inputs[0]`` alone). Its regression keeps channel 0 of every output in a uint8 image and writes
  one single-band float32 file per output, scaled by one factor; here every channel of the output
  is kept, scaled by the model's per-band scale and offset, in a float32 image, and written as one
  uncompressed multi-band GeoTIFF, so that the result is the engine's reflectance (unclipped).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np


def _open(model: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class _Tiling:
    """Tiles of ``tile`` pixels stepping by ``stride`` over a ``width`` x ``height`` raster."""

    def __init__(self, width: int, height: int, tile: int, overlap: int):
        self.tile, self.stride, self.half = tile, tile - overlap, overlap // 2
        self.x_bins = max(1, math.ceil((width - tile) / self.stride) + 1)
        self.y_bins = max(1, math.ceil((height - tile) / self.stride) + 1)
        self.shape = (
            (self.y_bins - 1) * self.stride + tile,
            (self.x_bins - 1) * self.stride + tile,
        )

    def batches(self, source, batch_size: int) -> Iterator[Tuple[np.ndarray, List[Tuple]]]:
        """Batches of tiles (N x H x W x C, read one by one) and their (x_bin, y_bin)."""
        from rasterio.windows import Window

        tiles, places = [], []
        for y_bin in range(self.y_bins):
            for x_bin in range(self.x_bins):
                window = Window(x_bin * self.stride, y_bin * self.stride, self.tile, self.tile)
                image = source.read(window=window, boundless=True, fill_value=0)
                tiles.append(image.transpose(1, 2, 0))  # H x W x C, as QGIS blocks give
                places.append((x_bin, y_bin))
                if len(tiles) >= batch_size:
                    yield np.array(tiles), places
                    tiles, places = [], []
        if tiles:
            yield np.array(tiles), places

    def paste(self, full: np.ndarray, result: np.ndarray, x_bin: int, y_bin: int) -> None:
        """Copy the centre of one tile's ``result`` (... x H x W) into ``full``."""
        top = 0 if y_bin == 0 else self.half
        left = 0 if x_bin == 0 else self.half
        bottom = self.tile if y_bin == self.y_bins - 1 else self.tile - self.half
        right = self.tile if x_bin == self.x_bins - 1 else self.tile - self.half
        y0, x0 = y_bin * self.stride, x_bin * self.stride
        full[..., y0 + top : y0 + bottom, x0 + left : x0 + right] = result[
            ..., top:bottom, left:right
        ]


def _standardised(batch: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Deepness' preprocessing: to float, standardise, N x H x W x C -> N x C x H x W."""
    batch = batch.astype(np.float32)
    return ((batch - mean) / std).transpose(0, 3, 1, 2)


def process_raster(model: str, raster: str, out: str, batch_size: int) -> Dict[str, Any]:
    """Segmentation: the class image of ``raster`` (one input), written to ``out``."""
    import rasterio

    from backend.export.schema import read_model_metadata

    metadata = read_model_metadata(model)
    (spec,) = metadata.inputs
    session = _open(model)
    input_name = session.get_inputs()[0].name
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    tiles_run = 0
    with rasterio.open(raster) as source:
        width, height, profile = source.width, source.height, source.profile
        tiling = _Tiling(
            width, height, metadata.tile_size, round(metadata.default_overlap * metadata.tile_size)
        )
        full = np.zeros(tiling.shape, np.uint8)
        for batch, places in tiling.batches(source, batch_size):
            scores = session.run(None, {input_name: _standardised(batch, mean, std)})[0]
            classes = np.argmax(scores, axis=1).astype(np.uint8)
            for result, (x_bin, y_bin) in zip(classes, places):
                tiling.paste(full, result, x_bin, y_bin)
            tiles_run += len(batch)
    profile.update(count=1, dtype="uint8", nodata=None, tiled=True, compress="deflate")
    with rasterio.open(out, "w", **profile) as destination:
        destination.write(full[:height, :width][None])
    return {"tiles": tiles_run}


def process_raster_regression(
    model: str, stack: str, out: str, batch_size: int, overlap: Optional[float] = None
) -> Dict[str, Any]:
    """Regression: the first output of a model fed from one raster of stacked input bands.

    ``overlap``: between tiles, as a fraction of a tile (default: the model's).
    """
    import rasterio

    from backend.export.schema import read_model_metadata

    metadata = read_model_metadata(model)
    session = _open(model)
    names = [spec.name for spec in metadata.inputs]
    counts = np.cumsum([len(spec.bands) for spec in metadata.inputs])[:-1]
    mean = np.concatenate([np.asarray(spec.mean, np.float32) for spec in metadata.inputs])
    std = np.concatenate([np.asarray(spec.std, np.float32) for spec in metadata.inputs])
    output = metadata.outputs[0]
    bands = len(output.bands)
    # Deepness multiplies by one ``output_scaling``; this model's values need a scale and offset
    # per band (the same arithmetic, one band-wise array instead of a scalar).
    scale = np.asarray(output.scale or [1.0] * bands, np.float32)[:, None, None]
    offset = np.asarray(output.offset or [0.0] * bands, np.float32)[:, None, None]
    tiles_run = 0
    with rasterio.open(stack) as source:
        width, height, profile = source.width, source.height, source.profile
        fraction = metadata.default_overlap if overlap is None else overlap
        tiling = _Tiling(width, height, metadata.tile_size, round(fraction * metadata.tile_size))
        full = np.zeros((bands, *tiling.shape), np.float32)
        for batch, places in tiling.batches(source, batch_size):
            parts = np.split(_standardised(batch, mean, std), counts, axis=1)
            feed = {name: np.ascontiguousarray(part) for name, part in zip(names, parts)}
            result = session.run(None, feed)[0]
            result[np.isnan(result)] = 0
            result = result * scale + offset
            for tile_result, (x_bin, y_bin) in zip(result.astype(np.float32), places):
                tiling.paste(full, tile_result, x_bin, y_bin)
            tiles_run += len(batch)
    profile.update(count=bands, dtype="float32", nodata=None, tiled=False, compress=None)
    with rasterio.open(out, "w", **profile) as destination:
        destination.write(full[:, :height, :width])
    return {"tiles": tiles_run}
