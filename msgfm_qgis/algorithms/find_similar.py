"""msgfm:findsimilar — how much each place looks like reference places, 0 to 1."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Dict

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterRasterDestination,
)

from .embeddings_base import EmbeddingToolAlgorithm, style_score


class FindSimilarAlgorithm(EmbeddingToolAlgorithm):
    NAME = "findsimilar"
    DISPLAY_NAME = "Find similar places"
    REFERENCE = "REFERENCE"
    HELP = (
        "Scores every pixel by how much it looks like the places you point at, from 0 (least "
        "alike) to 1 (most alike), using the msGFM encoder's description of each place.\n\n"
        "<b>Input raster layer</b> and <b>Bands</b>: an image of a sensor msGFM knows; the "
        "bundled embedding model for its sensor is chosen from its bands when one ships (see "
        "<b>Bundled models</b> below); without one, choose an embedding model exported by "
        "<code>msgfm export</code> under Advanced, or the run stops before any work.\n"
        "<b>Reference places</b>: points or polygons on the kind of place you look for (a "
        "quarry, a greenhouse, a flooded field). Each one is a reference; a pixel's score is its "
        "similarity to the closest reference, so references of different looks can be mixed.\n\n"
        "<b>Similarity</b>: a float raster at the input's resolution, (1 + cosine) / 2 of the "
        "pixel's features and the reference's, after both are centred on the scene's mean (what "
        "counts is how a place differs from the scene as a whole). Threshold it or sort by it.\n\n"
        "<b>Weight of the pixel's own bands</b> (advanced): 1 weighs the embedding and the "
        "pixel's own bands equally, 0 uses the embedding only (smoother, blind to boundaries "
        "within 32-pixel cells)."
    )

    def initOutputs(self) -> None:
        self.add_examples(self.REFERENCE, self.tr("Reference places (points or polygons)"))
        self.addParameter(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Similarity"))
        )
        self.add_band_weight(1.0)
        self.add_seed()

    def run_tool(self, parameters, context, feedback, staging, copies) -> Dict:
        from backend.embedtools import examples as examples_module
        from backend.embedtools import maps

        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        references = self.examples(parameters, self.REFERENCE, None, layer.crs(), context, feedback)
        embedded, _, metadata = self.embed_input(parameters, context, feedback, staging, copies)
        seed = self.parameterAsInt(parameters, self.SEED, context)
        with ExitStack() as stack:
            features = self.features(embedded, metadata, stack)
            pixels = examples_module.example_pixels(references, features.grid, seed=seed)
            vectors, missing = maps.mean_features(features, pixels)
            if missing:
                feedback.pushWarning(
                    f"{len(missing)} reference(s) lie outside the raster or on nodata and are "
                    f"left out (feature ids {', '.join(missing[:20])})"
                )
            if len(vectors) == 0:
                raise QgsProcessingException(
                    self.tr(
                        "No reference place lies on valid pixels of the input raster: "
                        "put references inside the image"
                    )
                )
            feedback.pushInfo(f"{len(vectors)} reference place(s)")
            written = maps.similarity_map(
                features,
                vectors,
                self.destination(parameters, self.OUTPUT, context),
                self.parameterAsDouble(parameters, self.BAND_WEIGHT, context),
                seed,
                self.progress(feedback),
                self.cancel_token(feedback),
            )
        style_score(context, str(written[0]), "Viridis")
        return {self.OUTPUT: str(written[0])}
