"""msgfm:classifyscenes — one scene class per window of a raster layer."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List

from qgis.core import QgsProcessingException, QgsProcessingParameterVectorDestination

from ..styling import apply_on_load, scene_windows_style
from .base import optional_output
from .class_maps import ClassMapAlgorithm, grid_path
from .inference_base import RunPlan, first_output, input_roles


class ClassifyScenesAlgorithm(ClassMapAlgorithm):
    NAME = "classifyscenes"
    DISPLAY_NAME = "Classify scenes"
    TASK = "classification"
    ROLES = input_roles("SAR beside Sentinel-2")
    GRID = "GRID"
    OUTPUT_LABEL = "Scene classes (one cell per window)"
    PROBABILITIES_LABEL = "Scene class probabilities (one cell per window)"
    LAYER_NAME = "Scene classes"
    PROBABILITIES_LAYER_NAME = "Scene probabilities"
    HELP = (
        "Labels the scenes of a raster layer: the layer is cut into square windows (the model's "
        "tile size, e.g. 120 px of Sentinel-2 = 1.2 km) and an msGFM scene-classification model "
        "gives each window its classes (e.g. BigEarthNet land-cover labels).\n\n"
        "<b>Input raster layer</b> and <b>Bands</b>: the imagery and its bands in the model's "
        "order (see msGFM > Model information); leave the bands empty when the layer has exactly "
        "the model's bands, or when its band descriptions name them.\n"
        "<b>Second sensor layer</b>: only for models with two inputs (e.g. SAR beside "
        "Sentinel-2).\n"
        "<b>msGFM model</b>: empty uses the bundled scene-classification model.\n\n"
        "<b>Outputs</b>: a coarse class raster with one cell per window (the most probable "
        "class, styled with the model's class names and colours), optionally the probabilities "
        "of every class per window, and optionally a polygon layer of the windows with their "
        "top classes and probabilities as fields (top1, top1_prob...) to filter and label.\n\n"
        "<b>Tips</b>: the tile size (advanced) sets the window size; keep the model's unless you "
        "know it was trained on other sizes. Windows that are all nodata are left out."
    )

    def initOutputs(self) -> None:
        super().initOutputs()
        self.addParameter(
            optional_output(
                QgsProcessingParameterVectorDestination,
                self.GRID,
                self.tr("Scene windows with their top classes"),
            )
        )

    def prepare_job(self, plan: RunPlan, staging: Path, parameters, context) -> None:
        target = self.parameterAsOutputLayer(parameters, self.GRID, context)
        if not target:
            return
        if Path(target).suffix.lower() != ".gpkg":
            raise QgsProcessingException(
                self.tr(
                    "msGFM writes the scene windows as a GeoPackage: choose a .gpkg file "
                    "for 'Scene windows' instead of {}"
                ).format(Path(target).name)
            )
        index = first_output(plan.metadata, ("probability",))
        if index is None or plan.metadata.outputs[index].stride < plan.metadata.tile_size:
            raise QgsProcessingException(
                self.tr(
                    "The model '{}' has no per-window probability output, so it cannot "
                    "write the scene windows layer; leave 'Scene windows' empty"
                ).format(plan.metadata.model_name)
            )
        plan.job.scene_grid = grid_path(staging)

    def deliver(self, plan: RunPlan, written: List[str], parameters, context, feedback) -> Dict:
        results = super().deliver(plan, written, parameters, context, feedback)
        target = self.parameterAsOutputLayer(parameters, self.GRID, context)
        if target and plan.job.scene_grid:
            shutil.move(written[-1], target)
            results[self.GRID] = target
            spec = plan.metadata.outputs[first_output(plan.metadata, ("probability",))]
            # See-through polygons over the (opaque) scene-class raster: both show.
            apply_on_load(
                context, target, scene_windows_style(spec.classes), name="Scene windows", rank=-1
            )
        return results
