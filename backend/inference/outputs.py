"""What each model output becomes on disk, by kind (class, probability, reflectance, embedding).

Contract with the exported model (one tensor per :class:`OutputSpec`):

- ``class``: ``(N, n_classes, t, t)`` per-class scores (logits or probabilities). Scores are blended
  across tiles, then the best class's ``value`` is written as uint8 with a colour table and names.
- ``probability``: ``(N, n_classes, t, t)`` probabilities (softmax/sigmoid inside the graph), written
  as float32, one band per class.
- ``reflectance``: ``(N, bands, t, t)``; written as ``raw * scale + offset`` (the sensor's units),
  rounded into the type of the input of the output's sensor when that is an integer type (uint16
  reflectance x 10000 for Sentinel-2, as the sensor's own products store it), or as float32 (on
  request, or when that input is float).
- ``embedding``: ``(N, features, t, t)`` float32 at the encoder's output resolution.

``t = tile_size / stride``. An output whose ``stride`` equals the model's ``tile_size`` is one value
per window (scene classification): it may also be ``(N, C)``, and it becomes a coarse raster with one
cell per window.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..export.schema import ModelMetadata, OutputSpec
from .blending import ChunkedBlendBuffer, best_channel, cell_fraction, weighted_mean
from .errors import InferenceError, ModelOutputError
from .inputs import ReferenceGrid
from .scratch import Scratch
from .tiling import TileLayout, blend_weight
from .writers import GeoTiffWriter

# How a reflectance output is stored: "input" (the type of the input of its sensor) or "float32".
REFLECTANCE_DTYPES = ("input", "float32")
DEFAULT_REFLECTANCE_DTYPE = "input"


def effective_stride(spec: OutputSpec, metadata: ModelMetadata, tile_size: int) -> int:
    """Output cell size in pixels: a per-window output follows the tile size actually used."""
    return tile_size if spec.stride >= metadata.tile_size else spec.stride


def output_paths(out_path: Path, specs: List[OutputSpec]) -> List[Path]:
    """The first output goes to ``out_path``, others beside it as ``<stem>_<output name><suffix>``."""
    paths = [out_path]
    for spec in specs[1:]:
        name = f"{out_path.stem}_{_file_name_part(spec.name)}{out_path.suffix or '.tif'}"
        paths.append(out_path.with_name(name))
    return paths


def _file_name_part(name: str) -> str:
    """An output's name as a safe part of a file name.

    The name comes from the model's metadata: path separators, control characters and the like
    must not send an output elsewhere or make an impossible file name.
    """
    safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("._")
    return safe or "output"


# More than this fraction of a reflectance output clipped to its physical range fails the run.
MAX_CLIPPED_FRACTION = 0.03


class OutputPlan:
    """Blending and writing of one model output over a run."""

    def __init__(
        self,
        spec: OutputSpec,
        stride: int,
        layout: TileLayout,
        grid: ReferenceGrid,
        path: Path,
        reflectance_dtype: str = DEFAULT_REFLECTANCE_DTYPE,
        source: Optional[Tuple[str, Optional[float]]] = None,
    ):
        self.spec = spec
        self.stride = stride
        self.cells = layout.tile_size // stride
        self.channels = len(spec.classes) if spec.kind == "class" else len(spec.bands)
        self.weight = blend_weight(self.cells, layout.overlap // stride)
        self.dtype, self.nodata = _dtype_and_nodata(spec, grid, reflectance_dtype, source)
        self.valid_range, self.range_source = physical_range(spec)
        self.clipped = self.written = 0  # values clipped to valid_range, values written
        # Per band, the lowest and highest value written (reflectance outputs): a constant band
        # is no image.
        self.band_low = np.full(len(spec.bands), np.inf)
        self.band_high = np.full(len(spec.bands), -np.inf)
        # One finished chunk's arrays, the same memory for every chunk (the writer copies what
        # it keeps before the next chunk).
        self._scratch = Scratch()
        self.buffer = ChunkedBlendBuffer(
            self.channels,
            self.cells,
            layout.overlap // stride,
            [row // stride for row in layout.row_origins],
            [col // stride for col in layout.col_origins],
            layout.column_chunks,
            self._write,
            band_rows=layout.band_rows,
        )
        self.writer = GeoTiffWriter(
            path,
            grid,
            stride,
            count=1 if spec.kind == "class" else len(spec.bands),
            dtype=self.dtype,
            nodata=self.nodata,
            descriptions=[spec.bands[0]] if spec.kind == "class" else list(spec.bands),
            colormap=_colormap(spec) if spec.kind == "class" else None,
            category_names=_category_names(spec) if spec.kind == "class" else None,
        )

    def check_shape(self, shape: Tuple[int, ...]) -> None:
        """Refuse a model output whose shape disagrees with the metadata."""
        expected = (self.channels, self.cells, self.cells)
        if tuple(shape[1:]) == expected or (self.cells == 1 and tuple(shape[1:]) == expected[:1]):
            return
        raise ModelOutputError(
            f"model output '{self.spec.name}' has shape {list(shape)} per batch but its metadata "
            f"(kind {self.spec.kind}, {self.channels} bands, stride {self.stride}) implies "
            f"[N, {self.channels}, {self.cells}, {self.cells}] for {self.cells * self.stride} px "
            "tiles; re-export the model or use its tile size"
        )

    def add_batch(
        self,
        predictions: np.ndarray,
        valids: Sequence[np.ndarray],
        places: Sequence[Tuple[int, int]],
    ) -> None:
        """Blend a batch of predictions (in scan order) with their pixel masks and places.

        The predictions are weighted in one vectorised multiply, in place when they are float32:
        the batch's result is consumed (the caller passes the session's own output). A tile with
        every pixel valid takes the blend weight as it is.
        """
        n = len(places)
        predictions = predictions[:n].reshape(n, self.channels, self.cells, self.cells)
        weights = np.empty((n, self.cells, self.cells), dtype=np.float32)
        for j, valid in enumerate(valids):
            if valid.all():
                weights[j] = self.weight
            else:
                np.multiply(self.weight, cell_fraction(valid, self.stride), out=weights[j])
        # No batch-sized array per batch for the C heap to hand out and take back.
        own = predictions.dtype == np.float32 and predictions.flags.writeable
        weighted = np.multiply(
            predictions, weights[:, None], out=predictions if own else None, dtype=np.float32
        )
        for j, (row_index, col_index) in enumerate(places):
            self.buffer.add_weighted(weighted[j], weights[j], row_index, col_index)

    def flush(self) -> None:
        """Blend and write every block still held (before :meth:`physical_problem`)."""
        self.buffer.release_all()

    def finish(self) -> Path:
        self.buffer.release_all()
        return self.writer.finish()

    def physical_problem(self) -> Optional[str]:
        """Why the written reflectance cannot be a physical image, or None: more than
        :data:`MAX_CLIPPED_FRACTION` of its values outside the physical range, or a band that
        holds one value everywhere."""
        if self.spec.kind != "reflectance" or not self.written:
            return None
        reasons = []
        if self.clipped > MAX_CLIPPED_FRACTION * self.written:
            low, high = self.valid_range
            reasons.append(
                f"{self.clipped / self.written:.1%} of its values were outside the physical range "
                f"{_bound(low)} to {_bound(high)} ({self.range_source})"
            )
        constant = [
            band
            for band, low, high in zip(self.spec.bands, self.band_low, self.band_high)
            if np.isfinite(low) and low == high
        ]
        if constant:
            reasons.append(f"band(s) {', '.join(constant)} hold one value everywhere")
        if not reasons:
            return None
        return (
            f"output '{self.spec.name}' of the model is not a physical image: "
            f"{'; '.join(reasons)}. The model does not work on these inputs (they are probably "
            "outside what it was trained on); nothing was written"
        )

    def abort(self) -> None:
        self.writer.abort()

    def report(self, note) -> None:
        """Tell ``note`` how many values were clipped to the output's physical range."""
        if not self.clipped:
            return
        low, high = self.valid_range
        bounds = f"{_bound(low)} to {_bound(high)}"
        note(
            f"output '{self.spec.name}': {self.clipped} of {self.written} values "
            f"({self.clipped / self.written:.1%}) were outside the physical range {bounds} "
            f"({self.range_source}) and were clipped to it"
        )

    def _write(self, first_row: int, first_col: int, sums: np.ndarray, weights: np.ndarray) -> None:
        # Released blocks may reach into the reflected margin: keep the cells on the raster.
        top, left = max(first_row, 0), max(first_col, 0)
        bottom = min(first_row + weights.shape[0], self.writer.height)
        right = min(first_col + weights.shape[1], self.writer.width)
        if bottom <= top or right <= left:
            return
        rows = slice(top - first_row, bottom - first_row)
        cols = slice(left - first_col, right - first_col)
        sums, weights = sums[:, rows, cols], weights[rows, cols]
        if self.spec.kind == "class":
            # The best class of the weighted mean is the best class of the weighted sums (the
            # weight is one positive number per cell): no division needed.
            covered = weights > 0
            values = np.array([c.value for c in self.spec.classes], dtype=np.uint8)
            out = values[best_channel(sums)][None]
            out[:, ~covered] = np.uint8(self.nodata)
            self.writer.write_window(top, left, out)
            return
        mean, covered = weighted_mean(
            sums, weights, out=self._scratch.take("mean", sums.shape, np.float32)
        )
        self.writer.write_window(top, left, self._finalize(mean, covered))

    def _clip(self, values: np.ndarray, covered: np.ndarray, low_high: Tuple) -> np.ndarray:
        """Clip ``values`` (a float array of this chunk's own) in place to the physical range,
        counting the covered values it changes; ``low_high`` are the covered values' per-band
        minimum and maximum: a chunk inside the range (the usual one) is neither compared nor
        clipped cell by cell."""
        self.written += int(covered.sum()) * values.shape[0]
        if self.valid_range is None:
            return values
        low, high = self.valid_range
        lowest, highest = low_high
        with np.errstate(invalid="ignore"):  # NaN from the model compares false: not counted
            if not (np.any(lowest < low) or np.any(highest > high)):
                return values
            if covered.all():  # no mask to combine (4 fewer chunk-sized arrays)
                self.clipped += np.count_nonzero(values < low) + np.count_nonzero(values > high)
            else:
                self.clipped += int((((values < low) | (values > high)) & covered[None]).sum())
        return np.clip(values, low, high, out=values)

    def _finalize(self, mean: np.ndarray, covered: np.ndarray) -> np.ndarray:
        spec = self.spec
        if spec.kind == "reflectance":
            # ``mean`` is this chunk's own contiguous array: scale, offset and clip work in place.
            out = mean.astype(np.float32, copy=False)
            if spec.scale:
                np.multiply(out, np.asarray(spec.scale, dtype=np.float32)[:, None, None], out=out)
            if spec.offset:
                np.add(out, np.asarray(spec.offset, dtype=np.float32)[:, None, None], out=out)
            # Per-band range of the covered values: a view of the whole chunk when every cell is
            # covered (a boolean index would copy it, twice).
            cells = out.reshape(len(out), -1) if covered.all() else out[:, covered]
            lowest = highest = np.full(len(out), np.nan)
            if cells.size:
                with np.errstate(invalid="ignore"):
                    lowest, highest = np.nanmin(cells, axis=1), np.nanmax(cells, axis=1)
            out = self._clip(out, covered, (lowest, highest))
            if cells.size:
                if self.valid_range is not None:  # the range of the clipped values
                    lowest, highest = (np.clip(v, *self.valid_range) for v in (lowest, highest))
                with np.errstate(invalid="ignore"):
                    np.minimum(self.band_low, lowest, out=self.band_low)
                    np.maximum(self.band_high, highest, out=self.band_high)
            if np.dtype(self.dtype).kind in "iu":
                out = self._integers(out, (lowest, highest))
        else:
            out = mean
        out = out.astype(self.dtype, copy=False)
        if not covered.all():
            np.copyto(out, out.dtype.type(self.nodata), where=~covered[None])
        return out

    def _integers(self, values: np.ndarray, low_high: Tuple) -> np.ndarray:
        """``values`` (float, this chunk's own) rounded to the nearest integer of the output type,
        in a reused scratch array; ``low_high`` is the per-band range of the covered values.

        A value that rounds to the nodata value would read as "no data": it becomes the next
        value inside the type (the way Sentinel-2 products keep 0 for nodata and 1 as their
        lowest reflectance); uncovered cells get nodata afterwards.
        """
        info = np.iinfo(self.dtype)
        np.rint(values, out=values)
        lowest, highest = (np.rint(v) for v in low_high)
        with np.errstate(invalid="ignore"):
            if np.any(lowest < info.min) or np.any(highest > info.max):
                np.clip(values, info.min, info.max, out=values)
            hits_nodata = bool(np.any((lowest <= self.nodata) & (self.nodata <= highest)))
        out = self._scratch.take("integers", values.shape, self.dtype)
        np.copyto(out, values, casting="unsafe")
        if hits_nodata:
            nodata = out.dtype.type(self.nodata)
            nearest = nodata + 1 if nodata < info.max else nodata - 1
            np.copyto(out, out.dtype.type(nearest), where=out == nodata)
        return out


