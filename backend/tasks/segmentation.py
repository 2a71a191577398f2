"""Land-cover segmentation: class logits per pixel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:
    import numpy as np

from .base import ClassTask


class Segmentation(ClassTask):
    name = "segmentation"
    min_classes = 2
    head = "segmentation"
    label_layout = "segmentation"

    def monitor(self, multilabel: bool) -> Tuple[str, str]:
        return ("val_mean_iou", "max")

    def baseline_predictions(
        self, samples: Sequence[Mapping[str, Any]], prior: Optional[np.ndarray]
    ) -> np.ndarray:
        """The majority class of the training pixels, everywhere."""
        import numpy as np

        height, width = np.asarray(samples[0]["target"]).shape
        scores = np.zeros((len(samples), len(prior), height, width))
        scores[:, int(np.argmax(prior))] = 1.0
        return scores
