"""Tiled, blended, nodata-aware inference of an msGFM ONNX model over georeferenced rasters.

One call, :func:`run_inference`, serves ``msgfm predict``, the subprocess worker and the QGIS plugin.
The run streams: it reads one row band of tiles from every input (warped onto the reference grid),
cuts it into overlapping tiles, runs them through ONNX Runtime in batches, blends the predictions with
a cosine weight and writes each finished row band out. Memory stays O(raster width x tile size).
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..export.schema import ModelFileError, ModelMetadata, ModelMetadataError, read_model_metadata
from .cancel import CancelToken
from .errors import InferenceCancelledError, InferenceError, ModelError
from .inputs import OpenedInput, RasterInput, open_inputs
from .outputs import OutputPlan, effective_stride, output_paths
from .preprocessing import normalize_mean_std, normalize_per_tile
from .scene_grid import write_scene_grid
from .session import create_session
from .tiling import TileLayout, overlap_pixels, plan_tiles

ProgressCallback = Callable[[float, str], None]


@dataclass
class InferenceResult:
    """What a run produced and how.

    Attributes:
        outputs: the written rasters, one per model output (the first is the requested path),
            then the scene grid GeoPackage when one was asked for.
        provider: the ONNX Runtime execution provider that ran the model.
        tiles_run, tiles_skipped: tiles sent to the model and tiles skipped as all-nodata.
        seconds: wall time of the run.
        tile_size, overlap: window side and overlap actually used, in pixels.
        batch_size: tiles per model call.
    """

    outputs: List[str]
    provider: str
    tiles_run: int
    tiles_skipped: int
    seconds: float
    tile_size: int
    overlap: int
    batch_size: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Tile:
    row: int
    col: int
    arrays: List[np.ndarray]  # one normalised (bands, T, T) array per model input
    valid: np.ndarray  # (T, T) bool


def run_inference(
    model_path: Union[str, Path],
    inputs: Sequence[RasterInput],
    out_path: Union[str, Path],
    *,
    tile_size: Optional[int] = None,
    overlap: Optional[float] = None,
    batch_size: int = 4,
    device: str = "auto",
    threads: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    reflectance_dtype: str = "float32",
    scene_grid: Optional[Union[str, Path]] = None,
) -> InferenceResult:
    """Run the ONNX model at ``model_path`` over ``inputs`` and write its outputs as GeoTIFF.

    Args:
        model_path: an ``.onnx`` file with msGFM metadata.
        inputs: one raster per model input; the first defines the output grid.
        out_path: the GeoTIFF for the model's first output; further outputs are written beside it
            as ``<stem>_<output name>.tif``.
        tile_size: window side in pixels (default: the model's ``tile_size``).
        overlap: overlap between windows as a fraction of the tile (default: the model's).
        batch_size: tiles per ONNX Runtime call.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        threads: ONNX Runtime intra-op threads (None: its default, all cores).
        progress: called as ``progress(fraction, message)`` after every batch.
        cancel: token to stop the run from another thread; a cancelled run raises
            :class:`InferenceCancelledError` and leaves no output file.
        reflectance_dtype: ``float32``, or ``input`` to write reflectance outputs in the reference
            raster's integer type (e.g. uint16 reflectance x 10000).
        scene_grid: a GeoPackage to write for a scene-classification model: one polygon per
            window with its most probable classes as fields (needs a per-window probability
            output).

    Raises:
        InferenceError: (or a subclass) with a message naming the input or model at fault.
    """
    started = time.perf_counter()
    cancel = cancel if cancel is not None else CancelToken()
    if batch_size < 1:
        raise InferenceError(f"batch size must be >= 1, not {batch_size}")
    try:
        session, provider = create_session(model_path, device, threads)
        metadata = read_model_metadata(model_path, session=session)
    except (ModelFileError, ModelMetadataError) as exc:
        raise ModelError(f"model {Path(model_path).name}: {exc}") from None
    tile_size = int(tile_size or metadata.tile_size)
    overlap = metadata.default_overlap if overlap is None else overlap
    _check_tile_size(session, metadata, tile_size)
    strides = [effective_stride(spec, metadata, tile_size) for spec in metadata.outputs]
    align = _lcm(strides)
    if tile_size % align:
        raise InferenceError(
            f"tile size {tile_size} must be a multiple of the model's output stride(s) {strides}"
        )
    try:
        overlap_px = overlap_pixels(tile_size, overlap, align)
    except ValueError as exc:
        raise InferenceError(str(exc)) from None
    out_path = Path(out_path)
    grid_output = _scene_grid_output(metadata, strides, tile_size) if scene_grid else None
    cancel.raise_if_cancelled()

    with ExitStack() as stack:
        grid, opened = open_inputs(inputs, metadata, stack)
        layout = plan_tiles(grid.width, grid.height, tile_size, overlap_px, align)
        plans: List[OutputPlan] = []
        try:
            for spec, path, stride in zip(
                metadata.outputs, output_paths(out_path, metadata.outputs), strides
            ):
                plans.append(OutputPlan(spec, stride, layout, grid, path, reflectance_dtype))
            tiles_run, tiles_skipped = _run_tiles(
                session, metadata, layout, opened, plans, batch_size, progress, cancel
            )
            written = [str(plan.finish()) for plan in plans]
        except BaseException:
            for plan in plans:
                plan.abort()
            raise
    if scene_grid and grid_output is not None:
        spec = metadata.outputs[grid_output]
        written.append(str(write_scene_grid(written[grid_output], scene_grid, list(spec.bands))))
    return InferenceResult(
        outputs=written,
        provider=provider,
        tiles_run=tiles_run,
        tiles_skipped=tiles_skipped,
        seconds=time.perf_counter() - started,
        tile_size=tile_size,
        overlap=overlap_px,
        batch_size=batch_size,
    )


def _run_tiles(
    session: Any,
    metadata: ModelMetadata,
    layout: TileLayout,
    opened: List[OpenedInput],
    plans: List[OutputPlan],
    batch_size: int,
    progress: Optional[ProgressCallback],
    cancel: CancelToken,
) -> Tuple[int, int]:
    output_names = [spec.name for spec in metadata.outputs]
    total = layout.n_tiles
    done = run = 0
    checked = False
    batch: List[_Tile] = []
    tiles = _tiles(layout, opened, cancel)
    while True:
        tile = next(tiles, StopIteration)
        if tile is not StopIteration:
            done += 1
            if tile is not None:
                batch.append(tile)
            if len(batch) < batch_size:
                continue
        if batch:
            cancel.raise_if_cancelled()
            results = _run_batch(session, metadata, output_names, batch, cancel)
            if not checked:
                for plan, result in zip(plans, results):
                    plan.check_shape(result.shape)
                checked = True
            for j, item in enumerate(batch):
                for plan, result in zip(plans, results):
                    plan.add(result[j], item.valid, item.row, item.col)
            run += len(batch)
            batch = []
        if progress is not None:
            progress(done / total, f"{done}/{total} tiles ({done - run} skipped as nodata)")
        if tile is StopIteration:
            break
    return run, total - run


def _run_batch(
    session: Any,
    metadata: ModelMetadata,
    output_names: List[str],
    batch: List[_Tile],
    cancel: CancelToken,
) -> List[np.ndarray]:
    import onnxruntime

    feeds = {
        spec.name: np.stack([tile.arrays[i] for tile in batch]).astype(spec.dtype, copy=False)
        for i, spec in enumerate(metadata.inputs)
    }
    run_options = onnxruntime.RunOptions()
    cancel.attach(run_options)
    try:
        return session.run(output_names, feeds, run_options)
    except Exception as exc:  # onnxruntime raises private exception types
        if cancel.cancelled:
            raise InferenceCancelledError("inference cancelled") from None
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InferenceError(
            f"the model '{metadata.model_name}' failed on a batch of {len(batch)} tiles: {message}"
        ) from None
    finally:
        cancel.detach(run_options)


def _tiles(
    layout: TileLayout, opened: List[OpenedInput], cancel: CancelToken
) -> Iterator[Optional[_Tile]]:
    """Yield every window in row order: a :class:`_Tile`, or None for an all-nodata window."""
    t = layout.tile_size
    left = layout.col_origins[0]
    for row in layout.row_origins:
        cancel.raise_if_cancelled()  # long runs of skipped (nodata) rows never reach a batch
        strips = []
        valid = None
        for item in opened:
            values, item_valid = _read_strip(item, layout, row)
            strips.append(values)
            valid = item_valid if valid is None else valid & item_valid
        assert valid is not None
        for col in layout.col_origins:
            c = col - left
            tile_valid = valid[:, c : c + t]
            if not tile_valid.any():
                yield None
                continue
            arrays = []
            for item, values in zip(opened, strips):
                tile_values = values[:, :, c : c + t]
                if item.spec.normalization == "per_tile":
                    arrays.append(normalize_per_tile(tile_values, tile_valid))
                else:
                    arrays.append(normalize_mean_std(tile_values, tile_valid, item.spec))
            yield _Tile(row=row, col=col, arrays=arrays, valid=tile_valid)


def _read_strip(item: OpenedInput, layout: TileLayout, row: int) -> Tuple[np.ndarray, np.ndarray]:
    """Rows ``[row, row + tile)`` of one input across the padded width, reflected at the borders."""
    first, last = max(row, 0), min(row + layout.tile_size, layout.height)
    values, valid = item.read_rows(first, last - first, layout.width)
    pad_rows = (first - row, row + layout.tile_size - last)
    pad_cols = (-layout.col_origins[0], layout.col_origins[-1] + layout.tile_size - layout.width)
    return (
        _reflect(values, ((0, 0), pad_rows, pad_cols)),
        _reflect(valid, (pad_rows, pad_cols)),
    )


def _reflect(array: np.ndarray, pad: Any) -> np.ndarray:
    if not any(before or after for before, after in pad):
        return array
    # 'reflect' needs at least two pixels along an axis; a one-pixel strip can only be repeated.
    mode = "reflect" if min(array.shape[-2:]) > 1 else "edge"
    return np.pad(array, pad, mode=mode)


def _scene_grid_output(metadata: ModelMetadata, strides: List[int], tile_size: int) -> int:
    for index, (spec, stride) in enumerate(zip(metadata.outputs, strides)):
        if spec.kind == "probability" and stride == tile_size:
            return index
    raise InferenceError(
        f"the model '{metadata.model_name}' has no per-window probability output, so it cannot "
        "write a scene grid; use a scene-classification model or leave the grid out"
    )


def _check_tile_size(session: Any, metadata: ModelMetadata, tile_size: int) -> None:
    if tile_size < 8:
        raise InferenceError(f"tile size must be at least 8 pixels, not {tile_size}")
    for graph_input in session.get_inputs():
        shape = graph_input.shape
        fixed = [d for d in shape[2:] if isinstance(d, int)]
        if len(shape) == 4 and fixed and any(d != tile_size for d in fixed):
            raise InferenceError(
                f"the model '{metadata.model_name}' takes fixed {fixed[0]} px tiles (input "
                f"'{graph_input.name}'); use tile size {fixed[0]}"
            )


def _lcm(values: List[int]) -> int:
    result = 1
    for value in values:
        result = result * value // math.gcd(result, value)
    return result
