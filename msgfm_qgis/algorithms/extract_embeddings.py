"""msgfm:extractembeddings — the foundation model's features as a multiband raster."""

from __future__ import annotations

from typing import Dict, List

from qgis.core import QgsProcessingParameterRasterDestination

from ..styling import MultiBandColor, apply_on_load
from .inference_base import RunPlan, input_roles
from .raster_outputs import RasterOutputAlgorithm


class ExtractEmbeddingsAlgorithm(RasterOutputAlgorithm):
    NAME = "extractembeddings"
    DISPLAY_NAME = "Extract embeddings"
    TASK = "embedding"
    OUTPUT_KIND = "embedding"
    OUTPUT_LABEL = "Embeddings"
    ROLES = input_roles()
    MODEL_PER_SENSOR = True
    MODEL_LABEL = "msGFM model (.onnx; empty: the bundled model for the input's sensor)"
    HELP = (
        "Computes the msGFM encoder's features (embeddings) of a raster layer: a multiband raster "
        "with one band per feature, at the encoder's output resolution (e.g. one cell per 32 x 32 "
        "input pixels).\n\n"
        "Use the embeddings as inputs to your own classifications (e.g. Random Forest on the "
        "bands), for clustering (k-means) or for similarity search between places.\n\n"
        "<b>Input raster layer</b> and <b>Bands</b>: an image of a sensor msGFM knows (Sentinel-2, "
        "SAR, RGB, elevation, Landsat); the bundled embedding model for its sensor is chosen from "
        "its bands when one ships (see <b>Bundled models</b> below; or choose the sensor under "
        "Advanced, or a model exported by <code>msgfm export</code>). Bands go in the model's "
        "order (see msGFM > Model information); leave them empty when the layer has exactly the "
        "model's bands or names them.\n"
        "<b>Second sensor layer</b>: only for models with two inputs.\n"
        "<b>msGFM model</b>: empty picks the bundled model for the input's sensor; with no "
        "bundled embedding model the run stops before any work and says how to get one.\n\n"
        "<b>Output</b>: a float32 raster aligned with the input layer (same CRS and origin, "
        "pixels larger by the model's stride), loaded hidden under its preview.\n"
        "<b>Preview</b>: the embedding's first three principal components as red, green and "
        "blue: areas the model sees alike share a colour (leave it empty to skip it).\n\n"
        "<b>Tips</b>: overlapping tiles are blended, so features change smoothly across tile "
        "borders; nodata areas stay nodata."
    )

    PREVIEW = "PREVIEW"
    PREVIEW_LABEL = "Embedding preview (PCA)"

    def initOutputs(self) -> None:
        super().initOutputs()
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.PREVIEW,
                self.tr("Preview: first 3 principal components as colours"),
                optional=True,
                createByDefault=True,
            )
        )

    def deliver(self, plan: RunPlan, written: List[str], parameters, context, feedback) -> Dict:
        results = super().deliver(plan, written, parameters, context, feedback)
        embeddings = results[self.OUTPUT]
        # The many-band layer loads hidden; the preview shows what it holds.
        apply_on_load(context, embeddings, name=self.OUTPUT_LABEL, visible=False, rank=1)
        if not self.parameterAsOutputLayer(parameters, self.PREVIEW, context):
            return results
        target = self.destination(parameters, self.PREVIEW, context)
        from backend.inference import InferenceError
        from backend.inference import embedding_preview as preview

        try:
            preview.write_pca_preview(embeddings, target)
        except InferenceError as exc:
            feedback.pushWarning(f"No preview written: {exc}")
            return results
        feedback.pushInfo(f"Preview (principal components 1-3 as red, green, blue): {target}")
        apply_on_load(context, str(target), MultiBandColor(1, 2, 3), name=self.PREVIEW_LABEL)
        results[self.PREVIEW] = str(target)
        return results
