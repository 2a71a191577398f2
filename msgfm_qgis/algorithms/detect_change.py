"""msgfm:detectchange — where two dates of one sensor differ in what the encoder sees."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, Dict

from qgis.core import (
    QgsProcessingParameterRasterDestination,
)

from ..layers import raster_file
from ..model_checks import check_overlap, choose_bands
from ..styling import NOT_DRAWN, PalettedClasses, apply_on_load
from .base import decimal_parameter, optional_output
from .embeddings_base import EmbeddingToolAlgorithm, style_score
from .inference_base import LayerRole

# Between a 10 % brighter scene's 95th percentile (0.018) and a pasted block's median (0.045),
# measured with the bundled S2 model by scripts/embedtools_measure.py.
DEFAULT_THRESHOLD = 0.03
MASK_OPACITY = 0.75  # the change mask over the imagery: the changed places stay readable


class DetectChangeAlgorithm(EmbeddingToolAlgorithm):
    NAME = "detectchange"
    DISPLAY_NAME = "Detect change"
    ROLES = (
        LayerRole("BEFORE", "Before (the earlier image)", "BANDS", "Bands"),
        LayerRole(
            "AFTER",
            "After (the later image, same sensor)",
            "AFTER_BANDS",
            "Bands of the later image (empty: as for the earlier one)",
        ),
    )
    THRESHOLD = "THRESHOLD"
    OUTPUT_MASK = "OUTPUT_MASK"
    STEPS = 3  # the encoder on each date, then the map
    HELP = (
        "Scores, per pixel, how much a place changed between two images of the same sensor: the "
        "distance between what the msGFM encoder sees there on each date, from 0 (alike) to 1 "
        "(opposite). The distance is the cosine distance for distinctive places; for places close "
        "to the scene's average, whose direction is mostly noise, it is the distance relative to "
        "the scene's spread (plain cosine flags them at the slightest brightness difference).\n\n"
        "<b>Before</b> and <b>After</b>: two images of one sensor (e.g. two Sentinel-2 dates). "
        "The later image is resampled onto the earlier one's grid when they differ; the output "
        "has the earlier image's grid. The encoder runs on both: the bundled embedding model of "
        "their sensor when one ships (see <b>Bundled models</b> below), else an embedding model "
        "exported by <code>msgfm export</code> chosen under Advanced; without one the run stops "
        "before any work.\n"
        "<b>Threshold</b> and <b>Change mask</b> (optional): pixels scoring above the threshold "
        "are 1 in the mask, others 0. The default 0.03 lies, for the lite Sentinel-2 model, "
        "between the scores of a scene made 10 % brighter (95 % of pixels below 0.018) and of a "
        "block of another land cover pasted in (median 0.045).\n\n"
        "<b>What it can tell</b>: a place that now looks like another kind of place (a field "
        "built over, a forest cleared, a flooded meadow), at the scale of the encoder's cells (32 x 32 "
        "pixels for the bundled models), interpolated to pixels. Each date is centred on its own scene average, so a "
        "change that shifts the whole scene (haze, illumination, calibration, a greener season "
        "everywhere) scores low.\n"
        "<b>What it cannot tell</b>: why a place changed, or changes smaller than a few pixels; "
        "clouds, cloud shadows and snow on one date are changes to it (mask them to nodata "
        "first); a season that affects only some land covers (crops greening up) does score. "
        "The score is a ranking: set the threshold by looking at known changes.\n\n"
        "<b>Weight of the pixel's own bands</b> (advanced): 0 (default) compares embeddings "
        "only; above 0 adds each pixel's own bands, which sharpens edges but also reacts to "
        "radiometric differences."
    )

    def initOutputs(self) -> None:
        self.addParameter(
            decimal_parameter(
                self.THRESHOLD,
                self.tr("Threshold of the change mask (score 0-1)"),
                DEFAULT_THRESHOLD,
                minimum=0.0,
                maximum=1.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Change score"))
        )
        self.addParameter(
            optional_output(
                QgsProcessingParameterRasterDestination, self.OUTPUT_MASK, self.tr("Change mask")
            )
        )
        self.add_band_weight(0.0)
        self.add_seed()

    def run_tool(self, parameters, context, feedback, staging, copies) -> Dict:
        from backend.embedtools import alignment, maps

        before_role, after_role = self.ROLES
        before = self.parameterAsRasterLayer(parameters, before_role.layer_param, context)
        after = self.parameterAsRasterLayer(parameters, after_role.layer_param, context)
        check_overlap(before, before_role.layer_label, after, after_role.layer_label, context)
        chosen = self.parameterAsInts(parameters, before_role.bands_param, context)
        model = self.model_for(parameters, context, before, chosen, feedback)
        metadata = model[1]
        spec = metadata.inputs[0]
        anyway = self.run_anyway(parameters, context)
        before_bands = self.layer_bands(before_role, before, spec, parameters, context)
        after_chosen = self.parameterAsInts(parameters, after_role.bands_param, context)
        if not after_chosen and chosen and after.bandCount() >= max(chosen):
            after_chosen = chosen
        after_bands = choose_bands(
            after, after_chosen, spec, after_role.bands_label, run_anyway=anyway
        )
        before_path = raster_file(before, copies, context, before_role.layer_label)
        after_path = raster_file(after, copies, context, after_role.layer_label)
        if not alignment.same_grid(before_path, after_path):
            feedback.pushInfo(
                f"'{after.name()}' is resampled (bilinear) onto the grid of '{before.name()}'"
            )
            after_path = str(
                alignment.warp_onto(after_path, after_bands, before_path, staging / "after.tif")
            )
            after_bands = list(range(1, len(after_bands) + 1))
        embedded: Dict[str, Any] = {}
        for step, (role, layer, path, bands) in enumerate(
            (
                (before_role, before, before_path, before_bands),
                (after_role, after, after_path, after_bands),
            )
        ):
            feedback.setCurrentStep(step)
            embedded[role.layer_param] = self.embed(
                role, layer, model, parameters, context, feedback, staging, copies, path, bands
            )
        feedback.setCurrentStep(2)
        threshold = self.parameterAsDouble(parameters, self.THRESHOLD, context)
        mask = None
        if self.parameterAsOutputLayer(parameters, self.OUTPUT_MASK, context):
            mask = self.destination(parameters, self.OUTPUT_MASK, context)
        with ExitStack() as stack:
            weight = self.parameterAsDouble(parameters, self.BAND_WEIGHT, context)
            first = self.features(embedded["BEFORE"], metadata, stack, weight > 0)
            second = self.features(embedded["AFTER"], metadata, stack, weight > 0)
            written = maps.change_map(
                first,
                second,
                self.destination(parameters, self.OUTPUT, context),
                threshold,
                mask,
                weight,
                self.parameterAsInt(parameters, self.SEED, context),
                self.progress(feedback),
                self.cancel_token(feedback),
            )
        results = {self.OUTPUT: str(written[0])}
        # Changes are rare: from no change to the top half percent of the scores.
        style_score(context, results[self.OUTPUT], "Reds", 0.0, 0.995, rank=1)
        if mask is not None:
            results[self.OUTPUT_MASK] = str(written[1])
            # Over the score and the imagery: only the changes are drawn, and see-through.
            apply_on_load(
                context,
                results[self.OUTPUT_MASK],
                PalettedClasses(
                    [(0, "no change", NOT_DRAWN), (1, "change", "#d7191c")], MASK_OPACITY
                ),
            )
        return results
