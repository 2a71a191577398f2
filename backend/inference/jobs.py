"""Worker jobs of the inference engine: ``predict`` and ``info``.

Each job is a function ``(params, progress, cancel) -> dict`` (JSON-serialisable result) registered
with the subprocess worker (:mod:`backend.worker`). ``params`` comes from the request as JSON.
"""

from __future__ import annotations

import importlib.util
import platform
from typing import Any, Callable, Dict, List, Mapping

from .cancel import CancelToken
from .errors import InferenceError
from .inputs import RasterInput, parse_input

Progress = Callable[[float, str], None]


def predict(params: Mapping[str, Any], progress: Progress, cancel: CancelToken) -> Dict[str, Any]:
    """Run :func:`run_inference` from request parameters.

    Params:
        model (str), inputs (list of ``"SENSOR=PATH[:bands]"`` strings or ``{"sensor", "path",
        "bands", "categorical"}`` objects), out (str); optional tile_size, overlap, batch_size,
        device, threads, reflectance_dtype, scene_grid, run_anyway.
    """
    from .engine import run_inference
    from .outputs import DEFAULT_REFLECTANCE_DTYPE

    _require(params, "model", "out", "inputs")
    result = run_inference(
        params["model"],
        _raster_inputs(params["inputs"]),
        params["out"],
        tile_size=params.get("tile_size"),
        overlap=params.get("overlap"),
        batch_size=int(params.get("batch_size", 4)),
        device=params.get("device", "auto"),
        threads=params.get("threads"),
        progress=progress,
        cancel=cancel,
        reflectance_dtype=params.get("reflectance_dtype", DEFAULT_REFLECTANCE_DTYPE),
        scene_grid=params.get("scene_grid"),
        run_anyway=bool(params.get("run_anyway", False)),
    )
    return result.to_dict()


def info(params: Mapping[str, Any], progress: Progress, cancel: CancelToken) -> Dict[str, Any]:
    """Describe this worker's environment and, with a ``model`` param, the model's metadata.

    The plugin uses it to check that a chosen Python can run a job before starting one.
    """
    import numpy
    import onnxruntime

    from .. import __version__

    answer: Dict[str, Any] = {
        "msgfm_version": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "onnxruntime": onnxruntime.__version__,
        "providers": onnxruntime.get_available_providers(),
        # Whether training jobs could run here, without importing torch (slow) to find out.
        "torch_installed": importlib.util.find_spec("torch") is not None,
    }
    try:
        import rasterio

        answer["rasterio"] = rasterio.__version__
        answer["gdal"] = rasterio.__gdal_version__
    except ImportError:
        answer["rasterio"] = None
    if params.get("model"):
        from ..export.schema import ModelFileError, ModelMetadataError, read_model_metadata

        try:
            answer["model"] = read_model_metadata(params["model"]).to_dict()
        except (ModelFileError, ModelMetadataError) as exc:
            raise InferenceError(f"model {params['model']}: {exc}") from None
    return answer


def _require(params: Mapping[str, Any], *keys: str) -> None:
    missing = [key for key in keys if key not in params]
    if missing:
        raise InferenceError(f"the request lacks parameter(s) {', '.join(missing)}")


def _raster_inputs(items: Any) -> List[RasterInput]:
    if not isinstance(items, list) or not items:
        raise InferenceError("'inputs' must be a non-empty list of SENSOR=PATH[:bands] entries")
    rasters = []
    for item in items:
        if isinstance(item, str):
            rasters.append(parse_input(item))
        elif isinstance(item, dict) and "sensor" in item and "path" in item:
            rasters.append(
                RasterInput(
                    sensor=str(item["sensor"]),
                    path=str(item["path"]),
                    bands=[int(b) for b in item["bands"]] if item.get("bands") else None,
                    categorical=item.get("categorical"),
                )
            )
        else:
            raise InferenceError(
                f"input {item!r}: give 'SENSOR=PATH[:bands]' or an object with sensor and path"
            )
    return rasters