def reflectance_source(spec: OutputSpec, opened: Sequence[Any]) -> Tuple[str, Optional[float]]:
    """The data type and nodata value of the input a reflectance output is in the units of: the
    input of the output's sensor (the multispectral input of a pan-sharpening model, the
    Sentinel-2 input of a cloud-removal one).

    float32 when the units are not an input's: an output that names no sensor (or one no input
    has), an input standardised per tile (whose units the model never saw), bands of different
    types or nodata values.
    """
    for item in opened:
        if item.absent or item.spec.sensor != spec.sensor:
            continue
        if item.spec.normalization == "per_tile":
            return "float32", None
        reader = item.reader
        dtypes = {reader.dtypes[i - 1] for i in item.indexes}
        nodatas = {reader.nodatavals[i - 1] for i in item.indexes}
        if len(dtypes) != 1 or len(nodatas) != 1:
            return "float32", None
        return dtypes.pop(), nodatas.pop()
    return "float32", None


def physical_range(spec: OutputSpec) -> Tuple[Optional[Tuple[float, float]], str]:
    """The range a reflectance output's values must stay in, and where it comes from.

    The model's metadata declares it (``valid_range``); models exported before that key existed
    get their sensor's physical range from its units in the sensor registry (reflectance and
    digital numbers cannot be negative; 8-bit data stops at 255; reflectance x 10000 at 10000).
    """
    if spec.kind != "reflectance":
        return None, ""
    if spec.valid_range is not None:
        low, high = spec.valid_range
        return (
            -math.inf if low is None else float(low),
            math.inf if high is None else float(high),
        ), "declared by the model"
    if not spec.sensor:
        return None, ""
    from ..sensors import SENSORS

    sensor = SENSORS.get(spec.sensor)
    if sensor is None or sensor.units not in UNIT_RANGES:
        return None, ""
    return UNIT_RANGES[sensor.units], f"{sensor.name} {sensor.units}"


