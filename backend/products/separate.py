"""Separate band files (a list of paths, or a folder of them) stacked into one raster.

Each file gives its bands in turn; a one-band file is named after its file name
(``T33UUU_20170216T102101_B01.jp2`` -> ``B01``, BigEarthNet ``..._B8A.tif`` -> ``B8A``), a
multi-band file by its band descriptions. All bands go onto the grid of the finest band (bilinear
for coarser ones); the files must share one CRS.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from . import sentinel2
from .bandinfo import band_name_and_wavelength, band_name_from_file
from .harmonised import HarmonisedRaster, ProductError
from .vrt import BandSource, RasterInfo, finest_grid, probe, target_in, write_stack_vrt

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".img", ".vrt", ".dat", ".bsq", ".j2k")
# Files in a band folder that are not spectral bands: quality and classification layers,
# true-colour previews, Landsat panchromatic band 8 is kept (only the MTL reader knows it).
_NOT_BANDS = re.compile(
    r"(?:^|[_\-.])(BQA|QA|QA_PIXEL|QA_RADSAT|QA_AEROSOL|SR_QA_AEROSOL|SAA|SZA|VAA|VZA|SCL|TCI|"
    r"AOT|WVP|FMASK|CLD\w*|SNW\w*|MSK\w*|LABELS?\w*|PVI|PREVIEW)$",
    re.IGNORECASE,
)


# Sentinel-2 band files as a SAFE's IMG_DATA (T33UUU_20170216T102101_B01.jp2) or BigEarthNet
# (S2A_MSIL2A_20170613T101031_87_48_B01.tif) name them: DN 0 is nodata by the product's
# convention even where the file does not declare it.
_SENTINEL2_FILE = re.compile(
    r"^(?:T\d{2}[A-Z]{3}_\d{8}T\d{6}_|S2[A-D]_MSIL(?:1C|2A)_)", re.IGNORECASE
)
SENTINEL2_NODATA_DN = 0.0


def _stem(path: Path) -> str:
    return path.name.rsplit(".", 1)[0] if "." in path.name else path.name


def _natural_key(name: str) -> Tuple:
    match = re.search(r"B(\d{1,2})(A?)$", name, re.IGNORECASE)
    if match:
        return (0, int(match.group(1)), match.group(2).upper(), name)
    return (1, 0, "", name)


def band_files_in(folder: Path) -> List[str]:
    """The band files of a folder, in band order (B1, B2 ... B8, B8A, B9, B10 ...).

    Raises:
        ProductError: The folder holds no raster band file.
    """
    files = [
        path
        for path in folder.iterdir()
        if path.is_file()
        and path.suffix.lower() in RASTER_SUFFIXES
        and not _NOT_BANDS.search(_stem(path))
    ]
    if not files:
        raise ProductError(
            f"{folder} holds no band files (GeoTIFF or JP2 images); choose the folder that holds "
            f"the bands, a product (.SAFE, MTL), or the files themselves."
        )
    files.sort(key=lambda p: _natural_key(band_name_from_file(p.name)))
    return [str(path) for path in files]


def band_set(path: Path) -> Optional[List[str]]:
    """The Sentinel-2 band files that ``path`` is one of, in band order, or None.

    A band file named as Sentinel-2 names them (``T33UUU_20170216T102101_B04.jp2``, BigEarthNet
    ``S2A_MSIL2A_..._87_48_B04.tif``) with other bands of the same name stem beside it is one
    band of a set: no model takes one Sentinel-2 band alone, so the set is what a user means.
    """
    path = Path(path)
    if not _SENTINEL2_FILE.match(path.name) or not path.is_file():
        return None
    stem, band = _stem(path), band_name_from_file(path.name)
    if not stem.upper().endswith(band.upper()):
        return None
    prefix = stem[: len(stem) - len(band)].upper()
    siblings = [
        file
        for file in band_files_in(path.parent)
        if _stem(Path(file)).upper().startswith(prefix)
        and re.fullmatch(r"B\d{1,2}A?", _stem(Path(file))[len(prefix) :], re.IGNORECASE)
    ]
    return siblings if len(siblings) > 1 else None


def _names(info: RasterInfo) -> List[Tuple[str, Optional[float]]]:
    import rasterio

    with rasterio.open(info.path) as dataset:
        named = [band_name_and_wavelength(dataset, i) for i in range(1, info.count + 1)]
    if info.count == 1 and not named[0][0]:
        named[0] = (band_name_from_file(info.path), named[0][1])
    return named


def harmonise_files(paths: Sequence[str], workdir: Path) -> HarmonisedRaster:
    """Stack band files, in the order given, on the finest grid among them."""
    for path in paths:
        if not Path(path).exists() and not str(path).startswith("/vsi"):
            raise ProductError(f"band file {path} does not exist; check the path.")
    infos = [probe(str(path)) for path in paths]
    grid = finest_grid(infos)
    bands: List[BandSource] = []
    resampled = []
    conventional_nodata = []
    calibrated = []
    for info in infos:
        calibration = sentinel2.band_calibration(info.path) if info.count == 1 else None
        if calibration is not None:
            calibrated.append(calibration)
            bands.append(
                BandSource(
                    path=info.path,
                    name=calibration.band,
                    wavelength_nm=calibration.wavelength_nm,
                    scale=calibration.scale,
                    offset=calibration.offset,
                    nodata=calibration.nodata_dn,
                )
            )
            if info.grid.resolution != grid.resolution:
                resampled.append((Path(info.path).name, info.grid.resolution[0]))
            continue
        nodata_dn = None
        if info.nodata is None and _SENTINEL2_FILE.match(Path(info.path).name):
            nodata_dn = SENTINEL2_NODATA_DN
            conventional_nodata.append(Path(info.path).name)
        for index, (name, wavelength) in enumerate(_names(info), start=1):
            bands.append(
                BandSource(
                    path=info.path,
                    band=index,
                    name=name,
                    wavelength_nm=wavelength,
                    nodata=nodata_dn,
                )
            )
        if info.grid.resolution != grid.resolution:
            resampled.append((Path(info.path).name, info.grid.resolution[0]))
    dtypes = {dtype for info in infos for dtype in info.dtypes}
    nodatas = {info.nodata for info in infos}
    plain = (
        not resampled
        and not conventional_nodata
        and not calibrated
        and len(dtypes) == 1
        and len(nodatas) == 1
    )
    if plain:
        dtype, nodata = dtypes.pop(), nodatas.pop()
    else:
        dtype, nodata = "float32", float("nan")
    names = tuple(band.name for band in bands)
    first = Path(paths[0])
    product = f"{len(paths)} band files in {first.parent}" if len(paths) > 1 else first.name
    target = target_in(workdir, f"{_stem(first)}-stack", [str(p) for p in paths])
    path = write_stack_vrt(
        target,
        grid,
        bands,
        dtype=dtype,
        nodata=nodata,
        resampling="bilinear",
        metadata={"MSGFM_PRODUCT": product},
        infos={info.path: info for info in infos},
    )
    notes = []
    if len(paths) > 1:
        notes.append(f"{len(bands)} bands of {len(paths)} files stacked ({', '.join(names)})")
    for product_uri in sorted({c.product for c in calibrated}):
        mine = [c for c in calibrated if c.product == product_uri]
        offsets = sorted({c.offset / c.scale for c in mine})
        notes.append(
            f"{', '.join(c.band for c in mine)} calibrated with {product_uri}'s metadata (processing "
            f"baseline {mine[0].baseline}: offset {', '.join(f'{o:g}' for o in offsets)}, "
            f"x {mine[0].scale:g}); DN {mine[0].nodata_dn:g} kept as nodata"
        )
    if conventional_nodata:
        notes.append(
            f"DN 0 kept as nodata in {len(conventional_nodata)} Sentinel-2 band files (the "
            f"products' NODATA value, which the files do not declare)"
        )
    unit = " m" if 'UNIT["metre"' in grid.crs_wkt else ""  # also LENGTHUNIT["metre"
    for resolution in sorted({r for _, r in resampled}):
        which = [name for name, r in resampled if r == resolution]
        notes.append(
            f"{', '.join(which)} resampled from {resolution:g}{unit} to the "
            f"{grid.resolution[0]:g}{unit} grid (bilinear)"
        )
    return HarmonisedRaster(
        path=path,
        band_names=names,
        wavelengths_nm=tuple(band.wavelength_nm for band in bands),
        sensor=None,
        units=sentinel2.UNITS if calibrated and len(calibrated) == len(bands) else None,
        product=product,
        notes=tuple(notes),
    )
