"""Sentinel-1 backscatter in linear power turned into dB, as the SAR models expect it.

A raster counts as SAR when its band names (VV, VH, HH, HV, Sigma0_*) or its file name
(``_VV``, ``GRD``, ``S1A``/``S1B``/``S1C``) say so. Linear power is told from dB by the values:
power is never negative and its median lies far below 1 (sigma0 of land is about 0.01-0.3),
while dB values of land are mostly negative. Amplitude DN (uncalibrated GRD, values in the
hundreds) is neither and is left for the range checks to refuse.

The conversion is a VRT of GDAL's ``dB`` pixel function (``10 * log10``, GDAL >= 3.5) over the
raster; a lookup table first turns values <= 0 (no return, or noise removed below zero) into NaN,
which the output declares as nodata, instead of -inf or the log of their magnitude.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path, PurePath
from typing import Optional, Sequence

import numpy as np

from .harmonised import HarmonisedRaster
from .vrt import GDAL_TYPES, _dataset_element, probe, target_in, write_vrt_file

UNITS = "sigma0 dB"
_SAR_NAME = re.compile(r"^(?:SIGMA0|GAMMA0|BETA0)?[_\-]?(VV|VH|HH|HV)(?:[_\-].*)?$", re.IGNORECASE)
_SAR_FILE = re.compile(
    r"(?:^|[_\-.])(S1[ABCD]|GRD[HMF]?|VV|VH|HH|HV|SIGMA0\w*)(?:[_\-.]|$)", re.IGNORECASE
)
_DB_NAME = re.compile(r"(?:^|[_\-])DB(?:$|[_\-])", re.IGNORECASE)
# Linear power: (almost) every value >= 0 and the median well below 1.
_MIN_NONNEGATIVE_FRACTION = 0.99
_MAX_LINEAR_MEDIAN = 0.5
_SAMPLE_SIDE = 512
# 0 and below -> NaN; from the smallest positive float32 on, the identity.
_POSITIVE_ONLY_LUT = "0:nan,1e-38:1e-38,3.4e38:3.4e38"


def looks_like_sar(band_names: Sequence[str], path: str) -> bool:
    """Whether the band names or the file name say the raster is SAR backscatter."""
    if any(name and _SAR_NAME.match(name.strip()) for name in band_names):
        return True
    stem = PurePath(path).name
    return bool(_SAR_FILE.search(stem.rsplit(".", 1)[0] if "." in stem else stem))


def is_linear_power(path: str) -> bool:
    """Whether a raster's values are linear backscatter power (see the module docstring)."""
    import rasterio

    with rasterio.open(path) as dataset:
        scale = max(1, max(dataset.width, dataset.height) // _SAMPLE_SIDE)
        shape = (dataset.count, max(1, dataset.height // scale), max(1, dataset.width // scale))
        values = dataset.read(
            out_shape=shape, masked=True, resampling=rasterio.enums.Resampling.nearest
        )
    data = np.ma.masked_invalid(values.astype(np.float64)).compressed()
    if data.size == 0:
        return False
    nonnegative = float(np.mean(data >= 0))
    median = float(np.median(data))
    return nonnegative >= _MIN_NONNEGATIVE_FRACTION and 0 < median < _MAX_LINEAR_MEDIAN


def convert_if_linear(raster: HarmonisedRaster, workdir: Path) -> HarmonisedRaster:
    """``raster`` in dB when it is SAR in linear power; else ``raster`` unchanged."""
    if raster.units is not None and raster.units != "linear power":
        return raster
    if not looks_like_sar(raster.band_names, raster.path):
        return raster
    if any(name and _DB_NAME.search(name) for name in raster.band_names):
        return raster  # "Sigma0_VV_db": already in dB
    if not is_linear_power(raster.path):
        return raster
    target = target_in(workdir, f"{PurePath(raster.path).name.rsplit('.', 1)[0]}-dB", [raster.path])
    write_db_vrt(raster.path, target, raster.band_names)
    names = ", ".join(n for n in raster.band_names if n) or f"{len(raster.band_names)} bands"
    return HarmonisedRaster(
        path=str(target),
        band_names=raster.band_names,
        wavelengths_nm=raster.wavelengths_nm,
        sensor=raster.sensor,
        units=UNITS,
        product=raster.product,
        notes=(
            *raster.notes,
            f"{names} converted from linear power to dB (10 * log10); values <= 0 set to nodata",
        ),
    )


def write_db_vrt(source: str, target: Path, band_names: Sequence[Optional[str]]) -> None:
    """A VRT with every band of ``source`` as ``10 * log10(value)``, values <= 0 as NaN."""
    info = probe(source)
    root = _dataset_element(info.grid)
    for index in range(1, info.count + 1):
        band = ET.SubElement(
            root,
            "VRTRasterBand",
            dataType=GDAL_TYPES["float32"],
            band=str(index),
            subClass="VRTDerivedRasterBand",
        )
        name = band_names[index - 1] if index - 1 < len(band_names) else ""
        if name:
            ET.SubElement(band, "Description").text = name
        ET.SubElement(band, "NoDataValue").text = "nan"
        ET.SubElement(band, "PixelFunctionType").text = "dB"
        ET.SubElement(band, "PixelFunctionArguments", fact="10")
        ET.SubElement(band, "SourceTransferType").text = "Float64"
        element = ET.SubElement(band, "ComplexSource")
        ET.SubElement(element, "SourceFilename", relativeToVRT="0").text = info.path
        ET.SubElement(element, "SourceBand").text = str(index)
        if info.nodata is not None:
            ET.SubElement(element, "NODATA").text = repr(float(info.nodata))
        ET.SubElement(element, "LUT").text = _POSITIVE_ONLY_LUT
    write_vrt_file(target, root)
