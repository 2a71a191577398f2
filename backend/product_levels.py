"""Which processing level a Sentinel-2 raster is: top of atmosphere (L1C) or surface reflectance.

Sentinel-2 L1C (top-of-atmosphere reflectance) and L2A (surface reflectance, e.g. Sen2Cor) hold
the same bands in the same units but not the same values: a model trained on one is out of its
domain on the other (the acceptance suite measured the L2A cloud-removal model opening its cloud
weight on clear L1C pixels). A raster says its level, when it says it at all, in one of these
places, read in this order (the first that answers decides):

1. the GDAL SENTINEL2 subdataset name it was opened as (``SENTINEL2_L1C:...``), or the level
   the product's own metadata (``MTD_MSIL1C.xml``) states when :mod:`backend.products` read it;
2. the raster's GDAL metadata, as the SENTINEL2 driver writes it and ``gdal_translate`` keeps it
   (``PROCESSING_LEVEL=Level-1C``, ``PRODUCT_TYPE=S2MSI2A``);
3. a band named ``B10`` (the cirrus band of L1C; L2A products have none);
4. a whole word of the file or layer name (``S2A_MSIL1C_...``, ``scene_L2A.tif``); names that
   say two levels say none.

Otherwise the level is unknown (None). Pure Python: the callers read the names and metadata.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Mapping, Optional, Sequence

LEVELS = ("L1C", "L2A", "L3A")
# What each level is, for messages.
LEVEL_MEANINGS = {
    "L1C": "top of atmosphere",
    "L2A": "surface reflectance",
    "L3A": "surface reflectance",  # monthly composites of L2A
}

_SUBDATASET = re.compile(r"^SENTINEL2_(L1C|L2A)\b", re.IGNORECASE)
_PRODUCT_TEXT = re.compile(r"\bSentinel-2 (L1C|L2A) product\b")
_PROCESSING_LEVEL = re.compile(r"^\s*Level[-_ ]?(1C|2A|3A)p?\s*$", re.IGNORECASE)
_PRODUCT_TYPE = re.compile(r"^\s*S2MSI(1C|2A|3A)p?\s*$", re.IGNORECASE)
_BAND_TEN = re.compile(r"^(band\s*\d+\s*:\s*)?B0*10$", re.IGNORECASE)
# Whole words of a name (letters and digits between other characters).
_NAME_WORDS = {"msil1c": "L1C", "l1c": "L1C", "msil2a": "L2A", "l2a": "L2A", "l3a": "L3A"}
_CIRRUS_NM = 1375.0  # Sentinel-2 B10's centre wavelength
_CIRRUS_TOLERANCE_NM = 30.0


@dataclass(frozen=True)
class ProductLevel:
    """A raster's processing level and how it was found.

    Attributes:
        level: ``L1C``, ``L2A`` or ``L3A``.
        how: what said so, for messages (``its GDAL metadata PROCESSING_LEVEL=Level-1C``).
    """

    level: str
    how: str

    @property
    def meaning(self) -> str:
        """``top of atmosphere`` or ``surface reflectance``."""
        return LEVEL_MEANINGS[self.level]


def find_product_level(
    opened_as: Sequence[str] = (),
    product: str = "",
    metadata: Optional[Mapping[str, str]] = None,
    band_names: Sequence[str] = (),
    wavelengths_nm: Sequence[Optional[float]] = (),
    name_hints: Sequence[str] = (),
) -> Optional[ProductLevel]:
    """The processing level of a Sentinel-2 raster, None when nothing about it says one.

    Args:
        opened_as: what GDAL was given to open (a ``SENTINEL2_L1C:...`` subdataset name).
        product: the line :mod:`backend.products` wrote for a product it read
            (``Sentinel-2 L1C product S2A_MSIL1C_...``).
        metadata: the raster's GDAL metadata (default domain).
        band_names: the raster's band names or descriptions, in file order.
        wavelengths_nm: per band, its centre wavelength when known (a ``B10`` far from the
            cirrus band's 1375 nm is another sensor's band 10).
        name_hints: file and layer names.
    """
    for text in opened_as:
        match = _SUBDATASET.match(str(text))
        if match:
            level = match.group(1).upper()
            return ProductLevel(level, f"opened as GDAL subdataset SENTINEL2_{level}")
    match = _PRODUCT_TEXT.search(product or "")
    if match:
        return ProductLevel(match.group(1), "its product metadata")
    for key, pattern in (("PROCESSING_LEVEL", _PROCESSING_LEVEL), ("PRODUCT_TYPE", _PRODUCT_TYPE)):
        value = _metadata_value(metadata or {}, key)
        match = pattern.match(value) if value else None
        if match:
            return ProductLevel(f"L{match.group(1).upper()}", f"its GDAL metadata {key}={value}")
    for position, name in enumerate(band_names):
        if _BAND_TEN.match((name or "").strip()):
            wave = wavelengths_nm[position] if position < len(wavelengths_nm) else None
            if wave is None or abs(wave - _CIRRUS_NM) <= _CIRRUS_TOLERANCE_NM:
                return ProductLevel("L1C", "it holds band B10, which only L1C products have")
    said = {}
    for hint in name_hints:
        for word in re.split(r"[^a-z0-9]+", PurePath(str(hint)).name.lower()):
            if word in _NAME_WORDS:
                said.setdefault(_NAME_WORDS[word], f"its name {PurePath(str(hint)).name!r}")
    if len(said) == 1:
        level, how = next(iter(said.items()))
        return ProductLevel(level, how)
    return None


def _metadata_value(metadata: Mapping[str, str], key: str) -> str:
    for name, value in metadata.items():
        if str(name).upper() == key:
            return str(value)
    return ""
