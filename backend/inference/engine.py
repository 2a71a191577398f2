"""Tiled, blended, nodata-aware inference of an msGFM ONNX model over georeferenced rasters.

One call, :func:`run_inference`, serves ``msgfm predict``, the subprocess worker and the QGIS plugin.
The run streams chunk by chunk: band by band (a few tile rows, as tall as the inputs' blocks) and,
within a band, one run of tile columns at a time (:mod:`.tiling`), it reads the chunk's window from
every input in one read (warped onto the reference grid), cuts it into overlapping tiles, runs them
through ONNX Runtime in batches, blends the predictions with a cosine weight and writes each
finished block out. Memory is set by the chunk's size; only a band of ``overlap`` rows spans the
raster width (see :mod:`.blending`), and GDAL's block cache is bounded for the run
(:mod:`.block_cache`).

Reading, masking and normalising the next chunks happen in a background thread
(:mod:`.prefetch`) while ONNX Runtime runs the current batch; blending, writing and every check of
the cancel token stay on the calling thread.
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..export.schema import ModelFileError, ModelMetadata, ModelMetadataError, read_model_metadata
from .block_cache import bounded_block_cache
from .cancel import CancelToken
from .errors import (
    InferenceCancelledError,
    InferenceError,
    InputMismatchError,
    ModelError,
    OutputNotPhysicalError,
)
from .heap import HeapTrimmer
from .input_checks import check_inputs, describe_all_nodata
from .inputs import OpenedInput, RasterInput, open_inputs
from .outputs import (
    DEFAULT_REFLECTANCE_DTYPE,
    OutputPlan,
    effective_stride,
    output_paths,
    reflectance_source,
)
from .prefetch import prefetched
from .preprocessing import normalize_mean_std, normalize_per_tile
from .scene_grid import write_scene_grid
from .scratch import Scratch
from .session import create_session
from .tiling import DEFAULT_CHUNK_WIDTH, TileLayout, overlap_pixels, plan_tiles

ProgressCallback = Callable[[float, str], None]

# Chunks read ahead of the model (:mod:`.prefetch`).
PREFETCH_DEPTH = 1
# Sets of arrays the chunks are read into, in turn. While the main thread works on chunk k, chunk
# k + 1 waits in the prefetch queue (PREFETCH_DEPTH of them) and the prefetch thread reads k + 2;
# it starts on k + 3, into k's arrays, only once the main thread has taken k + 1, by which time
# every tile of k has been copied into the batch (_place_tile).
CHUNK_SLOTS = PREFETCH_DEPTH + 2


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
        warnings: what looked wrong in the inputs or outputs without stopping the run.
        inputs: per input, which raster bands fed the model and how they were found.
        out_of_domain: the inputs looked out of the model's domain and it ran anyway.
        absent_inputs: the model inputs (sensors) the run left out, fed as the model's training
            fed its samples without them (only inputs the model marks optional).
    """

    outputs: List[str]
    provider: str
    tiles_run: int
    tiles_skipped: int
    seconds: float
    tile_size: int
    overlap: int
    batch_size: int
    warnings: List[str] = field(default_factory=list)
    inputs: List[str] = field(default_factory=list)
    out_of_domain: bool = False
    absent_inputs: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Tile:
    row_index: int  # index into TileLayout.row_origins
    col_index: int  # index into TileLayout.col_origins
    arrays: List[np.ndarray]  # one normalised (bands, T, T) array (often a view) per model input
    valid: np.ndarray  # (T, T) bool
    visited: int  # windows visited up to and including this one, in the run's order


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
    reflectance_dtype: str = DEFAULT_REFLECTANCE_DTYPE,
    scene_grid: Optional[Union[str, Path]] = None,
    chunk_width: int = DEFAULT_CHUNK_WIDTH,
    warn: Optional[Callable[[str], None]] = None,
    run_anyway: bool = False,
) -> InferenceResult:
    """Run the ONNX model at ``model_path`` over ``inputs`` and write its outputs as GeoTIFF.

    Args:
        model_path: an ``.onnx`` file with msGFM metadata.
        inputs: one raster per model input; the first defines the output grid.
        out_path: the GeoTIFF for the model's first output; further outputs are written beside it
            as ``<stem>_<output name>.tif``.
        tile_size: window side in pixels (default: the model's ``tile_size``).
        overlap: overlap between windows as a fraction of the tile (default: the model's).
        batch_size: tiles per ONNX Runtime call; the session is opened for this batch size
            (every shape in the graph known), and a short last batch runs whole.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        threads: ONNX Runtime intra-op threads (None: one per CPU core this process may use).
        progress: called as ``progress(fraction, message)`` after every batch.
        cancel: token to stop the run from another thread; a cancelled run raises
            :class:`InferenceCancelledError` and leaves no output file.
        reflectance_dtype: ``input`` (default) writes a reflectance output in the integer type of
            the input of its sensor, rounded (uint16 reflectance x 10000 for Sentinel-2, as its
            products store it; float32 when that input is float); ``float32`` keeps the
            fractions.
        scene_grid: a GeoPackage to write for a scene-classification model: one polygon per
            window with its most probable classes as fields (needs a per-window probability
            output).
        chunk_width: about how many pixels of width are read, run and blended at once by a band
            of one tile row (a band of several rows takes proportionally fewer); bounds the
            working memory whatever the raster size (the output does not depend on it).
        warn: called with each warning as it arises (they are also in the result's ``warnings``).
        run_anyway: run on inputs that look out of the model's domain (values far from its
            training statistics, unnamed bands in a doubtful order) instead of refusing them; the
            result then says ``out_of_domain``.

    Raises:
        InferenceError: (or a subclass) with a message naming the input or model at fault.
    """
    started = time.perf_counter()
    refuse_overwriting_inputs(out_path, inputs, scene_grid)
    cancel = cancel if cancel is not None else CancelToken()
    if batch_size < 1:
        raise InferenceError(f"batch size must be >= 1, not {batch_size}")
    try:
        session, provider = create_session(model_path, device, threads, batch_size)
        metadata = read_model_metadata(model_path, session=session)
    except (ModelFileError, ModelMetadataError) as exc:
        raise ModelError(f"model {Path(model_path).name}: {exc}") from None
    _refuse_unaccepted_modes(model_path, metadata, inputs)
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
    warnings: List[str] = []
    note = _collect(warnings, warn)

    with ExitStack() as stack:
        stack.enter_context(bounded_block_cache())  # flat memory whatever the raster size
        _stage(progress, f"model '{metadata.model_name}' opened on {provider}; reading the inputs")
        grid, opened = open_inputs(inputs, metadata, stack, note, run_anyway=run_anyway)
        out_of_domain = check_inputs(grid, opened, metadata, tile_size, note, run_anyway)
        out_of_domain = out_of_domain or any(item.out_of_domain for item in opened)
        try:
            layout = plan_tiles(
                grid.width,
                grid.height,
                tile_size,
                overlap_px,
                align,
                chunk_width,
                band_height=_block_height(opened),
            )
        except ValueError as exc:
            raise InferenceError(str(exc)) from None
        _stage(progress, f"running the model on {layout.n_tiles} tiles of {tile_size} px")
        plans: List[OutputPlan] = []
        try:
            for spec, path, stride in zip(
                metadata.outputs, output_paths(out_path, metadata.outputs), strides
            ):
                source = reflectance_source(spec, opened)
                plans.append(
                    OutputPlan(spec, stride, layout, grid, path, reflectance_dtype, source)
                )
            _say_leftover(progress, grid, sorted(set(strides)))
            tiles_run, tiles_skipped = _run_tiles(
                session, metadata, layout, opened, plans, batch_size, progress, cancel
            )
            for plan in plans:
                plan.flush()
            for plan in plans:
                problem = plan.physical_problem()
                if problem:
                    raise OutputNotPhysicalError(problem)
            written = [str(plan.finish()) for plan in plans]
            if out_of_domain:
                _mark_out_of_domain(written)
            absent = [item.spec.sensor for item in opened if item.absent]
            if absent:
                _mark_absent_inputs(written, absent)
            for plan in plans:
                plan.report(note)
            if tiles_run == 0:
                note(describe_all_nodata(opened))
        except BaseException:
            for plan in plans:
                plan.abort()
            raise
    if scene_grid and grid_output is not None:
        spec = metadata.outputs[grid_output]
        corners = [grid.transform * corner for corner in _corners(grid.width, grid.height)]
        written.append(
            str(
                write_scene_grid(
                    written[grid_output], scene_grid, list(spec.bands), footprint=corners
                )
            )
        )
    return InferenceResult(
        outputs=written,
        provider=provider,
        tiles_run=tiles_run,
        tiles_skipped=tiles_skipped,
        seconds=time.perf_counter() - started,
        tile_size=tile_size,
        overlap=overlap_px,
        batch_size=batch_size,
        warnings=warnings,
        inputs=[f"{item.raster.describe()}: {item.how}" for item in opened],
        out_of_domain=out_of_domain,
        absent_inputs=[item.spec.sensor for item in opened if item.absent],
    )


