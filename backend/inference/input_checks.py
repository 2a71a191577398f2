"""Checks that input rasters look like what the model was trained on, before any tile is run.

A run on garbage input otherwise succeeds and writes a plausible-looking raster. Each check here
reads at most a few small windows of every input (so it costs little on any raster size) and
either warns, saying what looks wrong and what to do, or, where the result would be meaningless,
refuses the run before any tile is run:

- the same band chosen twice, or bands whose pixels are identical (one band repeated);
- an 8-bit raster for a model trained on values far above 255 (Sentinel-2 exported as Byte) and
  values far outside the range the model was trained on (wrong units, offset or scaling): refused
  with :class:`OutOfDomainError` unless the run is told to run anyway, then a warning;
- a Sentinel-2 input known to be of another processing level than the model was trained on (L1C,
  top of atmosphere, for a model of L2A surface reflectance): refused like values out of range;
  an input whose level nothing says runs;
- a second input covering only part of the first (the rest of the output is nodata): its covered
  fraction is reported;
- a raster smaller than one tile (mirrored padding; an error when it is a tiny fraction of a tile).

Band names and order are matched before, by :mod:`backend.sensor_resolver`.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..export.schema import InputSpec, ModelMetadata
from ..sensor_resolver import far_bands
from .errors import InputMismatchError, OutOfDomainError
from .inputs import OpenedInput, ReferenceGrid

Warn = Callable[[str], None]

SAMPLE_WINDOW = 128  # side of each sampled window, in reference pixels
SAMPLE_GRID = 3  # windows per axis
SAMPLE_STEP = 2  # every second pixel of a window, along both axes
FULL_COVERAGE = 0.995  # a second input covering less than this fraction of the first is reported
MIN_TILE_FRACTION = 1 / 16  # rasters smaller than this fraction of a tile's area are refused


def check_inputs(
    grid: ReferenceGrid,
    opened: Sequence[OpenedInput],
    metadata: ModelMetadata,
    tile_size: int,
    warn: Warn,
    run_anyway: bool = False,
) -> bool:
    """Run every check on the opened inputs; warnings go to ``warn``.

    Returns:
        Whether an input was out of the model's domain and ``run_anyway`` let it through.

    Raises:
        InputMismatchError: the raster is so small that the model cannot see a scene in it.
        OutOfDomainError: values far from the model's training statistics (unless
            ``run_anyway``).
    """
    refusals: List[str] = []
    opened = [item for item in opened if not item.absent]  # left out: nothing to check
    # The reference raster is read directly (others only when they share its grid).
    reference = next(item for item in opened if item.reader is item.dataset)
    _check_size(grid, reference, tile_size, warn)
    for item in opened:
        _check_product_level(item, metadata, refusals.append)
        _check_chosen_bands(item, warn)
        if item.reader is not item.dataset:
            _check_coverage(item, reference, grid, warn)
    samples = _sample(grid, opened)
    for item, (values, valid) in zip(opened, samples):
        if not valid.any():
            continue
        pixels = values[:, valid]
        _check_repeated_bands(item, pixels, warn)
        if item.spec.normalization == "mean_std" and not _check_byte_scaling(item, refusals.append):
            _check_training_range(item, pixels, refusals.append)
    if not refusals:
        return False
    if not run_anyway:
        raise OutOfDomainError(
            "; ".join(refusals) + ". Nothing was run: the model's results on such input would "
            "mean nothing. If you are sure the input is right, run anyway (QGIS: the advanced "
            "'Run anyway' parameter; msgfm predict --run-anyway): the output then says it is out "
            "of the model's domain"
        )
    for message in refusals:
        warn(f"{message} (ran anyway: the result is out of the model's domain)")
    return True


def _check_size(grid: ReferenceGrid, item: OpenedInput, tile_size: int, warn: Warn) -> None:
    if grid.width >= tile_size and grid.height >= tile_size:
        return
    size = f"{grid.width} x {grid.height} px"
    if grid.width * grid.height < MIN_TILE_FRACTION * tile_size * tile_size:
        raise InputMismatchError(
            f"{item.raster.describe()} is {size}, a tiny fraction of the model's {tile_size} x "
            f"{tile_size} px tile: the model would see the same few pixels mirrored over the whole "
            "window, and its result would mean nothing; use a raster at least "
            f"{tile_size // 4} x {tile_size // 4} px (ideally {tile_size} x {tile_size})"
        )
    warn(
        f"{item.raster.describe()} is {size}, smaller than the model's {tile_size} px tile: it is "
        "padded by mirroring its edges, so the result is less reliable than on a larger raster"
    )


def _check_product_level(item: OpenedInput, metadata: ModelMetadata, refuse: Warn) -> None:
    from ..product_levels import LEVEL_MEANINGS

    found, trained = item.product_level, metadata.product_levels.get(item.spec.sensor)
    if found is None or not trained or found.level in trained:
        return
    meanings = ", ".join(dict.fromkeys(LEVEL_MEANINGS.get(level, level) for level in trained))
    # Surface reflectance is made from L1C by atmospheric correction; the reverse has no tool.
    how_to = " (e.g. made with Sen2Cor from the L1C)" if trained[0] == "L2A" else ""
    refuse(
        f"{item.raster.describe()}: this Sentinel-2 input is {found.level} ({found.meaning}: "
        f"{found.how}); the model was trained on {' or '.join(trained)} ({meanings}). Use the "
        f"{trained[0]} product of the scene{how_to}"
    )


def _check_chosen_bands(item: OpenedInput, warn: Warn) -> None:
    seen = {}
    for position, index in enumerate(item.indexes):
        if index in seen:
            spec = item.spec
            warn(
                f"{item.raster.describe()}: raster band {index} is given both as "
                f"{spec.bands[seen[index]]} and as {spec.bands[position]}; the model expects "
                f"{len(spec.bands)} different bands ({', '.join(spec.bands)})"
            )
            return
        seen[index] = position


def _check_coverage(
    item: OpenedInput, reference: OpenedInput, grid: ReferenceGrid, warn: Warn
) -> None:
    covered = _covered_fraction(item, grid)
    if covered is None or covered >= FULL_COVERAGE:
        return
    warn(
        f"{item.raster.describe()} covers only {covered:.0%} of {reference.raster.describe()} "
        "(the reference grid): the output is nodata wherever it is missing; choose rasters that "
        "cover the same area"
    )


def _covered_fraction(item: OpenedInput, grid: ReferenceGrid) -> Optional[float]:
    from rasterio.transform import array_bounds
    from rasterio.warp import transform_bounds

    source_crs = getattr(item.reader, "src_crs", None) or item.dataset.crs
    if source_crs is None or grid.crs is None:
        return None
    try:
        left, bottom, right, top = transform_bounds(source_crs, grid.crs, *item.dataset.bounds)
    except Exception:  # the extent cannot be expressed in the reference CRS
        return None
    ref_left, ref_bottom, ref_right, ref_top = array_bounds(grid.height, grid.width, grid.transform)
    width = max(0.0, min(right, ref_right) - max(left, ref_left))
    height = max(0.0, min(top, ref_top) - max(bottom, ref_bottom))
    area = (ref_right - ref_left) * (ref_top - ref_bottom)
    return width * height / area if area > 0 else None


def _sample(
    grid: ReferenceGrid, opened: Sequence[OpenedInput]
) -> List[Tuple[np.ndarray, np.ndarray]]:
    """A few windows spread over the reference grid, read from every input and joined."""
    h, w = min(SAMPLE_WINDOW, grid.height), min(SAMPLE_WINDOW, grid.width)
    rows = _spread(grid.height, h)
    cols = _spread(grid.width, w)
    samples = []
    for item in opened:
        values, valid = [], []
        for row in rows:
            for col in cols:
                v, m = item.read_window(row, col, h, w)
                v, m = v[:, ::SAMPLE_STEP, ::SAMPLE_STEP], m[::SAMPLE_STEP, ::SAMPLE_STEP]
                values.append(v.reshape(v.shape[0], -1))
                valid.append(m.reshape(-1))
        samples.append((np.concatenate(values, axis=1), np.concatenate(valid)))
    return samples


def _spread(size: int, window: int) -> List[int]:
    if size <= window:
        return [0]
    return sorted({round(k * (size - window) / (SAMPLE_GRID - 1)) for k in range(SAMPLE_GRID)})


def _check_repeated_bands(item: OpenedInput, pixels: np.ndarray, warn: Warn) -> None:
    if pixels.shape[0] < 2 or len(set(item.indexes)) < len(item.indexes):
        return  # one band: nothing to compare; a band chosen twice is reported already
    groups: List[List[int]] = []
    for k in range(pixels.shape[0]):
        for group in groups:
            if np.array_equal(pixels[group[0]], pixels[k]):
                group.append(k)
                break
        else:
            groups.append([k])
    repeated = [g for g in groups if len(g) > 1]
    if not repeated:
        return
    bands = item.spec.bands
    if len(groups) == 1:
        what = f"all {len(bands)} bands hold the same values (one band repeated)"
    else:
        what = "; ".join(
            f"bands {', '.join(bands[k] for k in g)} hold identical values" for g in repeated
        )
    warn(
        f"{item.raster.describe()}: {what}. The model expects {len(bands)} different bands "
        f"({', '.join(bands)}); check the raster and the bands chosen"
    )


def _check_byte_scaling(item: OpenedInput, warn: Warn) -> bool:
    """Warn when an 8-bit raster feeds bands the model saw with values far above 255."""
    dtypes = {item.dataset.dtypes[i - 1] for i in item.indexes}
    if dtypes != {"uint8"}:
        return False
    spec: InputSpec = item.spec
    high = [b for b, m in zip(spec.bands, spec.mean) if m > 255 * 1.5]
    if len(high) * 2 < len(spec.bands):
        return False
    warn(
        f"{item.raster.describe()} is 8-bit (0-255) but the model was trained on "
        f"{spec.sensor} values around {_typical(spec)}: the raster looks rescaled to Byte (e.g. an "
        "8-bit export for display); use the original data (e.g. Sentinel-2 reflectance x 10000)"
    )
    return True


def _typical(spec: InputSpec) -> str:
    low, high = min(spec.mean), max(spec.mean)
    return f"{low:.0f}-{high:.0f}" if round(low) != round(high) else f"{low:.0f}"


def _check_training_range(item: OpenedInput, pixels: np.ndarray, warn: Warn) -> None:
    spec: InputSpec = item.spec
    medians = np.median(pixels, axis=1)
    spreads = np.std(pixels, axis=1)
    far = far_bands(medians, spreads, spec.mean, spec.std)
    if len(far) * 2 < len(spec.bands):
        return  # one odd band (e.g. a cirrus band over a bright scene) is not a pattern
    shown = ", ".join(
        f"{spec.bands[k]} median {medians[k]:.4g}, spread {spreads[k]:.3g} (trained around "
        f"{spec.mean[k]:.4g} +- {spec.std[k]:.3g})"
        for k in far[:3]
    )
    more = f" and {len(far) - 3} more" if len(far) > 3 else ""
    warn(
        f"{item.raster.describe()}: values are far from what the model was trained on: {shown}"
        f"{more}. Check that the raster is {spec.sensor} data in the model's units and that the "
        "bands are the ones it expects (`msgfm info MODEL` lists them)"
    )


def describe_all_nodata(opened: Sequence[OpenedInput]) -> str:
    """The warning for a run whose every tile was nodata."""
    reference = next(item for item in opened if not item.absent and item.reader is item.dataset)
    return (
        f"every tile of {reference.raster.describe()} is nodata where the inputs overlap: the "
        "model was not run and the output is all nodata; check the inputs' nodata values and "
        "that they cover the same area"
    )