# Physical ranges by the units the sensor registry gives (``Sensor.units``).
UNIT_RANGES = {
    "reflectance x 10000": (0.0, 10000.0),
    "DN 0-255": (0.0, 255.0),
    "DN": (0.0, math.inf),
}


def _bound(value: float) -> str:
    return f"{value:g}" if math.isfinite(value) else ("-inf" if value < 0 else "+inf")


def _dtype_and_nodata(
    spec: OutputSpec,
    grid: ReferenceGrid,
    reflectance_dtype: str,
    source: Optional[Tuple[str, Optional[float]]] = None,
) -> Tuple[str, float]:
    """The output's data type and a nodata value that cannot be mistaken for a prediction.

    The reference raster's nodata is kept when the output type can hold it and no value of the
    output can equal it (for class rasters: no class uses it; for float outputs of a known range:
    it lies outside that range, see :func:`_float_nodata`); otherwise NaN for float outputs and an
    unused value for class rasters. A
    reflectance output in its input's integer type (``source``: that input's type and nodata, see
    :func:`reflectance_source`; the reference raster's when not given) keeps that input's nodata,
    or the type's lowest value when it has none.
    """
    if reflectance_dtype not in REFLECTANCE_DTYPES:
        raise InferenceError(f"reflectance dtype must be one of {REFLECTANCE_DTYPES}")
    ref_nodata = grid.nodata
    if spec.kind == "class":
        used = {c.value for c in spec.classes}
        if _fits(ref_nodata, "uint8") and int(ref_nodata) not in used:
            return "uint8", float(ref_nodata)
        free = [v for v in range(255, -1, -1) if v not in used]
        return "uint8", float(free[0])
    if spec.kind == "reflectance" and reflectance_dtype == "input":
        dtype, nodata = source if source is not None else (grid.dtype, ref_nodata)
        if np.dtype(dtype).kind in "iu":
            if _fits(nodata, dtype):
                return dtype, float(nodata)
            return dtype, float(np.iinfo(dtype).min)
    return "float32", _float_nodata(ref_nodata, _value_range(spec))


