"""Scene classification: one label (softmax) or several (sigmoid) per tile."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:
    import numpy as np

from .base import ClassTask


class Classification(ClassTask):
    name = "classification"
    scene_level = True
    multilabel_capable = True
    head = "classification"

    def monitor(self, multilabel: bool) -> Tuple[str, str]:
        return ("val_map_micro", "max") if multilabel else ("val_overall_accuracy", "max")

    def baseline_predictions(
        self, samples: Sequence[Mapping[str, Any]], prior: Optional[np.ndarray]
    ) -> np.ndarray:
        """The class prior of the training samples, for every scene."""
        import numpy as np

        return np.repeat(prior[None, :], len(samples), axis=0)