def _refuse_unaccepted_modes(
    model_path: Union[str, Path], metadata: ModelMetadata, inputs: Sequence[RasterInput]
) -> None:
    """Refuse leaving out an optional input where the model's acceptance record says that mode
    failed (:mod:`.accepted_modes`), before any work."""
    from .accepted_modes import refused_without

    given = {raster.sensor for raster in inputs}
    for sensor in metadata.optional_sensors:
        if sensor not in given:
            reason = refused_without(model_path, sensor)
            if reason:
                raise InputMismatchError(f"no {sensor} input given: {reason}")


def refuse_overwriting_inputs(
    out_path: Union[str, Path], inputs: Sequence[RasterInput], scene_grid: Any = None
) -> None:
    """Refuse an output that is (or resolves to) one of the input files: the run would replace the
    input with its own result."""
    outputs = [Path(out_path)] + ([Path(scene_grid)] if scene_grid else [])
    for output in outputs:
        target = output.resolve()
        for raster in inputs:
            source = Path(str(raster.path))
            if source.exists() and (
                source.resolve() == target or (output.exists() and _same_file(source, output))
            ):
                raise InputMismatchError(
                    f"the output {output} is the file of {raster.describe()}: writing it would "
                    "destroy the input. Choose another output file"
                )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _mark_out_of_domain(paths: Sequence[str]) -> None:
    """Write into each output's metadata that its inputs were out of the model's domain."""
    import rasterio

    for path in paths:
        with rasterio.open(path, "r+") as dataset:
            dataset.update_tags(
                MSGFM_OUT_OF_DOMAIN="the inputs were out of the model's domain (run anyway)"
            )


