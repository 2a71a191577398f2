"""Tiled, blended, nodata-aware raster inference of msGFM ONNX models (numpy, onnxruntime, rasterio).

Never imports torch. onnxruntime and rasterio are imported only when a run starts, so importing this
package (e.g. from the QGIS plugin at start-up) is cheap.

Public API::

    from backend.inference import CancelToken, RasterInput, run_inference

    result = run_inference("landcover.onnx", [RasterInput("landsat", "scene.tif")], "classes.tif",
                           progress=lambda fraction, message: ..., cancel=CancelToken())
"""

from __future__ import annotations

from .cancel import CancelToken
from .engine import InferenceResult, run_inference
from .errors import (
    DeviceUnavailableError,
    InferenceCancelledError,
    InferenceError,
    InputMismatchError,
    ModelError,
    ModelOutputError,
    NoOverlapError,
)
from .inputs import RasterInput, parse_input

__all__ = [
    "CancelToken",
    "DeviceUnavailableError",
    "InferenceCancelledError",
    "InferenceError",
    "InferenceResult",
    "InputMismatchError",
    "ModelError",
    "ModelOutputError",
    "NoOverlapError",
    "RasterInput",
    "parse_input",
    "run_inference",
]
