"""A raster processed the way PUTvision's Deepness QGIS plugin processes one (segmentation).

Written for the benchmark after reading Deepness' source (``map_processor.py``,
``map_processor_segmentation.py``, ``tile_params.py``, ``processing_utils.py``,
``models/model_base.py``); none of its code is used. What it does, step by step:

- The processed extent is widened so that tiles of ``tile`` pixels stepping by ``stride =
  tile - overlap`` cover it exactly; pixels beyond the raster read as 0.
- Tiles are read one by one (Deepness asks the QGIS data provider for one block per band and
  tile), as height x width x bands, and collected into batches with ``np.array``.
- A batch is converted to float, standardised with the model's mean and standard deviation, and
  transposed to N x C x H x W for ONNX Runtime, opened with its default options except
  ``ORT_ENABLE_ALL`` graph optimisation.
- Each tile's class is the argmax of the first output; only the tile's centre is kept (half the
  overlap is cut at every inner edge, nothing at the raster's edges) and copied into one uint8
  image of the whole extent, held in memory.
- At the end the image is cropped to the raster. Deepness then median-filters it and turns it into
  polygons; here it is written as a GeoTIFF instead, like the engine's class raster.
"""

from __future__ import annotations

import math
from typing import Any, Dict

import numpy as np


def process_raster(model: str, raster: str, out: str, batch_size: int) -> Dict[str, Any]:
    import onnxruntime
    import rasterio
    from rasterio.windows import Window

    from backend.export.schema import read_model_metadata

    metadata = read_model_metadata(model)
    (spec,) = metadata.inputs
    tile = metadata.tile_size
    overlap = round(metadata.default_overlap * tile)
    stride = tile - overlap
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)
    tiles_run = 0
    with rasterio.open(raster) as source:
        width, height, profile = source.width, source.height, source.profile
        x_bins = max(1, math.ceil((width - tile) / stride) + 1)
        y_bins = max(1, math.ceil((height - tile) / stride) + 1)
        full = np.zeros(((y_bins - 1) * stride + tile, (x_bins - 1) * stride + tile), np.uint8)
        half = overlap // 2
        pending_tiles, pending_places = [], []

        def run_batch() -> None:
            nonlocal tiles_run
            batch = np.array(pending_tiles).astype(np.float32)  # N x H x W x C
            batch = (batch - mean) / std
            batch = batch.transpose(0, 3, 1, 2)  # N x C x H x W
            scores = session.run(None, {input_name: batch})[0]
            classes = np.argmax(scores, axis=1).astype(np.uint8)
            for result, (x_bin, y_bin) in zip(classes, pending_places):
                top = 0 if y_bin == 0 else half
                left = 0 if x_bin == 0 else half
                bottom = tile if y_bin == y_bins - 1 else tile - half
                right = tile if x_bin == x_bins - 1 else tile - half
                y0, x0 = y_bin * stride, x_bin * stride
                full[y0 + top : y0 + bottom, x0 + left : x0 + right] = result[
                    top:bottom, left:right
                ]
            tiles_run += len(pending_tiles)
            pending_tiles.clear()
            pending_places.clear()

        for y_bin in range(y_bins):
            for x_bin in range(x_bins):
                window = Window(x_bin * stride, y_bin * stride, tile, tile)
                image = source.read(window=window, boundless=True, fill_value=0)
                pending_tiles.append(image.transpose(1, 2, 0))  # H x W x C, as QGIS blocks give
                pending_places.append((x_bin, y_bin))
                if len(pending_tiles) >= batch_size:
                    run_batch()
        if pending_tiles:
            run_batch()
    profile.update(count=1, dtype="uint8", nodata=None, tiled=True, compress="deflate")
    with rasterio.open(out, "w", **profile) as destination:
        destination.write(full[:height, :width][None])
    return {"tiles": tiles_run}
