"""msgfm:pansharpen — high-resolution multispectral imagery from a panchromatic and an MS layer."""

from __future__ import annotations

from .inference_base import LayerRole
from .raster_outputs import RasterOutputAlgorithm


class PansharpenAlgorithm(RasterOutputAlgorithm):
    NAME = "pansharpen"
    DISPLAY_NAME = "Pan-sharpen"
    TASK = "pansharpening"
    OUTPUT_KIND = "reflectance"
    OUTPUT_LABEL = "Pan-sharpened multispectral"
    LAYER_NAME = "Pan-sharpened"
    ROLES = (
        LayerRole(
            "PAN", "Panchromatic layer (high resolution)", "PAN_BANDS", "Panchromatic band", "pan"
        ),
        LayerRole("MS", "Multispectral layer (low resolution)", "MS_BANDS", "Multispectral bands"),
    )
    HELP = (
        "Sharpens a multispectral image to the resolution of a panchromatic image of the same "
        "scene with an msGFM pan-sharpening model (.onnx).\n\n"
        "<b>Panchromatic layer</b>: the high-resolution single-band image; the output takes its "
        "grid (pixel size, extent, CRS) and nodata.\n"
        "<b>Multispectral layer</b>: the low-resolution image (e.g. 4 bands at twice the "
        "panchromatic pixel size). It is resampled onto the panchromatic grid on the fly, also "
        "from another CRS; it must overlap the panchromatic layer.\n"
        "<b>Multispectral bands</b>: in the order the model lists them (see msGFM > Model "
        "information); leave empty when the layer has exactly these bands.\n"
        "<b>msGFM model</b>: empty uses the bundled pan-sharpening model.\n\n"
        "<b>Output</b>: the multispectral bands at panchromatic resolution, in the "
        "multispectral layer's units and data type (integers rounded), loaded as a colour "
        "image.\n\n"
        "<b>Tips</b>: use a pan/MS pair from the same acquisition; the resolution ratio should be "
        "the one the model was trained on (typically 2 or 4)."
    )
