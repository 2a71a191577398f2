"""What every product reader returns: one raster with named bands in stated units, or an error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple


class ProductError(ValueError):
    """A product or band file that cannot be read as one: the message names the file and the fix."""


@dataclass(frozen=True)
class HarmonisedRaster:
    """One raster that GDAL opens, its bands named and in the units a registry sensor states.

    Attributes:
        path: What rasterio/GDAL opens: the input itself when nothing needs doing, else a VRT
            written into the work folder.
        band_names: Per band of ``path``, the band's name as the product or file names it
            (``"B04"``, ``"B8A"``, ``"VV"``, ``"SR_B4"``), ``""`` when unknown.
        wavelengths_nm: Per band, the centre wavelength in nm, None when unknown.
        sensor: The registry sensor (:mod:`backend.sensors`) the product's own metadata proves
            (``"s2"`` for a Sentinel-2 L1C/L2A SAFE), None for a plain file.
        units: Units of the values at ``path``, spelled as the registry sensor's ``units``; None
            when unknown.
        product: One line for people naming the product and its processing version.
        notes: Each harmonisation applied, one line each, for the run log.
    """

    path: str
    band_names: Tuple[str, ...]
    wavelengths_nm: Tuple[Optional[float], ...]
    sensor: Optional[str]
    units: Optional[str]
    product: str
    notes: Tuple[str, ...] = ()