def _mark_absent_inputs(paths: Sequence[str], sensors: Sequence[str]) -> None:
    """Write into each output's metadata which model inputs the run left out."""
    import rasterio

    for path in paths:
        with rasterio.open(path, "r+") as dataset:
            dataset.update_tags(
                MSGFM_ABSENT_INPUTS=",".join(sensors),
                MSGFM_RUN_MODE=(
                    f"run without {', '.join(sensors)}: fed as the model's training fed its "
                    "samples without it (band means)"
                ),
            )


def _say_leftover(progress: Optional[ProgressCallback], grid: Any, strides: List[int]) -> None:
    """Say which edge pixels a coarse output leaves out (it has whole cells only)."""
    for stride in strides:
        rows, cols = grid.leftover(stride)
        if stride > 1 and (rows or cols):
            height, width = grid.cells(stride)
            _stage(
                progress,
                f"outputs of {stride} px cells have {height} x {width} whole cells inside the "
                f"input; the last {cols} px columns and {rows} px rows do not fill a cell and are "
                "left out",
            )


def _stage(progress: Optional[ProgressCallback], message: str) -> None:
    """Say what the run is doing before the first batch (progress 0)."""
    if progress is not None:
        progress(0.0, message)


def _collect(warnings: List[str], warn: Optional[Callable[[str], None]]) -> Callable[[str], None]:
    def note(message: str) -> None:
        warnings.append(message)
        if warn is not None:
            warn(message)

    return note


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
    # One contiguous array per model input, filled in place for every batch: ONNX Runtime reads
    # it without another copy, and no per-batch np.stack allocation is made. Zeros, not empty:
    # a session with its batch axis fixed runs a short last batch whole, and the unused places
    # must hold numbers (their results are dropped). A tile is copied into its place (and its
    # mask into ``masks``) as soon as it joins the batch, so no batch holds on to a chunk's
    # arrays, which the next chunks reuse (see _chunks).
    t = layout.tile_size
    feeds = {
        spec.name: np.zeros((batch_size, len(spec.bands), t, t), dtype=spec.dtype)
        for spec in metadata.inputs
    }
    masks = np.zeros((batch_size, t, t), dtype=bool)
    total = layout.n_tiles
    done = run = 0
    checked = False
    places: List[Tuple[int, int]] = []  # (row index, column index) of each tile in the batch

    def run_batch() -> None:
        nonlocal checked, run
        cancel.raise_if_cancelled()
        results = _run_batch(session, metadata, output_names, feeds, len(places), cancel)
        if not checked:
            for plan, result in zip(plans, results):
                plan.check_shape(result.shape)
            checked = True
        valids = list(masks[: len(places)])
        for plan, result in zip(plans, results):
            plan.add_batch(result, valids, places)
        run += len(places)
        places.clear()

    def report() -> None:
        # Tiles waiting in the batch are neither run nor skipped yet: counting them as skipped made
        # the count fall once their batch ran, and the 100 % line disagree with the summary.
        skipped = done - run - len(places)
        if progress is not None:
            message = f"{done}/{total} tiles ({run} run, {skipped} skipped as nodata)"
            progress(done / total, message)

    # The next chunks are read, masked and normalised in a background thread while the model runs.
    trimmer = HeapTrimmer()
    with prefetched(lambda: _chunks(layout, opened), depth=PREFETCH_DEPTH) as chunks:
        for chunk in chunks:
            cancel.raise_if_cancelled()  # long runs of skipped (nodata) chunks never reach a batch
            for tile in chunk.tiles:
                _place_tile(tile, len(places), metadata, feeds, masks)
                places.append((tile.row_index, tile.col_index))
                if len(places) == batch_size:
                    done = tile.visited
                    run_batch()
                    report()
            done = chunk.visited
            if not chunk.tiles:
                report()
            trimmer.check()  # resident memory flat whatever the raster size (see .heap)
    if places:
        run_batch()
    report()
    return run, total - run


