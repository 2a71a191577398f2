"""Band names and centre wavelengths as a raster file states them (descriptions, GDAL metadata).

GDAL spells wavelengths in several ways depending on the driver that wrote the file:

* ``CENTRAL_WAVELENGTH_UM`` in the ``IMAGERY`` domain (GDAL's convention since 3.10);
* ``WAVELENGTH`` with ``WAVELENGTH_UNIT`` (the SENTINEL2 driver), sometimes ``WAVELENGTH_UNITS``;
* ``wavelength`` with ``wavelength_units`` (the ENVI driver, from the ``.hdr``).

Band names come from the band description, else a ``BANDNAME`` metadata item (SENTINEL2 driver).
The SENTINEL2 driver's descriptions read ``"B4, central wavelength 665 nm"`` and the ENVI driver's
``"red (0.665 Micrometers)"``: the name is the part before, the wavelength is taken from it.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any, Mapping, Optional, Tuple

_SENTINEL2_DESCRIPTION = re.compile(
    r"^\s*(?P<name>[^,]+?)\s*,\s*central wavelength\s+(?P<value>[\d.]+)\s*(?P<unit>nm|um|µm)",
    re.IGNORECASE,
)

# The ENVI driver appends the wavelength to the band name: "red (0.665 Micrometers)".
_ENVI_DESCRIPTION = re.compile(
    r"^\s*(?P<name>.*?)\s*\((?P<value>[\d.]+)\s*(?P<unit>[A-Za-zµ]+)\)\s*$"
)

_UNIT_TO_NM = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometers": 1.0,
    "nanometre": 1.0,
    "nanometres": 1.0,
    "um": 1000.0,
    "µm": 1000.0,
    "micrometer": 1000.0,
    "micrometers": 1000.0,
    "micrometre": 1000.0,
    "micrometres": 1000.0,
    "micron": 1000.0,
    "microns": 1000.0,
}

# A band name at the end of a file name: Sentinel-2 (B01, B8A, also with the L2A "_10m" suffix),
# Landsat (B4, SR_B4, ST_B10), Sentinel-1 polarisations.
_FILE_BAND = re.compile(
    r"(?:^|[_\-.])(?P<band>(?:SR_|ST_)?B\d{1,2}A?|VV|VH|HH|HV)(?:_\d+m)?$", re.IGNORECASE
)


def _lower_keys(items: Mapping[str, str]) -> Mapping[str, str]:
    return {str(k).lower(): v for k, v in items.items()}


def wavelength_nm(default: Mapping[str, str], imagery: Mapping[str, str]) -> Optional[float]:
    """A band's centre wavelength in nm from its GDAL metadata, None when it states none."""
    imagery = _lower_keys(imagery)
    default = _lower_keys(default)
    value = imagery.get("central_wavelength_um") or default.get("central_wavelength_um")
    if value is not None:
        number = _float(value)
        return None if number is None else number * 1000.0
    value = default.get("wavelength")
    if value is None:
        return None
    number = _float(value)
    if number is None:
        return None
    unit = (default.get("wavelength_unit") or default.get("wavelength_units") or "").strip()
    factor = _UNIT_TO_NM.get(unit.lower())
    if factor is None:
        # No unit: optical wavelengths are 0.3-15 µm or 300-15000 nm, so the size tells.
        factor = 1000.0 if number < 30 else 1.0
    return number * factor


def _float(text: Any) -> Optional[float]:
    try:
        return float(str(text).strip().strip("{}").split(",")[0])
    except ValueError:
        return None


def band_name_and_wavelength(dataset: Any, index: int) -> Tuple[str, Optional[float]]:
    """Name and centre wavelength of band ``index`` (1-based) of an open rasterio dataset."""
    description = (dataset.descriptions[index - 1] or "").strip()
    default = dataset.tags(index)
    try:
        imagery = dataset.tags(index, ns="IMAGERY")
    except Exception:  # drivers without that domain
        imagery = {}
    wavelength = wavelength_nm(default, imagery)
    match = _SENTINEL2_DESCRIPTION.match(description) or _ENVI_DESCRIPTION.match(description)
    if match and match.group("unit").lower() in _UNIT_TO_NM:
        description = match.group("name")
        if wavelength is None:
            unit = match.group("unit").lower()
            wavelength = float(match.group("value")) * _UNIT_TO_NM.get(unit, 1000.0)
    name = description or _lower_keys(default).get("bandname", "").strip()
    return name, wavelength


def band_name_from_file(path: str) -> str:
    """The band a file name names (``..._B8A.tif`` -> ``B8A``, ``l8_SR_B4.TIF`` -> ``SR_B4``).

    Falls back to the file name's last ``_``-separated part, which is how band files are named
    when they are named at all.
    """
    stem = PurePath(path).name
    if "." in stem:
        stem = stem.rsplit(".", 1)[0]
    match = _FILE_BAND.search(stem)
    if match:
        return match.group("band").upper()
    tokens = [t for t in re.split(r"[_\s]+", stem) if t]
    return tokens[-1] if tokens else stem
