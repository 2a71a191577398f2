"""Evaluation metrics of the downstream tasks: classification, segmentation, image restoration.

numpy only (no torch): ``msgfm evaluate`` on ONNX models, the training loops and the QGIS plugin
all score predictions with these same functions.

Conventions shared by every function:

- Classification: ``y_true`` and ``y_score`` are ``(samples, classes)``; scores are any real numbers
  where higher means "more likely" (probabilities, logits). Single-label references are class
  indices ``(samples,)``.
- Segmentation: ``pred`` and ``ref`` are class-index arrays of one shape (``(H, W)``, ``(N, H, W)``,
  ...). Confusion matrices have the **reference in rows** and the **prediction in columns**.
- Restoration: images are ``(bands, H, W)`` (a ``(H, W)`` array is one band); ``valid`` is an
  optional boolean ``(H, W)`` mask, True where a pixel counts (nodata and cloud-free masks).
- An undefined score (a class absent from the data, no pixel to average) is NaN and left out of the
  means it would belong to; convenience functions report how many were left out.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import numpy as np

# Wang, Bovik, Sheikh, Simoncelli (2004), "Image quality assessment: from error visibility to
# structural similarity", section III-C: an 11x11 circular-symmetric Gaussian window of standard
# deviation 1.5 samples, K1 = 0.01, K2 = 0.03.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

AVERAGES = ("macro", "micro")


# --------------------------------------------------------------------------------------------------
# Multi-label and single-label classification
# --------------------------------------------------------------------------------------------------


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Average precision of one binary problem: the step-wise area under the precision-recall curve.

    ``AP = sum_n (R_n - R_{n-1}) * P_n`` over the distinct score thresholds taken in decreasing
    order, with ``R_0 = 0`` (scikit-learn's ``average_precision_score``, no interpolation). Samples
    with equal scores cross the threshold together, so ties are not resolved in anyone's favour.

    Args:
        y_true: ``(samples,)`` binary labels (bool or 0/1).
        y_score: ``(samples,)`` scores, higher meaning positive.

    Returns:
        AP in [0, 1]; NaN when there is no positive sample (recall is undefined).
    """
    truth = _binary_labels(np.asarray(y_true), "y_true").ravel()
    score = _finite_scores(np.asarray(y_score), "y_score").ravel()
    if truth.shape != score.shape:
        raise ValueError(f"y_true has {truth.size} samples but y_score has {score.size}")
    positives = int(truth.sum())
    if positives == 0:
        return math.nan
    order = np.argsort(-score, kind="mergesort")
    score = score[order]
    truth = truth[order]
    # The last sample of each run of equal scores is where that threshold's counts are read.
    threshold_ends = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    true_positives = np.cumsum(truth)[threshold_ends]
    predicted_positives = threshold_ends + 1
    precision = true_positives / predicted_positives
    recall = true_positives / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def average_precision_per_class(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Average precision of every class of a multi-label problem.

    Args:
        y_true: ``(samples, classes)`` binary labels.
        y_score: ``(samples, classes)`` scores.

    Returns:
        ``(classes,)`` float64 APs; NaN for a class with no positive sample.
    """
    truth, score = _multilabel_pair(y_true, y_score)
    return np.array([average_precision(truth[:, c], score[:, c]) for c in range(truth.shape[1])])


def mean_average_precision(
    y_true: np.ndarray, y_score: np.ndarray, average: str = "macro"
) -> float:
    """Mean average precision (mAP) of a multi-label problem.

    Args:
        y_true: ``(samples, classes)`` binary labels.
        y_score: ``(samples, classes)`` scores.
        average: ``"macro"``: the mean of the per-class APs over the classes that have at least one
            positive sample (the others have no AP and are left out, see
            :func:`average_precision_per_class`); ``"micro"``: the AP of all (sample, class) pairs
            pooled, so frequent classes weigh more.

    Returns:
        mAP in [0, 1]; NaN when no class has a positive sample.
    """
    _check_average(average)
    truth, score = _multilabel_pair(y_true, y_score)
    if average == "micro":
        return average_precision(truth.ravel(), score.ravel())
    return _mean_defined(average_precision_per_class(truth, score))


def f1_per_class(y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """F1 score of every class of a multi-label problem, predicting positive where score >= threshold.

    Args:
        y_true: ``(samples, classes)`` binary labels.
        y_score: ``(samples, classes)`` scores (probabilities for the default threshold).
        threshold: a score at or above it is a positive prediction.

    Returns:
        ``(classes,)`` ``2TP / (2TP + FP + FN)``; NaN for a class neither present nor predicted
        (0/0). A class absent from the reference but predicted somewhere scores 0.
    """
    truth, score = _multilabel_pair(y_true, y_score)
    predicted = score >= threshold
    true_positives = np.sum(truth & predicted, axis=0)
    false_positives = np.sum(~truth & predicted, axis=0)
    false_negatives = np.sum(truth & ~predicted, axis=0)
    return _f1(true_positives, false_positives, false_negatives)


def f1_score(
    y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5, average: str = "macro"
) -> float:
    """F1 score of a multi-label problem at a score threshold.

    Args:
        y_true: ``(samples, classes)`` binary labels.
        y_score: ``(samples, classes)`` scores.
        threshold: a score at or above it is a positive prediction.
        average: ``"macro"``: mean of :func:`f1_per_class` over the classes where it is defined;
            ``"micro"``: F1 of the true/false positive and false negative counts summed over classes.

    Returns:
        F1 in [0, 1]; NaN when nothing is present and nothing predicted.
    """
    _check_average(average)
    if average == "macro":
        return _mean_defined(f1_per_class(y_true, y_score, threshold))
    truth, score = _multilabel_pair(y_true, y_score)
    predicted = score >= threshold
    return float(
        _f1(
            np.sum(truth & predicted),
            np.sum(~truth & predicted),
            np.sum(truth & ~predicted),
        )
    )


def classification_metrics(
    y_true: np.ndarray,
    y_score: np.ndarray,
    multilabel: bool = True,
    threshold: float = 0.5,
) -> Dict[str, float]:
    """The scene-classification scores of one evaluation set, as named floats.

    Args:
        y_true: multi-label: ``(samples, classes)`` binary labels; single-label: ``(samples,)``
            class indices.
        y_score: ``(samples, classes)`` scores (single-label: the predicted class is the argmax).
        multilabel: which of the two problems this is.
        threshold: multi-label F1 threshold (a score at or above it is positive).

    Returns:
        Multi-label: ``map_macro``, ``map_micro``, ``f1_macro``, ``f1_micro``, ``n_samples`` and
        ``n_classes_without_positives`` (classes left out of ``map_macro``). Single-label:
        ``overall_accuracy``, ``f1_macro`` (over classes present or predicted), ``n_samples``.
    """
    if multilabel:
        per_class_ap = average_precision_per_class(y_true, y_score)
        return {
            "map_macro": _mean_defined(per_class_ap),
            "map_micro": mean_average_precision(y_true, y_score, "micro"),
            "f1_macro": f1_score(y_true, y_score, threshold, "macro"),
            "f1_micro": f1_score(y_true, y_score, threshold, "micro"),
            "n_samples": float(np.shape(y_true)[0]),
            "n_classes_without_positives": float(np.isnan(per_class_ap).sum()),
        }
    score = _finite_scores(np.asarray(y_score), "y_score")
    labels = np.asarray(y_true)
    if score.ndim != 2 or labels.ndim != 1 or labels.shape[0] != score.shape[0]:
        raise ValueError(
            "single-label classification needs y_true as (samples,) class indices and y_score as "
            f"(samples, classes); got y_true {labels.shape} and y_score {score.shape}"
        )
    n_classes = score.shape[1]
    if labels.size and (
        not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= n_classes
    ):
        raise ValueError(
            f"y_true must hold integer class indices 0..{n_classes - 1} (y_score has {n_classes} "
            f"columns); got values from {labels.min()} to {labels.max()}"
        )
    matrix = confusion_matrix(np.argmax(score, axis=1), labels, n_classes=n_classes)
    return {
        "overall_accuracy": overall_accuracy(matrix),
        "f1_macro": _mean_defined(_f1_from_confusion(matrix)),
        "n_samples": float(labels.shape[0]),
    }


# --------------------------------------------------------------------------------------------------
# Segmentation (and single-label classification, through the confusion matrix)
# --------------------------------------------------------------------------------------------------


def confusion_matrix(
    pred: np.ndarray,
    ref: np.ndarray,
    n_classes: int,
    ignore_index: Optional[int] = None,
    valid: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Confusion matrix of class predictions against a reference.

    Confusion matrices of several tiles or batches add up to the matrix of them all, so large
    rasters are scored tile by tile.

    Args:
        pred: predicted class indices, any shape.
        ref: reference class indices, the same shape.
        n_classes: number of classes; valid indices are ``0 .. n_classes - 1``.
        ignore_index: nodata value: a pixel where the reference **or** the prediction holds it is
            not counted (the prediction is nodata where its input was nodata).
        valid: optional boolean mask of ``pred``'s shape (or broadcastable to it), True where a
            pixel counts.

    Returns:
        ``(n_classes, n_classes)`` int64 counts; ``matrix[r, p]`` is the number of pixels of
        reference class ``r`` predicted as ``p``.

    Raises:
        ValueError: shapes differ, or a counted pixel holds a value that is not a class index.
    """
    if int(n_classes) < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    n_classes = int(n_classes)
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"pred has shape {pred.shape} but ref has shape {ref.shape}")
    counted = np.ones(pred.shape, dtype=bool)
    if valid is not None:
        counted &= _boolean_mask(valid, pred.shape)
    if ignore_index is not None:
        counted &= (ref != ignore_index) & (pred != ignore_index)
    pred_classes = _class_indices(pred[counted], n_classes, "pred", ignore_index)
    ref_classes = _class_indices(ref[counted], n_classes, "ref", ignore_index)
    pairs = ref_classes * n_classes + pred_classes
    return np.bincount(pairs, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def overall_accuracy(matrix: np.ndarray) -> float:
    """Fraction of counted samples (pixels or scenes) whose predicted class is the reference's.

    Args:
        matrix: confusion matrix from :func:`confusion_matrix`.

    Returns:
        Accuracy in [0, 1]; NaN for an empty matrix (nothing counted).
    """
    matrix = np.asarray(matrix)
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total > 0 else math.nan


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """Intersection over union of every class: ``TP / (TP + FP + FN)``.

    Args:
        matrix: confusion matrix from :func:`confusion_matrix` (reference rows, prediction columns).

    Returns:
        ``(n_classes,)`` float64 IoUs; NaN for a class absent from both prediction and reference.
        A class predicted but absent from the reference (or the reverse) scores 0.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    true_positives = np.diag(matrix)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - true_positives
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, true_positives / union, np.nan)


def mean_iou(matrix: np.ndarray) -> float:
    """Mean IoU over the classes present in the prediction or the reference.

    Args:
        matrix: confusion matrix from :func:`confusion_matrix`.

    Returns:
        mIoU in [0, 1]; NaN when no pixel was counted.
    """
    return _mean_defined(iou_per_class(matrix))


def segmentation_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    n_classes: int,
    ignore_index: Optional[int] = None,
    valid: Optional[np.ndarray] = None,
    class_names: Optional[Sequence[str]] = None,
) -> Dict[str, float]:
    """The land-cover segmentation scores of a prediction, as named floats.

    Args:
        pred: predicted class indices, any shape.
        ref: reference class indices, the same shape.
        n_classes: number of classes.
        ignore_index: nodata value in either array (see :func:`confusion_matrix`).
        valid: optional boolean mask, True where a pixel counts.
        class_names: names for the per-class keys (default: the class indices).

    Returns:
        ``overall_accuracy``, ``mean_iou``, ``iou_<name>`` per class (NaN for a class absent from
        both, left out of ``mean_iou``), ``n_pixels`` (pixels counted) and
        ``n_classes_absent``.
    """
    if class_names is not None and len(class_names) != n_classes:
        raise ValueError(f"class_names has {len(class_names)} names for {n_classes} classes")
    names = [str(c) for c in (class_names if class_names is not None else range(n_classes))]
    matrix = confusion_matrix(pred, ref, n_classes, ignore_index=ignore_index, valid=valid)
    per_class = iou_per_class(matrix)
    scores = {
        "overall_accuracy": overall_accuracy(matrix),
        "mean_iou": _mean_defined(per_class),
    }
    scores.update({f"iou_{name}": float(iou) for name, iou in zip(names, per_class)})
    scores["n_pixels"] = float(matrix.sum())
    scores["n_classes_absent"] = float(np.isnan(per_class).sum())
    return scores


# --------------------------------------------------------------------------------------------------
# Image restoration: cloud removal, pan-sharpening
# --------------------------------------------------------------------------------------------------


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
    mask = None if valid is None else _boolean_mask(valid, (height, width))
    window_counts = None
    if mask is not None:
        # Zero out nodata (it may be NaN) so that it cannot poison windows that are kept.
        pred_image = np.where(mask, pred_image, 0.0)
        ref_image = np.where(mask, ref_image, 0.0)
        window_counts = _window_filter(mask.astype(np.float64), np.ones(SSIM_WINDOW))
    _check_finite(pred_image, "pred")
    _check_finite(ref_image, "ref")

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


# --------------------------------------------------------------------------------------------------
# Input checks and shared arithmetic
# --------------------------------------------------------------------------------------------------


def _mean_defined(values: np.ndarray) -> float:
    # np.nanmean warns on an all-NaN input; an undefined mean is NaN by this module's convention.
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else math.nan


def _f1(true_positives, false_positives, false_negatives) -> np.ndarray:
    true_positives = np.asarray(true_positives, dtype=np.float64)
    denominator = 2 * true_positives + false_positives + false_negatives
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * true_positives / denominator, np.nan)


def _f1_from_confusion(matrix: np.ndarray) -> np.ndarray:
    true_positives = np.diag(matrix)
    return _f1(
        true_positives,
        matrix.sum(axis=0) - true_positives,
        matrix.sum(axis=1) - true_positives,
    )


def _check_average(average: str) -> None:
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")


def _check_data_range(data_range: float) -> None:
    if not (data_range > 0 and math.isfinite(data_range)):
        raise ValueError(
            f"data_range must be a positive number (the span of valid values, e.g. 1.0 for "
            f"reflectance), got {data_range}"
        )


def _check_finite(values: np.ndarray, name: str) -> None:
    bad = np.count_nonzero(~np.isfinite(values))
    if bad:
        raise ValueError(
            f"{name} has {bad} NaN or infinite values among the pixels scored; "
            "mark nodata pixels False in the valid mask"
        )


def _binary_labels(labels: np.ndarray, name: str) -> np.ndarray:
    if labels.dtype == bool:
        return labels
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{name} must hold binary labels (0/1 or bool); found other values")
    return labels.astype(bool)


def _finite_scores(scores: np.ndarray, name: str) -> np.ndarray:
    scores = scores.astype(np.float64, copy=False)
    _check_finite(scores, name)
    return scores


def _multilabel_pair(y_true: np.ndarray, y_score: np.ndarray):
    truth = _binary_labels(np.asarray(y_true), "y_true")
    score = _finite_scores(np.asarray(y_score), "y_score")
    if truth.ndim != 2 or truth.shape != score.shape:
        raise ValueError(
            "multi-label metrics need y_true and y_score as (samples, classes) arrays of one "
            f"shape; got y_true {truth.shape} and y_score {score.shape}"
        )
    return truth, score


def _class_indices(
    values: np.ndarray, n_classes: int, name: str, ignore_index: Optional[int]
) -> np.ndarray:
    whole = np.issubdtype(values.dtype, np.integer) or values.dtype == bool
    if not whole and not (np.isfinite(values).all() and (values == np.round(values)).all()):
        raise ValueError(
            f"{name} holds values that are not class indices (fractions, NaN); pass "
            "per-pixel class indices and mask nodata with ignore_index or valid"
        )
    values = values.astype(np.int64)
    outside = (values < 0) | (values >= n_classes)
    if outside.any():
        hint = "" if ignore_index is not None else " (set ignore_index to its nodata value)"
        raise ValueError(
            f"{name} holds class {int(values[outside][0])}, outside 0..{n_classes - 1} for "
            f"n_classes={n_classes}{hint}"
        )
    return values


def _boolean_mask(valid: np.ndarray, shape) -> np.ndarray:
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
        mask = _boolean_mask(valid, ref_image.shape[1:])
        if not mask.any():
            raise ValueError("the valid mask selects no pixel: there is nothing to score")
        pred_values = pred_image[:, mask]
        ref_values = ref_image[:, mask]
    _check_finite(pred_values, "pred")
    _check_finite(ref_values, "ref")
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