def _place_tile(
    tile: _Tile,
    slot: int,
    metadata: ModelMetadata,
    feeds: Dict[str, np.ndarray],
    masks: np.ndarray,
) -> None:
    """Copy a tile's normalised arrays and mask into place ``slot`` of the batch."""
    for spec, array in zip(metadata.inputs, tile.arrays):
        feeds[spec.name][slot] = array
    masks[slot] = tile.valid


def _run_batch(
    session: Any,
    metadata: ModelMetadata,
    output_names: List[str],
    feeds: Dict[str, np.ndarray],
    n: int,
    cancel: CancelToken,
) -> List[np.ndarray]:
    """Run the first ``n`` tiles placed in ``feeds``."""
    import onnxruntime

    # A session whose batch axis is fixed (create_session with batch_size) takes whole batches;
    # otherwise a leading-axis slice of a C-contiguous array is contiguous and costs nothing.
    whole = all(isinstance(i.shape[0], int) for i in session.get_inputs() if i.shape)
    batch_feeds = {name: feed if whole else feed[:n] for name, feed in feeds.items()}
    run_options = onnxruntime.RunOptions()
    cancel.attach(run_options)
    try:
        return session.run(output_names, batch_feeds, run_options)
    except Exception as exc:  # onnxruntime raises private exception types
        if cancel.cancelled:
            raise InferenceCancelledError("inference cancelled") from None
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InferenceError(
            f"the model '{metadata.model_name}' failed on a batch of {n} tiles: {message}"
        ) from None
    finally:
        cancel.detach(run_options)


