"""Outputs of the algorithms whose result is one multiband raster (reflectance, embeddings)."""

from __future__ import annotations

from typing import Any, Dict, List

from qgis.core import QgsProcessingException, QgsProcessingParameterRasterDestination

from ..model_checks import TASK_NAMES
from ..styling import apply_on_load, multiband_style
from .inference_base import ModelInferenceAlgorithm, RunPlan, first_output, move_raster


def band_summary(bands: List[str], shown: int = 12) -> str:
    """The band names, or the first and last few of many (an embedding has hundreds)."""
    if len(bands) <= shown:
        return ", ".join(bands)
    return f"{', '.join(bands[:3])}, ..., {', '.join(bands[-2:])} ({len(bands)} bands)"


class RasterOutputAlgorithm(ModelInferenceAlgorithm):
    """Writes the model's first output of kind ``OUTPUT_KIND`` to ``OUTPUT``, styled in colour."""

    OUTPUT_KIND = "reflectance"

    def initOutputs(self) -> None:
        self.addParameter(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr(self.OUTPUT_LABEL))
        )

    def check_outputs(self, metadata: Any) -> None:
        if first_output(metadata, (self.OUTPUT_KIND,)) is None:
            raise QgsProcessingException(
                self.tr("The model '{}' has no {} output; choose a {} model").format(
                    metadata.model_name, self.OUTPUT_KIND, TASK_NAMES[self.TASK]
                )
            )

    def deliver(self, plan: RunPlan, written: List[str], parameters, context, feedback) -> Dict:
        index = first_output(plan.metadata, (self.OUTPUT_KIND,))
        spec = plan.metadata.outputs[index]
        path = move_raster(written[index], self.destination(parameters, self.OUTPUT, context))
        feedback.pushInfo(f"Output bands: {band_summary(spec.bands)}")
        apply_on_load(context, path, multiband_style(spec.bands), name=self.layer_name(plan))
        return {self.OUTPUT: path}
