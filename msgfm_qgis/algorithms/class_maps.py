"""Outputs of the class-map algorithms (land-cover segmentation, scene classification).

The main output is a paletted class raster. A model may output class scores (written as classes by
the engine) or per-class probabilities (their argmax becomes the class raster here); the
probabilities themselves are an optional second output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from qgis.core import QgsProcessingException, QgsProcessingParameterRasterDestination

from ..class_raster import write_class_raster
from ..styling import apply_on_load, class_style
from .base import optional_output
from .inference_base import ModelInferenceAlgorithm, RunPlan, first_output, move_raster


class ClassMapAlgorithm(ModelInferenceAlgorithm):
    """Writes a class raster (``OUTPUT``) and optionally the probabilities (``PROBABILITIES``)."""

    PROBABILITIES = "PROBABILITIES"
    OUTPUT_LABEL = "Classes"
    PROBABILITIES_LABEL = "Class probabilities"
    # The probabilities' name in the Layers panel: short enough to be read whole.
    PROBABILITIES_LAYER_NAME = "Probabilities"

    def initOutputs(self) -> None:
        self.addParameter(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr(self.OUTPUT_LABEL))
        )
        self.addParameter(
            optional_output(
                QgsProcessingParameterRasterDestination,
                self.PROBABILITIES,
                self.tr(self.PROBABILITIES_LABEL),
            )
        )

    def check_outputs(self, metadata: Any) -> None:
        if first_output(metadata, ("class", "probability")) is None:
            raise QgsProcessingException(
                self.tr(
                    "The model '{}' has no class or probability output, so it cannot "
                    "make a class map; choose a model trained for this task"
                ).format(metadata.model_name)
            )

    def deliver(self, plan: RunPlan, written: List[str], parameters, context, feedback) -> Dict:
        metadata = plan.metadata
        classes_index = first_output(metadata, ("class", "probability"))
        spec = metadata.outputs[classes_index]
        destination = self.destination(parameters, self.OUTPUT, context)
        results: Dict[str, Any] = {}
        if spec.kind == "class":
            results[self.OUTPUT] = move_raster(written[classes_index], destination)
        else:
            results[self.OUTPUT] = write_class_raster(
                written[classes_index], str(destination), spec.classes
            )
        apply_on_load(
            context,
            results[self.OUTPUT],
            class_style(spec.classes),
            name=self.layer_name(plan),
        )
        feedback.pushInfo(f"Classes: {', '.join(f'{c.value} {c.name}' for c in spec.classes)}")
        if self.parameterAsOutputLayer(parameters, self.PROBABILITIES, context):
            probability_index = first_output(metadata, ("probability",))
            if probability_index is None:
                feedback.pushWarning(
                    f"The model '{metadata.model_name}' outputs classes only: no probabilities "
                    "are written"
                )
            else:
                target = self.destination(parameters, self.PROBABILITIES, context)
                results[self.PROBABILITIES] = move_raster(written[probability_index], target)
                # Under the classes and hidden: opaque, it would hide them and the imagery.
                apply_on_load(
                    context,
                    str(target),
                    name=self.PROBABILITIES_LAYER_NAME,
                    visible=False,
                    rank=1,
                )
        return results


def grid_path(staging: Path) -> str:
    return str(staging / "scenes.gpkg")
