"""Confusion-matrix scores: overall accuracy and IoU, for segmentation and single-label classes.

``pred`` and ``ref`` are class-index arrays of one shape (``(H, W)``, ``(N, H, W)``, ...). Confusion
matrices have the **reference in rows** and the **prediction in columns**.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import numpy as np

from ._arrays import boolean_mask, mean_defined


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
        counted &= boolean_mask(valid, pred.shape)
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
    return mean_defined(iou_per_class(matrix))


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
        "mean_iou": mean_defined(per_class),
    }
    scores.update({f"iou_{name}": float(iou) for name, iou in zip(names, per_class)})
    scores["n_pixels"] = float(matrix.sum())
    scores["n_classes_absent"] = float(np.isnan(per_class).sum())
    return scores


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
