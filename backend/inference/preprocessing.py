"""Turning raster values into model input: per-band mean/std or per-tile standardisation.

Nodata pixels are set to the band mean (0 after normalisation): the model sees a neutral value there
instead of the nodata sentinel, and those pixels are excluded from the output anyway.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..export.schema import InputSpec

# Floor on a per-tile standard deviation: a flat tile (a lake in a DEM) must not divide by ~0.
_MIN_TILE_STD = 1e-6


def normalize_mean_std(
    values: np.ndarray,
    valid: np.ndarray,
    spec: InputSpec,
    in_place: bool = False,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """``(values - mean) / std`` per band for ``(bands, H, W)`` values; invalid pixels become 0.

    Values of any type are converted to float32 as they are subtracted (one pass). With
    ``in_place`` float32 ``values`` are overwritten, and ``out`` (float32, their shape) receives
    the result: no new chunk-sized array either way.
    """
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    if out is None and in_place and values.dtype == np.float32:
        out = values
    out = np.subtract(values, mean, out=out, dtype=np.float32)
    np.divide(out, std, out=out)
    if not valid.all():
        np.copyto(out, np.float32(0.0), where=~valid[None])
    return out


def normalize_per_tile(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Standardise each band of one ``(bands, H, W)`` tile by its own valid pixels' mean and std."""
    out = np.zeros_like(values, dtype=np.float32)
    if not valid.any():
        return out
    for b in range(values.shape[0]):
        band = values[b][valid].astype(np.float64)
        std = max(float(band.std()), _MIN_TILE_STD)
        out[b] = (values[b] - band.mean()) / std
    out[:, ~valid] = 0.0
    return out
