"""Scores of the downstream tasks: classification, segmentation, image restoration.

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

from .classification import (
    average_precision,
    average_precision_per_class,
    classification_metrics,
    f1_per_class,
    f1_score,
    mean_average_precision,
)
from .restoration import (
    ergas,
    mae,
    psnr,
    restoration_metrics,
    rmse,
    sam,
    ssim,
)
from .segmentation import (
    confusion_matrix,
    iou_per_class,
    mean_iou,
    overall_accuracy,
    segmentation_metrics,
)

__all__ = [
    "average_precision",
    "average_precision_per_class",
    "classification_metrics",
    "confusion_matrix",
    "ergas",
    "f1_per_class",
    "f1_score",
    "iou_per_class",
    "mae",
    "mean_average_precision",
    "mean_iou",
    "overall_accuracy",
    "psnr",
    "restoration_metrics",
    "rmse",
    "sam",
    "segmentation_metrics",
    "ssim",
]
