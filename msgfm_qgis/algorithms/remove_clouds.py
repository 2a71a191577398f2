"""msgfm:removeclouds — cloud-free Sentinel-2 reflectance from a cloudy scene and a SAR scene."""

from __future__ import annotations

from .inference_base import LayerRole
from .raster_outputs import RasterOutputAlgorithm


class RemoveCloudsAlgorithm(RasterOutputAlgorithm):
    NAME = "removeclouds"
    DISPLAY_NAME = "Remove clouds"
    TASK = "cloud-removal"
    OUTPUT_KIND = "reflectance"
    OUTPUT_LABEL = "Cloud-free reflectance"
    ROLES = (
        LayerRole("S2", "Cloudy Sentinel-2 layer", "S2_BANDS", "Sentinel-2 bands", sensor="s2"),
        LayerRole("SAR", "SAR layer (Sentinel-1 VV, VH in dB)", "SAR_BANDS", "SAR bands", "sar"),
    )
    HELP = (
        "Predicts cloud-free Sentinel-2 reflectance under clouds and their shadows, guided by a "
        "Sentinel-1 SAR scene of the same place (radar sees through clouds), with an msGFM "
        "cloud-removal model (.onnx).\n\n"
        "<b>Cloudy Sentinel-2 layer</b>: surface reflectance x 10000 (L2A; for a 13-band L1C stack "
        "B10 is left out by name). The output takes this layer's grid, CRS and nodata.\n"
        "<b>Sentinel-2 bands</b>: B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12 in this order "
        "(or whatever the model lists). Leave empty when the layer has exactly these bands in "
        "order, or when its band descriptions name them.\n"
        "<b>SAR layer</b>: Sentinel-1 backscatter sigma0 in dB, bands VV and VH, acquired close "
        "in time. It may have another CRS or pixel size: it is warped onto the Sentinel-2 grid "
        "on the fly. It must overlap the Sentinel-2 layer.\n"
        "<b>msGFM model</b>: empty uses the bundled cloud-removal model.\n\n"
        "<b>Output</b>: reflectance in the Sentinel-2 units, one band per model band, loaded as "
        "a true-colour image (B04, B03, B02).\n\n"
        "<b>Tips</b>: check the model's bands with msGFM > Model information; nodata pixels of "
        "either layer stay nodata."
    )
