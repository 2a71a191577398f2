"""Multi-label and single-label classification scores: average precision, F1, accuracy.

``y_true`` and ``y_score`` are ``(samples, classes)``; scores are any real numbers where higher means
"more likely" (probabilities, logits). Single-label references are class indices ``(samples,)``.
"""

from __future__ import annotations

import math
from typing import Dict

import numpy as np

from ._arrays import check_finite, mean_defined
from .segmentation import confusion_matrix, overall_accuracy

AVERAGES = ("macro", "micro")


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
    return mean_defined(average_precision_per_class(truth, score))


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
        return mean_defined(f1_per_class(y_true, y_score, threshold))
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
            "map_macro": mean_defined(per_class_ap),
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
        "f1_macro": mean_defined(_f1_from_confusion(matrix)),
        "n_samples": float(labels.shape[0]),
    }


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


def _binary_labels(labels: np.ndarray, name: str) -> np.ndarray:
    if labels.dtype == bool:
        return labels
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{name} must hold binary labels (0/1 or bool); found other values")
    return labels.astype(bool)


def _finite_scores(scores: np.ndarray, name: str) -> np.ndarray:
    scores = scores.astype(np.float64, copy=False)
    check_finite(scores, name)
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
