"""Input rasters: which sensor each one is, checking them against the model, reading them on one grid.

The first input is the reference grid: the output has its CRS, transform and size. Every other input
is read through a ``WarpedVRT`` onto that grid when its grid differs (bilinear for continuous values,
cubic for the MS of a pan-sharpening model, nearest for categorical rasters), so a SAR scene in another projection, or a coarse DEM, lines up
pixel for pixel with the reference. Areas an input does not cover read as nodata.
"""

from __future__ import annotations

import math
import re
import tempfile
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..export.schema import InputSpec, ModelMetadata
from ..product_levels import ProductLevel
from .errors import InputMismatchError, NoOverlapError, OutOfDomainError
from .georeferencing import describe_georeferencing, north_up_transform, raster_crs
from .scratch import Scratch

_BAND_LIST = re.compile(r"^\d+(,\d+)*$")
# Tasks whose models were trained on inputs upsampled by cubic convolution (pan-sharpening: the MS
# on the pan grid, backend/data/tasks/resampling.py): their other inputs are warped the same way,
# not bilinearly (which blurs the MS more and mixes neighbouring spectra, about 0.3 degrees of
# spectral angle on the SpaceNet-6 validation pair).
CUBIC_RESAMPLING_TASKS = ("pansharpening",)


@dataclass
class RasterInput:
    """One input raster of a run.

    Attributes:
        sensor: the model input it feeds (``s2``, ``sar``, ``rgb``, ``dsm``...).
        path: the raster file (anything GDAL opens).
        bands: 1-based band indexes to use, in the model's band order; all bands when None.
        categorical: resample with nearest neighbour instead of bilinear when the raster is warped;
            when None, rasters with a colour table count as categorical.
    """

    sensor: str
    path: Union[str, Path]
    bands: Optional[List[int]] = None
    categorical: Optional[bool] = None

    def describe(self) -> str:
        if not str(self.path):  # an optional input left out (AbsentInput)
            return f"input '{self.sensor}'"
        return f"input '{self.sensor}' ({Path(self.path).name})"


def parse_input(text: str) -> RasterInput:
    """Parse ``SENSOR=PATH[:b1,b2,...]`` (bands 1-based), as given to ``msgfm predict --input``.

    A colon followed by anything but a band list stays part of the path (``C:\\data\\s2.tif``).
    """
    sensor, sep, rest = text.partition("=")
    if not sep or not sensor.strip() or not rest:
        raise InputMismatchError(
            f"cannot read input {text!r}: write it as SENSOR=PATH or SENSOR=PATH:1,2,3 "
            "(e.g. s2=scene.tif:2,3,4)"
        )
    path, bands = rest, None
    head, colon, tail = rest.rpartition(":")
    if colon and head and _BAND_LIST.match(tail):
        path, bands = head, [int(b) for b in tail.split(",")]
    return RasterInput(sensor=sensor.strip(), path=path, bands=bands)


@dataclass(frozen=True)
class ReferenceGrid:
    """The grid every input is read on and every output is written on."""

    crs: Any  # rasterio.crs.CRS or None
    transform: Any  # affine.Affine
    width: int
    height: int
    nodata: Optional[float]
    dtype: str

    def cells(self, stride: int) -> Tuple[int, int]:
        """``(rows, columns)`` of the grid coarsened by ``stride``: whole cells only.

        A coarse output (embeddings, scene classes) stays inside its input: the last pixels that
        do not fill a whole cell are left out (a cell past the edge would claim ground the input
        does not cover). An input smaller than one cell still gets one.
        """
        return coarse_cells(self.height, stride), coarse_cells(self.width, stride)

    def leftover(self, stride: int) -> Tuple[int, int]:
        """Pixel rows and columns at the bottom and right edges that no whole cell covers."""
        rows, cols = self.cells(stride)
        return max(0, self.height - rows * stride), max(0, self.width - cols * stride)


