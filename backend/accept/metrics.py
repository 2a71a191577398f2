"""The figures a GIS user checks on a model's output, and their baselines.

PSNR, SAM and ERGAS are :mod:`backend.scores.restoration`'s; accuracy and macro-F1 come from
:func:`backend.scores.segmentation.confusion_matrix`. What is here: the radiometric sanity checks
of a restored image, the adjusted Rand index, ROC AUC, a bootstrap interval, NDWI, and the two
classical pan-sharpening baselines (bicubic and Brovey).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from ..scores.segmentation import confusion_matrix


def clipped_fraction(image: np.ndarray, low: float, high: float) -> float:
    """Share of values at or beyond the output's range ends (``<= low`` or ``>= high``)."""
    values = np.asarray(image, dtype=np.float64)
    return float(np.mean((values <= low) | (values >= high)))


def zero_fraction_per_band(image: np.ndarray) -> np.ndarray:
    """``(bands,)`` share of pixels of each band that are 0 (or below)."""
    values = np.asarray(image, dtype=np.float64).reshape(image.shape[0], -1)
    return np.mean(values <= 0, axis=1)


def band_mean_change(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``(bands,)`` relative change of each band's mean, ``mean(pred) / mean(ref) - 1``."""
    pred_mean = np.asarray(pred, dtype=np.float64).reshape(pred.shape[0], -1).mean(axis=1)
    ref_mean = np.asarray(ref, dtype=np.float64).reshape(ref.shape[0], -1).mean(axis=1)
    if np.any(ref_mean == 0):
        raise ValueError("a reference band averages 0: its mean cannot be compared relatively")
    return pred_mean / ref_mean - 1.0


def ndwi(green: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """McFeeters' normalised difference water index ``(G - NIR) / (G + NIR)``; NaN where both are 0."""
    green = np.asarray(green, dtype=np.float64)
    nir = np.asarray(nir, dtype=np.float64)
    total = green + nir
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total != 0, (green - nir) / np.where(total != 0, total, 1.0), np.nan)


def accuracy_and_macro_f1(pred: np.ndarray, ref: np.ndarray, n_classes: int) -> Tuple[float, float]:
    """Overall accuracy and the F1 averaged over classes present in ``ref`` or ``pred``."""
    matrix = confusion_matrix(pred, ref, n_classes).astype(np.float64)
    total = matrix.sum()
    if total == 0:
        return float("nan"), float("nan")
    hits = np.diag(matrix)
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    denominator = matrix.sum(axis=0) + matrix.sum(axis=1)
    f1 = np.where(denominator > 0, 2 * hits / np.where(denominator > 0, denominator, 1), 0.0)
    return float(hits.sum() / total), float(f1[present].mean())


def adjusted_rand_index(first: np.ndarray, second: np.ndarray) -> float:
    """Hubert and Arabie's adjusted Rand index of two labelings of the same items (1 = same
    partition, about 0 = chance, any label values)."""
    first = np.asarray(first).ravel()
    second = np.asarray(second).ravel()
    if first.shape != second.shape:
        raise ValueError(f"labelings differ in length: {first.size} and {second.size}")
    _, a = np.unique(first, return_inverse=True)
    _, b = np.unique(second, return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1), dtype=np.float64)
    np.add.at(table, (a, b), 1.0)

    def pairs(counts: np.ndarray) -> float:
        return float(np.sum(counts * (counts - 1) / 2.0))

    index = pairs(table)
    rows, cols = pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    total = pairs(np.array([first.size], dtype=np.float64))
    expected = rows * cols / total if total else 0.0
    maximum = (rows + cols) / 2.0
    if maximum == expected:  # both labelings are one cluster each (or all singletons)
        return 1.0
    return float((index - expected) / (maximum - expected))


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random negative
    (ties count half), by the rank-sum (Mann-Whitney) formula."""
    positive = np.asarray(positive, dtype=bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks (1-based) of tied scores
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], scores.size]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def bootstrap_interval(
    groups: Sequence[np.ndarray],
    statistic: Callable[[np.ndarray], float],
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over resampled *groups* (spatial blocks).

    Items of one group (pixels of one tile) are not independent: whole groups are drawn with
    replacement and their items pooled, so the interval reflects independent samples.

    Args:
        groups: One array of per-item rows per spatial group (stacked by ``np.concatenate``).
        statistic: Function of the pooled items.
        n_resamples: Bootstrap draws.
        level: Coverage of the interval.
        seed: Random seed (the interval is reproducible).

    Returns:
        ``(low, high)``.
    """
    if not groups:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        chosen = rng.integers(0, len(groups), size=len(groups))
        values.append(statistic(np.concatenate([groups[i] for i in chosen])))
    tail = (1.0 - level) / 2.0 * 100.0
    return float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100.0 - tail))


def upsample_bicubic(image: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """``(bands, H, W)`` resampled to ``shape`` by cubic spline interpolation (the bicubic
    baseline of pan-sharpening).

    Pixel areas stay aligned (``grid_mode``): a coarse pixel covers ``factor`` fine pixels and
    its centre lands on their centre. scipy's default aligns the corner pixels' centres instead,
    which stretches the image and shifts it against the pan band by up to 1.5 pan pixels at the
    edges (at ratio 4), a handicap for the baselines, not a property of the methods.
    """
    from scipy.ndimage import zoom

    factors = (shape[0] / image.shape[1], shape[1] / image.shape[2])
    out = np.stack(
        [
            zoom(band.astype(np.float64), factors, order=3, grid_mode=True, mode="nearest")
            for band in image
        ]
    )
    return out[:, : shape[0], : shape[1]]


def brovey(
    ms_up: np.ndarray, pan: np.ndarray, weights: Optional[Sequence[float]] = None
) -> np.ndarray:
    """Brovey transform: each upsampled MS band times ``pan / intensity``.

    The intensity is the (weighted) mean of the MS bands; where it is 0 the MS is kept.

    Args:
        ms_up: ``(bands, H, W)`` multispectral image on the pan grid.
        pan: ``(H, W)`` panchromatic band, radiometrically matched to the intensity.
        weights: Band weights of the intensity (default: equal).

    Returns:
        ``(bands, H, W)`` sharpened image.
    """
    ms_up = np.asarray(ms_up, dtype=np.float64)
    w = np.full(ms_up.shape[0], 1.0 / ms_up.shape[0]) if weights is None else np.asarray(weights)
    intensity = np.tensordot(w / w.sum(), ms_up, axes=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = np.where(intensity > 0, pan / np.where(intensity > 0, intensity, 1.0), 1.0)
    return ms_up * gain


def match_pan(pan: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """The pan band linearly matched to the intensity's mean and standard deviation (so Brovey
    does not change the overall brightness)."""
    pan = np.asarray(pan, dtype=np.float64)
    spread = pan.std()
    if spread == 0:
        return np.full_like(pan, intensity.mean())
    return (pan - pan.mean()) / spread * intensity.std() + intensity.mean()