@dataclass
class _Chunk:
    """The tiles of one chunk (a band of tile rows, a run of tile columns), read and normalised,
    ready for the model."""

    visited: int  # windows visited up to and including this chunk's, in the run's order
    tiles: List[_Tile]  # the windows with valid pixels, row by row (all-nodata ones left out)


def _chunks(layout: TileLayout, opened: List[OpenedInput]) -> Iterator[_Chunk]:
    """Every chunk in the run's order (band, then column chunk), with its tiles cut out.

    Runs in the prefetch thread: it only reads the inputs and computes on its own arrays. Each
    chunk is one window of every input, read and normalised into one of :data:`CHUNK_SLOTS` sets
    of arrays, taken in turn (see :data:`CHUNK_SLOTS` for why the next chunks never overwrite one
    still in use).
    """
    t = layout.tile_size
    slots = [[Scratch() for _ in opened] for _ in range(CHUNK_SLOTS)]
    number = visited = 0
    for first_row, stop_row in layout.bands:
        top = layout.row_origins[first_row]
        height = layout.row_origins[stop_row - 1] + t - top
        for first, stop in layout.column_chunks:
            scratches = slots[number % CHUNK_SLOTS]
            number += 1
            left = layout.col_origins[first]
            width = layout.col_origins[stop - 1] + t - left
            windows = []
            valid = None
            for item, scratch in zip(opened, scratches):
                values, item_valid = _read_window(item, layout, top, left, height, width, scratch)
                windows.append(values)
                valid = (
                    item_valid if valid is None else np.logical_and(valid, item_valid, out=valid)
                )
            assert valid is not None
            tiles: List[_Tile] = []
            if valid.any():
                normalized = _normalized(opened, windows, valid, scratches)
                tiles = list(
                    _cut_tiles(
                        layout, windows, normalized, valid, (first_row, stop_row), (first, stop),
                        visited,
                    )
                )  # fmt: skip
            visited += (stop_row - first_row) * (stop - first)
            yield _Chunk(visited, tiles)


def _normalized(
    opened: List[OpenedInput],
    windows: List[np.ndarray],
    valid: np.ndarray,
    scratches: List[Scratch],
) -> List[Optional[np.ndarray]]:
    """Each window normalised by the model's mean and std (per pixel: once for the chunk, and
    tiles are views of it), or None for an input standardised per tile."""
    normalized: List[Optional[np.ndarray]] = []
    for item, values, scratch in zip(opened, windows, scratches):
        if item.spec.normalization == "per_tile":
            normalized.append(None)
            continue
        out = None if values.dtype == np.float32 else scratch.take("normalized", values.shape, "f4")
        normalized.append(normalize_mean_std(values, valid, item.spec, in_place=True, out=out))
    return normalized


