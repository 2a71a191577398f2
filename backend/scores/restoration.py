"""Image restoration scores: MAE, RMSE, PSNR, SSIM, SAM, ERGAS.

Images are ``(bands, H, W)`` (a ``(H, W)`` array is one band); ``valid`` is an optional boolean
``(H, W)`` mask, True where a pixel counts (nodata and cloud-free masks).
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np

from ._arrays import boolean_mask, check_finite

# Wang, Bovik, Sheikh, Simoncelli (2004), "Image quality assessment: from error visibility to
# structural similarity", section III-C: an 11x11 circular-symmetric Gaussian window of standard
# deviation 1.5 samples, K1 = 0.01, K2 = 0.03.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def mae(pred: np.ndarray, ref: np.ndarray, valid: Optional[np.ndarray] = None) -> float:
    """Mean absolute error over all bands and valid pixels.

    Args:
        pred: ``(bands, H, W)`` restored image.
        ref: ``(bands, H, W)`` reference image, same units.
        valid: optional ``(H, W)`` boolean mask, True where a pixel counts.

    Returns:
        MAE in the images' units.
    """
    pred_values, ref_values = _valid_pixels(pred, ref, valid)
    return float(np.mean(np.abs(pred_values - ref_values)))


def rmse(pred: np.ndarray, ref: np.ndarray, valid: Optional[np.ndarray] = None) -> float:
    """Root mean squared error over all bands and valid pixels (shapes as in :func:`mae`)."""
    pred_values, ref_values = _valid_pixels(pred, ref, valid)
    return float(np.sqrt(np.mean((pred_values - ref_values) ** 2)))


def psnr(
    pred: np.ndarray, ref: np.ndarray, data_range: float, valid: Optional[np.ndarray] = None
) -> float:
    """Peak signal-to-noise ratio, ``10 log10(data_range^2 / MSE)``, in dB.

    The MSE is pooled over all bands and valid pixels (not a mean of per-band PSNRs).

    Args:
        pred: ``(bands, H, W)`` restored image.
        ref: ``(bands, H, W)`` reference image.
        data_range: the span of valid values (e.g. 1.0 for reflectance in [0, 1], 10000 for
            Sentinel-2 digital numbers); it must be given because neither image's own range is the
            sensor's.
        valid: optional ``(H, W)`` boolean mask.

    Returns:
        PSNR in dB; ``inf`` for identical images.
    """
    _check_data_range(data_range)
    pred_values, ref_values = _valid_pixels(pred, ref, valid)
    mse = float(np.mean((pred_values - ref_values) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(float(data_range) ** 2 / mse)


def ssim(
    pred: np.ndarray, ref: np.ndarray, data_range: float, valid: Optional[np.ndarray] = None
) -> float:
    """Structural similarity (Wang et al. 2004), per band, averaged over bands.

    Local means, variances and covariance are Gaussian-weighted (11x11 window, sigma 1.5, the
    biased weighted estimates of the paper) over every window lying wholly inside the image (the
    paper's "valid" windows: no padding invents pixels at the borders), with
    ``C1 = (0.01 L)^2`` and ``C2 = (0.03 L)^2`` for ``L = data_range``. The constants keep every
    denominator positive, so constant images need no special case: two identical constant images
    score 1, two different constants score their luminance term.

    Args:
        pred: ``(bands, H, W)`` restored image, ``H, W >= 11``.
        ref: ``(bands, H, W)`` reference image.
        data_range: the span of valid values (see :func:`psnr`).
        valid: optional ``(H, W)`` boolean mask; a window counts only when all its pixels are
            valid, so nodata never leaks into a local statistic.

    Returns:
        Mean SSIM in [-1, 1]; NaN when no window is wholly valid.
    """
    _check_data_range(data_range)
    pred_image, ref_image = _image_pair(pred, ref)
    height, width = ref_image.shape[1:]
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (its window), "
            f"got {height}x{width}"
        )
    mask = None if valid is None else boolean_mask(valid, (height, width))
    window_counts = None
    if mask is not None:
        # Zero out nodata (it may be NaN) so that it cannot poison windows that are kept.
        pred_image = np.where(mask, pred_image, 0.0)
        ref_image = np.where(mask, ref_image, 0.0)
        window_counts = _window_filter(mask.astype(np.float64), np.ones(SSIM_WINDOW))
    check_finite(pred_image, "pred")
    check_finite(ref_image, "ref")

    kernel = _gaussian_kernel(SSIM_WINDOW, SSIM_SIGMA)
    c1 = (SSIM_K1 * float(data_range)) ** 2
    c2 = (SSIM_K2 * float(data_range)) ** 2
    band_means = []
    for x, y in zip(pred_image, ref_image):
        mu_x = _window_filter(x, kernel)
        mu_y = _window_filter(y, kernel)
        var_x = _window_filter(x * x, kernel) - mu_x * mu_x
        var_y = _window_filter(y * y, kernel) - mu_y * mu_y
        cov_xy = _window_filter(x * y, kernel) - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
            (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
        )
        if window_counts is not None:
            # Counts of ones are exact small integers in float64.
            ssim_map = ssim_map[window_counts == SSIM_WINDOW * SSIM_WINDOW]
        if ssim_map.size == 0:
            return math.nan
        band_means.append(float(ssim_map.mean()))
    return float(np.mean(band_means))


def sam(pred: np.ndarray, ref: np.ndarray, valid: Optional[np.ndarray] = None) -> float:
    """Spectral angle mapper: mean angle between predicted and reference spectra, in degrees.

    Pixels where either spectrum is all zeros have no direction and are left out.

    Args:
        pred: ``(bands, H, W)`` restored image, at least 2 bands.
        ref: ``(bands, H, W)`` reference image.
        valid: optional ``(H, W)`` boolean mask.

    Returns:
        Mean angle in [0, 180] degrees; NaN when no pixel has two non-zero spectra.
    """
    pred_values, ref_values = _valid_pixels(pred, ref, valid)
    if ref_values.shape[0] < 2:
        raise ValueError(
            f"SAM compares spectra and needs at least 2 bands, got {ref_values.shape[0]}"
        )
    pred_norm = np.linalg.norm(pred_values, axis=0)
    ref_norm = np.linalg.norm(ref_values, axis=0)
    kept = (pred_norm > 0) & (ref_norm > 0)
    if not kept.any():
        return math.nan
    pred_unit = pred_values[:, kept] / pred_norm[kept]
    ref_unit = ref_values[:, kept] / ref_norm[kept]
    # 2 atan2(|u - v|, |u + v|) is the angle between unit vectors u and v without arccos's loss of
    # precision near 0 and 180 degrees (identical spectra give exactly 0).
    angles = 2.0 * np.arctan2(
        np.linalg.norm(pred_unit - ref_unit, axis=0), np.linalg.norm(pred_unit + ref_unit, axis=0)
    )
    return float(np.degrees(angles).mean())


def ergas(
    pred: np.ndarray, ref: np.ndarray, ratio: float, valid: Optional[np.ndarray] = None
) -> float:
    """ERGAS (Wald 2002): ``100 / ratio * sqrt(mean_b (RMSE_b / mean_b)^2)``.

    ``RMSE_b`` is band b's RMSE and ``mean_b`` the reference band's mean, both over valid pixels.

    Args:
        pred: ``(bands, H, W)`` restored image.
        ref: ``(bands, H, W)`` reference image (positive radiances or reflectances).
        ratio: resolution ratio, low-resolution pixel size over high-resolution pixel size (4 for
            Sentinel-2 20 m sharpened to 5 m, 2 for the solaris pan/MS pair, 1 for cloud removal).
        valid: optional ``(H, W)`` boolean mask.

    Returns:
        ERGAS (dimensionless, lower is better, 0 for identical images).
    """
    if not ratio > 0:
        raise ValueError(f"ERGAS ratio must be positive (low / high resolution), got {ratio}")
    pred_values, ref_values = _valid_pixels(pred, ref, valid)
    band_rmse = np.sqrt(np.mean((pred_values - ref_values) ** 2, axis=1))
    band_mean = ref_values.mean(axis=1)
    zero_mean = np.flatnonzero(band_mean == 0)
    if zero_mean.size:
        raise ValueError(
            f"ERGAS divides by each reference band's mean, and band(s) {zero_mean.tolist()} of ref "
            "average 0 over the valid pixels; ERGAS needs positive radiances or reflectances"
        )
    return float(100.0 / ratio * np.sqrt(np.mean((band_rmse / band_mean) ** 2)))


def restoration_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    data_range: float,
    ratio: Optional[float] = None,
    valid: Optional[np.ndarray] = None,
) -> Dict[str, float]:
    """The cloud-removal / pan-sharpening scores of a restored image, as named floats.

    Args:
        pred: ``(bands, H, W)`` restored image.
        ref: ``(bands, H, W)`` reference image.
        data_range: span of valid values, for PSNR and SSIM.
        ratio: resolution ratio for ERGAS; ERGAS is left out when None.
        valid: optional ``(H, W)`` boolean mask.

    Returns:
        ``mae``, ``rmse``, ``psnr`` (dB), ``ssim``, ``sam`` (degrees; only for 2 or more bands),
        ``ergas`` (only with ``ratio``) and ``n_pixels`` (valid pixels).
    """
    pred_image, ref_image = _image_pair(pred, ref)
    scores = {
        "mae": mae(pred_image, ref_image, valid),
        "rmse": rmse(pred_image, ref_image, valid),
        "psnr": psnr(pred_image, ref_image, data_range, valid),
        "ssim": ssim(pred_image, ref_image, data_range, valid),
    }
    if ref_image.shape[0] >= 2:
        scores["sam"] = sam(pred_image, ref_image, valid)
    if ratio is not None:
        scores["ergas"] = ergas(pred_image, ref_image, ratio, valid)
    pixels = ref_image.shape[1] * ref_image.shape[2]
    scores["n_pixels"] = float(pixels if valid is None else np.count_nonzero(valid))
    return scores


def _check_data_range(data_range: float) -> None:
    if not (data_range > 0 and math.isfinite(data_range)):
        raise ValueError(
            f"data_range must be a positive number (the span of valid values, e.g. 1.0 for "
            f"reflectance), got {data_range}"
        )


def _image_pair(pred: np.ndarray, ref: np.ndarray):
    pred_image = np.asarray(pred, dtype=np.float64)
    ref_image = np.asarray(ref, dtype=np.float64)
    if ref_image.ndim == 2:
        ref_image = ref_image[np.newaxis]
    if pred_image.ndim == 2:
        pred_image = pred_image[np.newaxis]
    if ref_image.ndim != 3:
        raise ValueError(f"images must be (bands, H, W) or (H, W), got ref {np.shape(ref)}")
    if pred_image.shape != ref_image.shape:
        raise ValueError(
            f"pred has shape {np.shape(pred)} but ref has shape {np.shape(ref)}; restored and "
            "reference images must share bands and grid"
        )
    return pred_image, ref_image


def _valid_pixels(pred: np.ndarray, ref: np.ndarray, valid: Optional[np.ndarray]):
    """The ``(bands, pixels)`` values of both images at the valid pixels, checked finite."""
    pred_image, ref_image = _image_pair(pred, ref)
    bands = ref_image.shape[0]
    if valid is None:
        pred_values = pred_image.reshape(bands, -1)
        ref_values = ref_image.reshape(bands, -1)
    else:
        mask = boolean_mask(valid, ref_image.shape[1:])
        if not mask.any():
            raise ValueError("the valid mask selects no pixel: there is nothing to score")
        pred_values = pred_image[:, mask]
        ref_values = ref_image[:, mask]
    check_finite(pred_values, "pred")
    check_finite(ref_values, "ref")
    return pred_values, ref_values


def _gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    kernel = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return kernel / kernel.sum()


def _window_filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Weighted sums of ``image`` over every window wholly inside it (separable: rows then columns).

    ``kernel`` is the 1-D weight; the 2-D window is its outer product, so a ``(H, W)`` image gives
    ``(H - k + 1, W - k + 1)`` values.
    """
    size = kernel.size
    height, width = image.shape
    rows = sum(kernel[k] * image[k : height - size + 1 + k] for k in range(size))
    return sum(kernel[k] * rows[:, k : width - size + 1 + k] for k in range(size))
