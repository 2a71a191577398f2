"""Input checks and NaN-aware means shared by the score modules."""

from __future__ import annotations

import math

import numpy as np


def mean_defined(values: np.ndarray) -> float:
    # np.nanmean warns on an all-NaN input; an undefined mean is NaN by this module's convention.
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else math.nan


def check_finite(values: np.ndarray, name: str) -> None:
    bad = np.count_nonzero(~np.isfinite(values))
    if bad:
        raise ValueError(
            f"{name} has {bad} NaN or infinite values among the pixels scored; "
            "mark nodata pixels False in the valid mask"
        )


def boolean_mask(valid: np.ndarray, shape) -> np.ndarray:
    mask = np.asarray(valid)
    if mask.dtype != bool:
        raise ValueError(
            f"valid must be a boolean mask (True where a pixel counts), got {mask.dtype}"
        )
    if mask.shape != tuple(shape):
        try:
            mask = np.broadcast_to(mask, shape)
        except ValueError:
            raise ValueError(f"valid has shape {mask.shape}, expected {tuple(shape)}") from None
    return mask
