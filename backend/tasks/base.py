"""The :class:`Task` base class: what every downstream task declares once.

A task says what its model outputs (classes per scene or per pixel, or a corrected image of a
target sensor), which head and loss train it, which validation score picks its checkpoint, what
its trivial baseline predicts, how raw model outputs become scores, and how it is exported
(overlap of inference tiles, stride of its class output). Everything else in the backend asks the
registry (:func:`backend.tasks.get_task`) instead of comparing task names.

No torch, and numpy only inside methods: the plugin imports the registry when it registers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:
    import numpy as np


class Task:
    """One downstream task. Subclasses set the attributes and override the hooks they change.

    Attributes:
        name: The task's name in specs, metadata, files and the command line.
        has_classes: Outputs classes (logits) rather than an image.
        scene_level: One output per tile (scene classification), not per pixel.
        min_classes: Fewest classes a model of this task can have.
        multilabel_capable: Scenes may carry several labels (sigmoid + BCE).
        head: Head of the task model (:data:`backend.models.tasks.HEADS`).
        target_sensor: Image tasks: the sensor whose image the model corrects (an input).
        data_range: Image tasks: PSNR/SSIM range of the target sensor's values.
        ergas_ratio: Image tasks: the resolution ratio ERGAS is computed with (None: 1).
        label_layout: How a class raster becomes training samples (plugin's finetune).
        exported: A model of this task can be finetuned and exported (not the encoder's
            embedding, which pretraining exports).
    """

    name: str = ""
    has_classes: bool = False
    scene_level: bool = False
    min_classes: int = 1
    multilabel_capable: bool = False
    head: str = ""
    target_sensor: Optional[str] = None
    data_range: float = 1.0
    ergas_ratio: Optional[float] = None
    label_layout: Optional[str] = None
    exported: bool = True

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def image_sensors(self, sensors: Sequence[str], dataset: Any) -> Tuple[List[str], str]:
        """Image tasks: the model's input sensors (target first) and target sensor for a dataset
        whose samples carry ``sensors``."""
        target = str(self.target_sensor)
        return [target, *[s for s in sensors if s != target]], target

    def missing_input_advice(self, sensors: Sequence[str], missing: Sequence[str]) -> str:
        """What to do when a model of this task with inputs ``sensors`` is run without its
        ``missing`` ones: a sentence added to the engine's refusal ("" when none)."""
        return ""

    def monitor(self, multilabel: bool) -> Tuple[str, str]:
        """The validation score that picks the best checkpoint: ``(name, "max" | "min")``."""
        return ("val_mae", "min")

    def export_overlap(self, default: float) -> float:
        """Overlap of inference tiles as a fraction of the tile (scene models: none)."""
        return 0.0 if self.scene_level else default

    def class_stride(self, image_size: int) -> int:
        """Pixels per value of the class output (a whole tile for scene models)."""
        return image_size if self.scene_level else 1

    def scores_from_output(
        self, multilabel: bool, output: np.ndarray, target_stats: Mapping[str, Any]
    ) -> np.ndarray:
        """Image tasks: the target sensor's units from normalised output values."""
        import numpy as np

        output = np.asarray(output, dtype=np.float64)
        mean = np.asarray(target_stats["mean"], dtype=np.float64).reshape(1, -1, 1, 1)
        std = np.asarray(target_stats["std"], dtype=np.float64).reshape(1, -1, 1, 1)
        return output * std + mean

    def baseline_predictions(
        self, samples: Sequence[Mapping[str, Any]], prior: Optional[np.ndarray]
    ) -> np.ndarray:
        """Image tasks: the input image of the target sensor itself (nothing corrected)."""
        import numpy as np

        return np.stack(
            [
                np.asarray(s["inputs"][s.get("target_sensor", self.target_sensor)], np.float64)
                for s in samples
            ]
        )


class ClassTask(Task):
    """A task whose model outputs class logits (per scene or per pixel)."""

    has_classes = True
    label_layout = "majority-tiles"

    def scores_from_output(
        self, multilabel: bool, output: np.ndarray, target_stats: Mapping[str, Any]
    ) -> np.ndarray:
        """Probabilities from logits: sigmoid for multi-label scenes, else softmax over classes."""
        import numpy as np

        output = np.asarray(output, dtype=np.float64)
        if multilabel:
            return 1.0 / (1.0 + np.exp(-output))
        shifted = np.exp(output - output.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