def _cut_tiles(
    layout: TileLayout,
    windows: List[np.ndarray],
    normalized: List[Optional[np.ndarray]],
    valid: np.ndarray,
    rows: Tuple[int, int],
    cols: Tuple[int, int],
    visited: int,
) -> Iterator[_Tile]:
    """The tiles of a chunk with valid pixels, row by row; ``visited``: windows visited before."""
    t = layout.tile_size
    top, left = layout.row_origins[rows[0]], layout.col_origins[cols[0]]
    for row_index in range(*rows):
        r = layout.row_origins[row_index] - top
        for col_index in range(*cols):
            visited += 1
            c = layout.col_origins[col_index] - left
            tile_valid = valid[r : r + t, c : c + t]
            if not tile_valid.any():
                continue
            arrays = []
            for values, chunk_normalized in zip(windows, normalized):
                if chunk_normalized is None:
                    arrays.append(normalize_per_tile(values[:, r : r + t, c : c + t], tile_valid))
                else:
                    arrays.append(chunk_normalized[:, r : r + t, c : c + t])
            yield _Tile(row_index, col_index, arrays, tile_valid, visited)


def _block_height(opened: List[OpenedInput]) -> int:
    """The tallest block of the inputs' rasters, in rows: a band of tile rows that tall reads
    each block of them once (see :mod:`.tiling`)."""
    heights = [item.reader.block_shapes[0][0] for item in opened if not item.absent]
    return max(heights, default=1)


def _read_window(
    item: OpenedInput,
    layout: TileLayout,
    row: int,
    col: int,
    height: int,
    width: int,
    scratch: Optional[Scratch] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """A ``height`` x ``width`` window of one input at (row, col), reflected beyond the raster,
    in the input's read type (:attr:`OpenedInput.read_dtype`), in ``scratch``'s arrays when
    given."""
    rows = _axis_read(row, height, layout.height)
    cols = _axis_read(col, width, layout.width)
    values, valid = item.read_raw(rows.start, cols.start, rows.count, cols.count, scratch)
    if not any(rows.pad + cols.pad):
        r, c = rows.offset, cols.offset
        return values[:, r : r + height, c : c + width], valid[r : r + height, c : c + width]
    # A window reaching past the raster: its mirrored pixels are gathered straight into an array
    # of the window's own size (padding the whole read first made one several times larger at
    # the last tile row, which lies mostly past the raster).
    r = _mirrored(row, height, layout.height)[:, None] - rows.start
    c = _mirrored(col, width, layout.width)[None, :] - cols.start
    return values[:, r, c], valid[r, c]


@dataclass
class _AxisRead:
    start: int  # first pixel read from the raster
    count: int  # pixels read
    pad: Tuple[int, int]  # mirrored pixels added before and after the read
    offset: int  # where the wanted range starts in the padded read


def _axis_read(start: int, length: int, size: int) -> _AxisRead:
    """What to read along one axis of ``size`` pixels for pixels ``[start, start + length)``.

    Beyond the raster, pixels are mirrored (reflect, without repeating the edge). The read is
    widened to hold every pixel a mirrored one copies, so a window is padded exactly as the whole
    raster would be, whichever chunk it falls in.
    """
    stop = start + length
    first, last = max(start, 0), min(stop, size)
    if stop > size:
        first = min(first, max(0, 2 * size - 1 - stop))
    if start < 0:
        last = max(last, min(size, 1 - start))
    pad = (max(0, -start), max(0, stop - size))
    return _AxisRead(first, last - first, pad, start - (first - pad[0]))


def _mirrored(start: int, length: int, size: int) -> np.ndarray:
    """The raster pixels of ``[start, start + length)`` along an axis of ``size`` pixels, mirrored
    beyond the raster without repeating the edge pixel (``numpy.pad``'s ``reflect``, as often as
    the window needs); a one-pixel axis can only repeat its pixel."""
    if size == 1:
        return np.zeros(length, dtype=np.intp)
    period = 2 * (size - 1)
    index = np.abs(np.arange(start, start + length)) % period
    return np.minimum(index, period - index)


def _corners(width: int, height: int) -> List[Tuple[int, int]]:
    """The corners of a ``width`` x ``height`` raster in pixel coordinates, clockwise."""
    return [(0, 0), (width, 0), (width, height), (0, height)]


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
