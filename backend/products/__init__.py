"""Product readers: the imagery users have, turned into one raster in the units models expect.

:func:`harmonise` takes what a user chooses — a plain raster, a Sentinel-2 L1C/L2A product
(``.SAFE`` folder, its ``MTD_MSIL*.xml``, a zip, a GDAL ``SENTINEL2_*`` subdataset), a Landsat
Collection 2 Level-1/Level-2 product (its MTL, its folder or one of its band files), separate band
files (a list or a folder) — and returns a :class:`HarmonisedRaster`: a path GDAL opens (the input
itself, or a VRT written into the work folder), each band's name and centre wavelength, the
registry sensor the product's metadata proves, the units of the values and one note per change.
Sentinel-1 backscatter in linear power is converted to dB on the way.

Products are recognised by their content (the root element of the MTD XML, the MTL's groups, the
values of SAR bands), not only by their names. This package uses numpy and rasterio/GDAL only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence, Union

from . import landsat, sentinel1, sentinel2
from .harmonised import HarmonisedRaster, ProductError
from .plain import describe_raster
from .separate import band_files_in, band_set, harmonise_files
from .vrt import probe

__all__ = ["HarmonisedRaster", "ProductError", "harmonise"]

Source = Union[str, Path]


def harmonise(source: Union[Source, Sequence[Source]], workdir: Path) -> HarmonisedRaster:
    """Turn a user's file(s) into one raster with named bands in known units.

    Args:
        source: A raster path, a product (``.SAFE`` folder, ``MTD_MSIL1C.xml`` /
            ``MTD_MSIL2A.xml``, a zip of a SAFE, a ``SENTINEL2_L2A:...`` subdataset, a Landsat
            ``*_MTL.txt`` / ``*_MTL.xml``, a product folder, a band file beside an MTL), a folder
            of band files, or a list of band files (stacked in the order given).
        workdir: Folder for the VRTs written (created when needed; nothing else is written).

    Returns:
        The harmonised raster (see :class:`HarmonisedRaster`).

    Raises:
        ProductError: The product is unreadable or incomplete; the message names the file and
            the fix.
    """
    workdir = Path(workdir)
    if not isinstance(source, (str, Path)):
        paths = [str(item) for item in source]
        if not paths:
            raise ProductError("no input files given; choose a raster, a product or band files.")
        if len(paths) > 1:
            return sentinel1.convert_if_linear(harmonise_files(paths, workdir), workdir)
        source = paths[0]
    text = str(source)
    if sentinel2.is_product(text):
        return sentinel2.harmonise_product(text, workdir)
    if landsat.is_product(text):
        return landsat.harmonise_product(text, workdir)
    path = Path(text)
    if path.is_dir():
        _refuse_unsupported_folder(path)
        files = band_files_in(path)
        if len(files) > 1:
            return sentinel1.convert_if_linear(harmonise_files(files, workdir), workdir)
        text = files[0]
    elif not path.exists() and not text.startswith("/vsi") and ":" not in text:
        raise ProductError(f"{text} does not exist; check the path.")
    elif sentinel2.band_calibration(text) is not None:
        return harmonise_files([text], workdir)  # one band taken out of a SAFE: its offset
    siblings = band_set(path)
    if siblings is not None and probe(text).count == 1:
        stacked = harmonise_files(siblings, workdir)
        note = (
            f"{path.name} is one of {len(siblings)} band files beside it: read as their stack "
            f"({', '.join(stacked.band_names)})"
        )
        return dataclasses.replace(stacked, notes=(note, *stacked.notes))
    return sentinel1.convert_if_linear(describe_raster(text), workdir)


def _refuse_unsupported_folder(folder: Path) -> None:
    """Products whose bands are not calibrated values the models can take."""
    if (folder / "manifest.safe").is_file() and folder.name.upper().startswith("S1"):
        raise ProductError(
            f"{folder} is a Sentinel-1 SAFE product: its measurement files hold uncalibrated "
            f"amplitude. Calibrate it to sigma0 and terrain-correct it first (ESA SNAP: "
            f"Calibration, Terrain Correction; export VV/VH in dB or linear power as GeoTIFF) "
            f"and choose that file."
        )
