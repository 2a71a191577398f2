"""msgfm:extractembeddings — the foundation model's features as a multiband raster."""

from __future__ import annotations

from .inference_base import LayerRole
from .raster_outputs import RasterOutputAlgorithm


class ExtractEmbeddingsAlgorithm(RasterOutputAlgorithm):
    NAME = "extractembeddings"
    DISPLAY_NAME = "Extract embeddings"
    TASK = "embedding"
    OUTPUT_KIND = "embedding"
    OUTPUT_LABEL = "Embeddings"
    ROLES = (
        LayerRole("INPUT", "Input raster layer", "BANDS", "Bands"),
        LayerRole(
            "SECOND_INPUT",
            "Second sensor layer (models with two inputs)",
            "SECOND_BANDS",
            "Bands of the second sensor layer",
            optional=True,
        ),
    )
    HELP = (
        "Computes the msGFM encoder's features (embeddings) of a raster layer: a multiband raster "
        "with one band per feature, at the encoder's output resolution (e.g. one cell per 32 x 32 "
        "input pixels).\n\n"
        "Use the embeddings as inputs to your own classifications (e.g. Random Forest on the "
        "bands), for clustering (k-means) or for similarity search between places.\n\n"
        "<b>Input raster layer</b> and <b>Bands</b>: any sensor the model knows (RGB, Sentinel-2, "
        "SAR, elevation), bands in the model's order (see msGFM > Model information); leave the "
        "bands empty when the layer has exactly the model's bands.\n"
        "<b>Second sensor layer</b>: only for models with two inputs.\n"
        "<b>msGFM model</b>: empty uses the bundled embedding model.\n\n"
        "<b>Output</b>: a float32 raster aligned with the input layer (same CRS and origin, "
        "pixels larger by the model's stride), loaded with the first three features as red, "
        "green and blue.\n\n"
        "<b>Tips</b>: overlapping tiles are blended, so features change smoothly across tile "
        "borders; nodata areas stay nodata."
    )
