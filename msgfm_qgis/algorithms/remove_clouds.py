"""msgfm:removeclouds — cloud-free Sentinel-2 reflectance from a cloudy scene, with or without SAR."""

from __future__ import annotations

from typing import Any, Dict, List

from qgis.core import QgsProcessingOutputString

from .inference_base import LayerRole, RunPlan
from .raster_outputs import RasterOutputAlgorithm


class RemoveCloudsAlgorithm(RasterOutputAlgorithm):
    NAME = "removeclouds"
    DISPLAY_NAME = "Remove clouds"
    TASK = "cloud-removal"
    OUTPUT_KIND = "reflectance"
    OUTPUT_LABEL = "Cloud-free reflectance"
    RUN_MODE = "RUN_MODE"
    ROLES = (
        LayerRole("S2", "Cloudy Sentinel-2 layer", "S2_BANDS", "Sentinel-2 bands", sensor="s2"),
        LayerRole(
            "SAR",
            "SAR layer (Sentinel-1 VV, VH in dB; empty: Sentinel-2 only, for models trained so)",
            "SAR_BANDS",
            "SAR bands",
            "sar",
            optional=True,
        ),
    )
    HELP = (
        "Predicts cloud-free Sentinel-2 reflectance under clouds and their shadows with an msGFM "
        "cloud-removal model (.onnx), guided by a Sentinel-1 SAR scene of the same place when "
        "you have one (radar sees through clouds).\n\n"
        "<b>Cloudy Sentinel-2 layer</b>: surface reflectance x 10000 (L2A: the bundled model "
        "expects L2A and refuses an input known to be L1C, top of atmosphere: a SENTINEL2_L1C "
        "product or layer, PROCESSING_LEVEL metadata, a B10 band or MSIL1C / L1C in the file "
        "name; Run anyway runs it, marked out of domain). The output takes this layer's grid, "
        "CRS and nodata.\n"
        "<b>Sentinel-2 bands</b>: B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12 in this order "
        "(or whatever the model lists). Leave empty when the layer has exactly these bands in "
        "order, or when its band descriptions name them.\n"
        "<b>SAR layer</b>: Sentinel-1 backscatter sigma0 in dB, bands VV and VH, acquired close "
        "in time. It may have another CRS or pixel size: it is warped onto the Sentinel-2 grid "
        "on the fly. It must overlap the Sentinel-2 layer.\n"
        "<b>Without a SAR layer</b> (leave it empty): only for a model trained with Sentinel-2 "
        "patches that had no SAR partner (Model information lists its SAR input as optional; "
        "other models refuse to run). The model is fed what its training fed those patches. "
        "Use it where no Sentinel-1 scene of the date exists: it keeps the clear pixels and "
        "fills thin clouds and haze from the surrounding bands, but it cannot see under thick "
        "clouds, where SAR is what tells the model the ground; with a SAR scene of the date, "
        "give it. The log, the result's Run mode and the output's metadata say which mode ran.\n"
        "<b>msGFM model</b>: empty uses the bundled cloud-removal model.\n\n"
        "<b>Output</b>: reflectance in the Sentinel-2 units and data type (uint16 reflectance x "
        "10000 for a uint16 layer, as Sentinel-2 products store it, rounded to whole units; a "
        "float layer gives float32), one band per model band, loaded as a true-colour image "
        "(B04, B03, B02).\n\n"
        "<b>Tips</b>: check the model's bands with msGFM > Model information; nodata pixels of "
        "either layer stay nodata."
    )

    def initOutputs(self) -> None:
        super().initOutputs()
        self.addOutput(QgsProcessingOutputString(self.RUN_MODE, self.tr("Run mode")))

    def missing_layer_message(self, role: LayerRole, spec: Any, metadata: Any) -> str:
        if role.sensor != "sar":
            return super().missing_layer_message(role, spec, metadata)
        return self.tr(
            "The SAR layer is empty, but the model '{}' was not trained with Sentinel-2 samples "
            "without SAR, so it cannot remove clouds without one. Choose a Sentinel-1 VV/VH layer "
            "in '{}', or a cloud-removal model trained with S2-only samples (msGFM > Model "
            "information lists its SAR input as optional)"
        ).format(metadata.model_name, self.tr(role.layer_label))

    def layer_name(self, plan: RunPlan) -> str:
        if with_sar(plan):
            return super().layer_name(plan)
        return f"{self.OUTPUT_LABEL} (no SAR)"

    def deliver(self, plan: RunPlan, written: List[str], parameters, context, feedback) -> Dict:
        results = super().deliver(plan, written, parameters, context, feedback)
        mode = (
            self.tr("Sentinel-2 + SAR")
            if with_sar(plan)
            else self.tr(
                "Sentinel-2 only (no SAR layer: the model ran as trained on S2 patches without SAR)"
            )
        )
        feedback.pushInfo(self.tr("Run mode: {}").format(mode))
        results[self.RUN_MODE] = mode
        return results


def with_sar(plan: RunPlan) -> bool:
    """Whether the run was given a SAR layer."""
    return any(spec.sensor == "sar" for _, _, spec in plan.inputs)
