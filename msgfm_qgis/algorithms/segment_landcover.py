"""msgfm:segmentlandcover — a land-cover class for every pixel of a raster layer."""

from __future__ import annotations

from .class_maps import ClassMapAlgorithm
from .inference_base import input_roles


class SegmentLandCoverAlgorithm(ClassMapAlgorithm):
    NAME = "segmentlandcover"
    DISPLAY_NAME = "Segment land cover"
    TASK = "segmentation"
    ROLES = input_roles("elevation beside RGB")
    OUTPUT_LABEL = "Land cover"
    HELP = (
        "Classifies every pixel of a raster layer into land-cover classes with an msGFM "
        "segmentation model (.onnx).\n\n"
        "<b>Input raster layer</b>: the imagery the model was trained on (see msGFM > Model "
        "information for its sensor, bands and resolution). The output takes this layer's grid: "
        "same CRS, pixel size, extent and nodata.\n"
        "<b>Bands</b>: the layer's bands in the order the model lists them. Leave empty when the "
        "layer has exactly the model's bands in that order, or when its band descriptions name "
        "them (e.g. B02, B03...).\n"
        "<b>Second sensor layer</b>: only for models with two inputs (e.g. a DSM beside RGB); it "
        "is reprojected and resampled onto the first layer's grid on the fly.\n"
        "<b>msGFM model</b>: empty uses the bundled land-cover model.\n\n"
        "<b>Outputs</b>: a class raster (uint8) that loads with the model's class names and "
        "colours, and optionally the per-class probabilities (one band per class).\n\n"
        "Nodata pixels of the inputs stay nodata in the output; if the whole layer is nodata a "
        "warning is logged and the output is all nodata.\n\n"
        "<b>Tips</b>: the image is processed in overlapping tiles that are blended, so no seams "
        "appear; raise the batch size on a GPU, lower it if memory runs short. The advanced "
        "'Run the model' option runs the model in a separate Python process (set it with "
        "the QGIS setting msgfm/worker_python)."
    )