def coarse_cells(pixels: int, stride: int) -> int:
    """Whole ``stride``-pixel cells along ``pixels`` (at least one)."""
    return max(1, pixels // stride)


class OpenedInput:
    """An input raster opened for reading strips of the reference grid."""

    def __init__(
        self,
        raster: RasterInput,
        spec: InputSpec,
        dataset: Any,
        reader: Any,
        alpha_band: Optional[int] = None,
    ):
        self.raster = raster
        self.spec = spec
        self.dataset = dataset  # kept alive while the reader (a WarpedVRT) uses it
        self.reader = reader
        self.alpha_band = alpha_band
        self.indexes = list(raster.bands) if raster.bands else list(range(1, dataset.count + 1))
        self.how = f"bands {','.join(map(str, self.indexes))}"  # how the bands were found
        self.out_of_domain = False  # the band order was doubtful and the run went on anyway
        self.product_level: Optional[ProductLevel] = None  # Sentinel-2 L1C/L2A, when it says
        self.mask_rule = _mask_rule(reader, self.indexes) if alpha_band is None else None
        self.read_dtype = _read_dtype(reader, self.indexes)

    absent = False  # a raster was given (see AbsentInput)

    def read_window(
        self, row_off: int, col_off: int, height: int, width: int
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Read a ``height`` x ``width`` window of the reference grid at (row_off, col_off).

        Returns:
            values (bands, height, width) float32 and valid (height, width) bool: a pixel is valid
            where every band is unmasked and finite.
        """
        values, valid = self.read_raw(row_off, col_off, height, width)
        return values.astype(np.float32, copy=False), valid

    def read_raw(
        self,
        row_off: int,
        col_off: int,
        height: int,
        width: int,
        scratch: Optional[Scratch] = None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """:meth:`read_window` with the values in :attr:`read_dtype` (the bands' own type where
        every value of it is exact in float32: no conversion pass, half the memory for 16-bit
        data), into ``scratch``'s arrays when given (then valid until its next read)."""
        from rasterio.windows import Window

        window = Window(col_off, row_off, width, height)
        scratch = scratch if scratch is not None else Scratch()
        values = scratch.take("values", (len(self.indexes), height, width), self.read_dtype)
        if len({self.reader.dtypes[i - 1] for i in self.indexes}) == 1:
            self.reader.read(self.indexes, window=window, out=values)
        else:  # bands of different types (e.g. a VRT stack): rasterio reads them one by one
            for k, index in enumerate(self.indexes):
                self.reader.read(index, window=window, out=values[k])
        rule = self.mask_rule
        valid = scratch.take("valid", (height, width), bool)
        if self.alpha_band is not None:
            np.greater(self.reader.read(self.alpha_band, window=window), 0, out=valid)
        elif rule is None:
            np.all(self.reader.read_masks(self.indexes, window=window) > 0, axis=0, out=valid)
        else:
            valid.fill(True)
        band_valid = scratch.take("band_valid", (height, width), bool)
        nodata = _in_type(rule.nodata, values.dtype) if rule is not None else None
        if nodata is not None:
            for band in values:  # what GDAL's nodata mask computes, without reading it
                np.not_equal(band, nodata, out=band_valid)
                valid &= band_valid
        if (rule is None or rule.may_be_nan) and values.dtype.kind == "f":
            for band in values:
                np.isfinite(band, out=band_valid)
                valid &= band_valid
        return values, valid


class AbsentInput:
    """A model input the run leaves out, fed as the model's training fed its samples without it.

    Only for an input the model marks ``optional`` (training had samples with no data at all for
    it, e.g. Sentinel-2 patches without a Sentinel-1 partner). Training normalised those to 0 in
    every band (the band means, :func:`backend.data.tasks.normalize_inputs`); the engine feeds
    exactly that, and every pixel counts as valid for it, as in training: validity comes from the
    inputs given.
    """

    absent = True
    dataset = None
    reader = None
    out_of_domain = False

    def __init__(self, spec: InputSpec):
        self.spec = spec
        self.raster = RasterInput(sensor=spec.sensor, path="")
        self.indexes: List[int] = []
        self.how = (
            f"not given: the model runs without it, fed as its training fed samples without "
            f"{spec.sensor} (every band at its mean, 0 after normalisation)"
        )

    read_dtype = np.dtype(np.float32)

    def read_window(
        self, row_off: int, col_off: int, height: int, width: int
    ) -> Tuple[np.ndarray, np.ndarray]:
        """The band means over the window (0 after normalisation), every pixel valid."""
        return self.read_raw(row_off, col_off, height, width)

    def read_raw(
        self,
        row_off: int,
        col_off: int,
        height: int,
        width: int,
        scratch: Optional[Scratch] = None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """:meth:`read_window`, into ``scratch``'s arrays when given."""
        scratch = scratch if scratch is not None else Scratch()
        values = scratch.take("values", (len(self.spec.bands), height, width), np.float32)
        values[...] = np.asarray(self.spec.mean, dtype=np.float32)[:, None, None]
        valid = scratch.take("valid", (height, width), bool)
        valid.fill(True)
        return values, valid


@dataclass(frozen=True)
class _MaskRule:
    """How to tell valid pixels from the values alone (instead of reading GDAL's mask bands)."""

    nodata: Optional[np.float32]  # the value that marks nodata in every band; None: none does
    may_be_nan: bool  # floating-point bands: NaN and infinities are invalid too


# Types whose every value is exact in float32, so comparing float32 values to a float32 nodata
# gives GDAL's own nodata mask.
_EXACT_IN_FLOAT32 = ("uint8", "int8", "uint16", "int16", "float32")


def _read_dtype(reader: Any, indexes: List[int]) -> np.dtype:
    """The type an input's windows are read in: its bands' own when they share one whose every
    value is exact in float32, else float32 (GDAL converts while reading)."""
    dtypes = {reader.dtypes[i - 1] for i in indexes}
    if len(dtypes) == 1 and next(iter(dtypes)) in _EXACT_IN_FLOAT32:
        return np.dtype(next(iter(dtypes)))
    return np.dtype(np.float32)


def _in_type(nodata: Optional[np.float32], dtype: np.dtype) -> Optional[Any]:
    """``nodata`` as a value of ``dtype``, or None when no value of that type equals it (then no
    pixel is nodata, as when comparing in float32)."""
    if nodata is None:
        return None
    if dtype.kind == "f":
        return dtype.type(nodata)
    info = np.iinfo(dtype)
    if not float(nodata).is_integer() or not info.min <= nodata <= info.max:
        return None
    return dtype.type(int(nodata))


def _mask_rule(reader: Any, indexes: List[int]) -> Optional[_MaskRule]:
    """A rule for :meth:`OpenedInput.read_window` when the bands' masks are only "all valid" or
    "nodata value" (one value for every band); None when GDAL's mask bands must be read (alpha,
    internal masks, per-band nodata, or types not exact in float32)."""
    from rasterio.enums import MaskFlags

    dtypes = {reader.dtypes[i - 1] for i in indexes}
    flags = {tuple(reader.mask_flag_enums[i - 1]) for i in indexes}
    if not dtypes <= set(_EXACT_IN_FLOAT32) or len(flags) != 1:
        return None
    may_be_nan = "float32" in dtypes
    (flag,) = flags
    if flag == (MaskFlags.all_valid,):
        return _MaskRule(None, may_be_nan)
    nodatas = {reader.nodatavals[i - 1] for i in indexes}
    if flag != (MaskFlags.nodata,) or len(nodatas) != 1:
        return None
    (nodata,) = nodatas
    if nodata is None:
        return None  # GDAL masks by a nodata rasterio cannot give (a signed byte's 200): ask GDAL
    if math.isnan(nodata):
        return _MaskRule(None, True)  # NaN nodata: the finite check finds it
    if "float32" not in dtypes and not float(nodata).is_integer():
        return None  # GDAL truncates such a nodata to the integer type: leave it to GDAL
    return _MaskRule(np.float32(nodata), may_be_nan)


def open_inputs(
    rasters: Sequence[RasterInput],
    metadata: ModelMetadata,
    stack: ExitStack,
    warn: Optional[Callable[[str], None]] = None,
    run_anyway: bool = False,
) -> Tuple[ReferenceGrid, List[OpenedInput]]:
    """Open, check and align ``rasters`` for ``metadata``'s model; files close with ``stack``.

    ``warn`` is told what looks wrong but does not stop the run (no CRS, no georeferencing).
    Each raster's bands are matched to its model input by :mod:`backend.sensor_resolver`: by name
    where the raster names them (in the model's order, whatever the file's), else as chosen or in
    file order; a raster of another sensor is refused. ``run_anyway`` lets unnamed bands in a
    doubtful order through (with a warning).

    Returns:
        The reference grid (first raster) and one opened input per model input, in the model's
        input order.

    Raises:
        InputMismatchError: a sensor is missing (and not optional), unknown or given twice; a
            raster cannot be opened, has the wrong number of bands or no georeferencing.
        An input the model marks ``optional`` and the caller leaves out is an
        :class:`AbsentInput`.
        NoOverlapError: a raster does not overlap the reference raster.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    if not rasters:
        raise InputMismatchError(
            f"no input raster given: the model takes {', '.join(metadata.sensors)}"
        )
    _check_sensors(rasters, metadata)
    opened = {}
    grid = None
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="msgfm-inputs-")))
    for raster in rasters:
        source = _harmonised(raster, workdir / raster.sensor)
        try:
            with warnings.catch_warnings():  # said in words by describe_georeferencing
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                dataset = stack.enter_context(rasterio.open(source.path))
        except Exception as exc:  # rasterio raises RasterioIOError and friends
            raise InputMismatchError(
                f"{raster.describe()}: cannot open {raster.path} ({exc}); choose a raster file "
                "GDAL can read"
            ) from None
        spec = metadata.input(raster.sensor)
        raster, how, doubtful = _resolve_bands(raster, source, spec, dataset, warn, run_anyway)
        how = "; ".join([how, *source.notes])
        if grid is None:
            describe_georeferencing(dataset, raster.describe(), warn)
        crs = raster_crs(dataset, raster.describe(), warn if grid is None else None)
        if grid is None:
            grid = ReferenceGrid(
                crs=crs,
                transform=north_up_transform(dataset),
                width=dataset.width,
                height=dataset.height,
                nodata=dataset.nodata,
                dtype=dataset.dtypes[0],
            )
            reader, alpha_band = dataset, None
        else:
            reader, alpha_band = _aligned_reader(
                raster, dataset, crs, grid, stack, cubic=metadata.task in CUBIC_RESAMPLING_TASKS
            )
        item = OpenedInput(raster, spec, dataset, reader, alpha_band)
        item.how, item.out_of_domain = how, doubtful
        if spec.sensor in metadata.product_levels:
            item.product_level = _product_level(raster, source, dataset)
        opened[raster.sensor] = item
    assert grid is not None
    return grid, [opened.get(spec.sensor) or AbsentInput(spec) for spec in metadata.inputs]


def _check_sensors(rasters: Sequence[RasterInput], metadata: ModelMetadata) -> None:
    expected = metadata.sensors
    given = [r.sensor for r in rasters]
    for raster in rasters:
        if raster.sensor not in expected:
            raise InputMismatchError(
                f"{raster.describe()}: the model '{metadata.model_name}' has no '{raster.sensor}' "
                f"input; it takes {', '.join(expected)}"
            )
        if given.count(raster.sensor) > 1:
            raise InputMismatchError(f"sensor '{raster.sensor}' is given more than once")
    missing = [s for s in expected if s not in given and s not in metadata.optional_sensors]
    if missing:
        raise InputMismatchError(missing_input_message(metadata, missing))


def missing_input_message(metadata: ModelMetadata, missing: Sequence[str]) -> str:
    """Why a run without ``missing`` inputs is refused, and what to do instead (with the advice
    of the model's task, :meth:`backend.tasks.Task.missing_input_advice`)."""
    from ..tasks import MODEL_TASKS

    text = (
        f"the model '{metadata.model_name}' also needs {', '.join(missing)} input(s): give one "
        f"raster per sensor ({', '.join(metadata.sensors)})"
    )
    task = MODEL_TASKS.get(metadata.task)
    advice = task.missing_input_advice(metadata.sensors, missing) if task else ""
    return f"{text}. {advice}" if advice else text


def _product_level(raster: RasterInput, source: Any, dataset: Any) -> Optional[ProductLevel]:
    """What the raster (as given, as harmonised, its metadata, bands and name) says its
    processing level is."""
    from ..product_levels import find_product_level

    return find_product_level(
        opened_as=[str(raster.path)],
        product=source.product,
        metadata=dataset.tags(),
        band_names=source.band_names,
        wavelengths_nm=source.wavelengths_nm,
        name_hints=[Path(str(raster.path)).name],
    )


def _harmonised(raster: RasterInput, workdir: Path) -> Any:
    """The raster as :func:`backend.products.harmonise` reads it: a product (SAFE, MTL folder...)
    or a folder of band files becomes one raster in the units its sensor's models expect."""
    from ..products import ProductError, harmonise

    try:
        return harmonise(raster.path, workdir)
    except ProductError as exc:
        raise InputMismatchError(f"{raster.describe()}: {exc}") from None
    except Exception as exc:  # rasterio/GDAL errors of an unreadable file
        raise InputMismatchError(
            f"{raster.describe()}: cannot open {raster.path} ({exc}); choose a raster file "
            "GDAL can read"
        ) from None


def _resolve_bands(
    raster: RasterInput,
    source: Any,
    spec: InputSpec,
    dataset: Any,
    warn: Optional[Callable[[str], None]],
    run_anyway: bool,
) -> Tuple[RasterInput, str, bool]:
    """The raster with its bands in the model's order, how they were found, and whether a doubt
    about their order was overridden by ``run_anyway``."""
    from dataclasses import replace

    from ..sensor_resolver import BandMatchError, BandOrderError, bands_for
    from .raster_facts import read_facts

    facts = read_facts(source, raster.describe(), name_hints=[Path(str(raster.path)).name])
    where = "the input's band list (SENSOR=PATH:1,2,...)"
    try:
        choice = bands_for(facts, spec.sensor, spec.bands, raster.bands or (), where)
    except BandOrderError as exc:
        if not run_anyway:
            raise OutOfDomainError(
                f"{exc}; or run anyway (out of the model's domain) if you are sure"
            ) from None
        if warn is not None:
            warn(f"{exc} (ran anyway: the result is out of the model's domain)")
        chosen = list(raster.bands) if raster.bands else list(range(1, dataset.count + 1))
        return replace(raster, bands=chosen), f"bands {','.join(map(str, chosen))}", True
    except BandMatchError as exc:
        raise InputMismatchError(str(exc)) from None
    return replace(raster, bands=choice.indexes), choice.how, False


def _same_grid(dataset: Any, crs: Any, grid: ReferenceGrid) -> bool:
    return (
        crs == grid.crs
        and dataset.width == grid.width
        and dataset.height == grid.height
        and north_up_transform(dataset).almost_equals(grid.transform)
    )


def _aligned_reader(
    raster: RasterInput,
    dataset: Any,
    crs: Any,
    grid: ReferenceGrid,
    stack: ExitStack,
    cubic: bool = False,
) -> Any:
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    if _same_grid(dataset, crs, grid):
        return dataset, None
    if crs is None or grid.crs is None:
        raise InputMismatchError(
            f"{raster.describe()}: it is on another grid than the first input and "
            f"{'it' if crs is None else 'the first input'} has no coordinate reference "
            "system; assign one (e.g. in QGIS or with gdal_edit.py -a_srs) or resample it onto "
            "the first input's grid"
        )
    _check_overlap(raster, dataset, crs, grid)
    categorical = raster.categorical
    if categorical is None:
        categorical = _has_colormap(dataset)
    resampling = Resampling.nearest if categorical else Resampling.bilinear
    if cubic and not categorical:
        resampling = Resampling.cubic
    warp = {
        "crs": grid.crs,
        "transform": grid.transform,
        "width": grid.width,
        "height": grid.height,
        "resampling": resampling,
    }
    if crs != dataset.crs:  # a CRS found in the file's attributes rather than by GDAL
        warp["src_crs"] = crs
    if dataset.nodata is not None:
        # Outside the source and at its nodata pixels the warped raster holds the nodata value.
        vrt = WarpedVRT(dataset, src_nodata=dataset.nodata, nodata=dataset.nodata, **warp)
        return stack.enter_context(vrt), None
    # Without nodata, an alpha band marks where the source covers the grid. rasterio reports such
    # a VRT's band masks as all valid, so the alpha band itself is read.
    vrt = stack.enter_context(WarpedVRT(dataset, add_alpha=True, **warp))
    return vrt, vrt.count


def _has_colormap(dataset: Any) -> bool:
    try:
        dataset.colormap(1)
    except ValueError:  # rasterio: "NULL color table"
        return False
    return True


def _check_overlap(raster: RasterInput, dataset: Any, crs: Any, grid: ReferenceGrid) -> None:
    from rasterio.transform import array_bounds
    from rasterio.warp import transform_bounds

    try:
        left, bottom, right, top = transform_bounds(crs, grid.crs, *dataset.bounds)
    except Exception as exc:  # the raster's extent cannot be expressed in the reference CRS
        raise NoOverlapError(
            f"{raster.describe()}: its extent cannot be transformed to the first input's CRS "
            f"({exc}); it does not cover the same area"
        ) from None
    ref_left, ref_bottom, ref_right, ref_top = array_bounds(grid.height, grid.width, grid.transform)
    if left >= ref_right or right <= ref_left or bottom >= ref_top or top <= ref_bottom:
        raise NoOverlapError(
            f"{raster.describe()}: it does not overlap the first input (the reference grid); "
            "choose rasters that cover the same area"
        )
