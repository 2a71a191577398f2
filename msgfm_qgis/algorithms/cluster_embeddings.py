"""msgfm:clusterembeddings — an unsupervised map: pixels grouped by what the encoder sees."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Dict

from qgis.core import QgsProcessingParameterRasterDestination

from ..styling import apply_on_load, class_style
from .base import integer_parameter
from .embeddings_base import EmbeddingToolAlgorithm


class ClusterEmbeddingsAlgorithm(EmbeddingToolAlgorithm):
    NAME = "clusterembeddings"
    DISPLAY_NAME = "Cluster embeddings"
    CLUSTERS = "CLUSTERS"
    HELP = (
        "Groups the pixels of an image into clusters of places that the msGFM encoder describes "
        "alike: an unsupervised first map, with no labels at all.\n\n"
        "<b>Input raster layer</b> and <b>Bands</b>: an image of a sensor msGFM knows; the "
        "bundled embedding model for its sensor is chosen from its bands when one ships (see "
        "<b>Bundled models</b> below); without one, choose an embedding model exported by "
        "<code>msgfm export</code> under Advanced, or the run stops before any work.\n"
        "<b>Number of clusters</b>: how many groups (2-254).\n"
        "<b>Random seed</b>: the same seed gives the same clusters.\n\n"
        "<b>Clusters</b>: a paletted raster at the input's resolution, clusters numbered 1, 2, ... "
        "from the largest. Clusters are groups, not classes: name them by looking at them.\n\n"
        "How: mini-batch k-means (k-means++ start) on a seeded sample of pixels' features (the "
        "embedding interpolated at the pixel plus its own bands, each half weighted equally), then "
        "every pixel goes to its nearest centre."
    )

    def initOutputs(self) -> None:
        self.addParameter(
            integer_parameter(
                self.CLUSTERS,
                self.tr("Number of clusters"),
                8,
                minimum=2,
                maximum=254,
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Clusters")))
        self.add_seed()

    def run_tool(self, parameters, context, feedback, staging, copies) -> Dict:
        from backend.embedtools import maps

        embedded, _, metadata = self.embed_input(parameters, context, feedback, staging, copies)
        with ExitStack() as stack:
            features = self.features(embedded, metadata, stack)
            written, classes = maps.cluster_map(
                features,
                self.parameterAsInt(parameters, self.CLUSTERS, context),
                self.destination(parameters, self.OUTPUT, context),
                seed=self.parameterAsInt(parameters, self.SEED, context),
                progress=self.progress(feedback),
                cancel=self.cancel_token(feedback),
            )
        apply_on_load(context, str(written[0]), class_style(classes))
        return {self.OUTPUT: str(written[0])}