def _value_range(spec: OutputSpec) -> Optional[Tuple[float, float]]:
    """The values a float output can hold, where its kind says: probabilities 0 to 1, reflectance
    its physical range (it is clipped to it); None for outputs of no known range (embeddings)."""
    if spec.kind == "probability":
        return 0.0, 1.0
    if spec.kind == "reflectance":
        return physical_range(spec)[0]
    return None


def _float_nodata(ref_nodata: Optional[float], possible: Optional[Tuple[float, float]]) -> float:
    """The reference raster's nodata when float32 holds it and it lies outside the values the
    output can hold (``possible``; an output of no known range keeps it); otherwise NaN. A
    Sentinel-2 raster's nodata 0 is a reflectance a cloud-free output may hold (clipped to 0) and a
    probability a class may get: kept, those values would read as "no data"."""
    if not _fits(ref_nodata, "float32"):
        return math.nan
    assert ref_nodata is not None
    if possible is not None and not math.isnan(ref_nodata):
        low, high = possible
        if low <= ref_nodata <= high:
            return math.nan
    return float(ref_nodata)


def _fits(value: Optional[float], dtype: str) -> bool:
    if value is None or not math.isfinite(value):
        return dtype == "float32" and value is not None
    if np.dtype(dtype).kind == "f":
        return abs(value) <= float(np.finfo(dtype).max)
    info = np.iinfo(dtype)
    return float(value).is_integer() and info.min <= value <= info.max


def _colormap(spec: OutputSpec) -> Dict[int, Tuple[int, int, int, int]]:
    colors = {}
    for c in spec.classes:
        rgb = int(c.color[1:], 16)
        colors[c.value] = ((rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255, 255)
    return colors


def _category_names(spec: OutputSpec) -> List[str]:
    names = [""] * (max(c.value for c in spec.classes) + 1)
    for c in spec.classes:
        names[c.value] = c.name
    return names
