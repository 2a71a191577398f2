"""Sentinel-2 Level-1C and Level-2A products (SAFE folder, its MTD XML, a zip, a GDAL subdataset).

The product metadata (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``, ESA's Product Specification
Document) is read with ElementTree, by local tag names so that every PSD version's namespace
works. From it come the band files (``IMAGE_FILE`` paths without extension, relative to the SAFE
folder; ``IMAGE_ID`` within one granule before PSD 14), the quantification value, the radiometric
offsets that processing baseline 04.00 (January 2022) introduced (``RADIO_ADD_OFFSET`` in L1C,
``BOA_ADD_OFFSET`` in L2A, per ``band_id``), the nodata DN and the centre wavelengths.

The harmonised raster stacks every band (L1C: 13 with B10; L2A: 12, each from its native R10m,
R20m or R60m folder) on the product's 10 m grid, bilinear for the 20 m and 60 m bands, with values
``reflectance x 10000 = (DN + offset) * 10000 / quantification`` and DN 0 kept as nodata.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Sequence, Set, Tuple

from .harmonised import HarmonisedRaster, ProductError
from .vrt import BandSource, probe, target_in, write_stack_vrt

UNITS = "reflectance x 10000"
SENSOR = "s2"

# ESA's band order, which is also the ``band_id`` / ``bandId`` numbering of the metadata.
BAND_ORDER = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
)
NATIVE_RESOLUTION_M = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B10": 60,
    "B11": 20,
    "B12": 20,
}
# Sentinel-2A centre wavelengths (nm), used where a product's metadata lists none.
DEFAULT_WAVELENGTHS_NM = dict(
    zip(
        BAND_ORDER,
        (
            442.7,
            492.4,
            559.8,
            664.6,
            704.1,
            740.5,
            782.8,
            832.8,
            864.7,
            945.1,
            1373.5,
            1613.7,
            2202.4,
        ),
    )
)
LEVEL_BANDS = {"L1C": BAND_ORDER, "L2A": tuple(b for b in BAND_ORDER if b != "B10")}

_MTD_NAME = re.compile(r"^MTD_MSIL(1C|2A)\.xml$", re.IGNORECASE)
_SUBDATASET = re.compile(r"^SENTINEL2_(L1C|L2A|L1B|L1C_TILE)(?:_TILE)?:(.+)$", re.IGNORECASE)
_IMAGE_BAND = re.compile(r"_(B\d{1,2}A?)(?:_(\d+)m)?$", re.IGNORECASE)
_FORMAT_EXTENSIONS = {"JPEG2000": (".jp2",), "GEOTIFF": (".tif", ".TIF")}
_ALL_EXTENSIONS = (".jp2", ".tif", ".TIF", ".JP2")


@dataclass(frozen=True)
class ProductLocation:
    """Where a product's metadata and files are, for Python and for GDAL."""

    mtd_gdal_path: str  # the MTD XML as GDAL opens it (a /vsizip/ path inside a zip)
    root_gdal_path: str  # the SAFE folder as GDAL opens it
    xml: bytes
    members: Optional[frozenset]  # names inside the zip, None for a folder
    zip_path: Optional[str]
    zip_root: str  # the SAFE folder inside the zip ("" at the top or for a folder)
    label: str  # the path the user chose, for messages


@dataclass(frozen=True)
class S2Metadata:
    """What the product metadata says, for harmonisation."""

    level: str  # "L1C" or "L2A"
    product_uri: str
    baseline: str
    spacecraft: str
    quantification: float
    offsets: Dict[str, float]
    wavelengths_nm: Dict[str, float]
    nodata_dn: float
    image_files: Tuple[str, ...]
    image_format: str
    granules: int


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _canonical_band(physical: str) -> str:
    """``B1`` -> ``B01``, ``B8A`` -> ``B8A``."""
    text = physical.strip().upper()
    match = re.fullmatch(r"B(\d{1,2})(A?)", text)
    if not match:
        return text
    number, suffix = match.groups()
    return f"B{int(number):02d}" if not suffix else f"B{int(number)}A"


def subdataset_path(text: str) -> Optional[str]:
    """The MTD XML path inside a GDAL SENTINEL2 subdataset name, None if ``text`` is none."""
    match = _SUBDATASET.match(text)
    if not match:
        return None
    rest = match.group(2)
    # SENTINEL2_L2A:<path>:10m:EPSG_32633 (also :TCI:EPSG_...); the path may hold colons
    # (Windows drives) and GDAL quotes it then.
    parts = rest.rsplit(":", 2)
    path = parts[0] if len(parts) == 3 else rest
    return path.strip().strip('"')


def is_product(source: str) -> bool:
    """Whether ``source`` names a Sentinel-2 product (by content where it can be read)."""
    if subdataset_path(source) is not None:
        return True
    path = Path(source)
    if source.startswith("/vsizip/"):
        return bool(_MTD_NAME.match(PurePosixPath(source).name))
    if path.is_dir():
        return _mtd_in_folder(path) is not None
    if path.suffix.lower() == ".xml" and path.is_file():
        return _root_level(path.read_bytes()[:4096]) is not None
    if path.suffix.lower() == ".zip" and path.is_file():
        try:
            with zipfile.ZipFile(path) as archive:
                return _mtd_member(archive.namelist()) is not None
        except zipfile.BadZipFile:
            return False
    return False


def _root_level(head: bytes) -> Optional[str]:
    match = re.search(rb"<(?:\w+:)?Level-(1C|2A)p?_User_Product", head)
    return match.group(1).decode() if match else None


def _mtd_in_folder(folder: Path) -> Optional[Path]:
    for name in ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml"):
        if (folder / name).is_file():
            return folder / name
    # Products before December 2016 (PSD 13) name it S2A_OPER_MTD_SAFL1C_....xml.
    for pattern in ("*_MTD_SAFL1C_*.xml", "*_MTD_SAFL2A_*.xml"):
        for candidate in sorted(folder.glob(pattern)):
            return candidate
    return None


def _mtd_member(names: Sequence[str]) -> Optional[str]:
    candidates = [n for n in names if _MTD_NAME.match(PurePosixPath(n).name)]
    return min(candidates, key=lambda n: n.count("/")) if candidates else None


def locate(source: str) -> ProductLocation:
    """Find the product's metadata and folder from what the user chose."""
    inner = subdataset_path(source)
    text = inner if inner is not None else source
    if text.startswith("/vsizip/"):
        # /vsizip/<archive.zip>/<member>: split at the archive's own name.
        match = re.match(r"^/vsizip/(.+?\.zip)/(.*)$", text, re.IGNORECASE)
        if not match:
            raise ProductError(
                f"cannot find the zip archive in {source!r}; choose the .zip itself."
            )
        return _locate_in_zip(Path(match.group(1)), source, match.group(2))
    path = Path(text)
    if path.is_dir():
        mtd = _mtd_in_folder(path)
        if mtd is None:
            raise ProductError(
                f"{path} holds no MTD_MSIL1C.xml or MTD_MSIL2A.xml: choose the .SAFE folder "
                f"of a Sentinel-2 product."
            )
        path = mtd
    if path.suffix.lower() == ".zip":
        return _locate_in_zip(path, source, None)
    if not path.is_file():
        raise ProductError(f"{path} does not exist; choose the product's .SAFE folder or zip.")
    return ProductLocation(
        mtd_gdal_path=str(path),
        root_gdal_path=str(path.parent),
        xml=path.read_bytes(),
        members=None,
        zip_path=None,
        zip_root="",
        label=source,
    )


def _locate_in_zip(archive_path: Path, label: str, member: Optional[str]) -> ProductLocation:
    try:
        with zipfile.ZipFile(archive_path) as archive:
            names = archive.namelist()
            member = member or _mtd_member(names)
            if member is None or member not in names:
                raise ProductError(
                    f"{archive_path} holds no Sentinel-2 product metadata (MTD_MSIL1C.xml or "
                    f"MTD_MSIL2A.xml); choose the zip of a .SAFE product as downloaded."
                )
            xml = archive.read(member)
    except (zipfile.BadZipFile, OSError) as error:
        raise ProductError(
            f"cannot read {archive_path} as a zip archive ({error}); download the product again."
        ) from error
    root = PurePosixPath(member).parent
    base = f"/vsizip/{archive_path.resolve()}"
    return ProductLocation(
        mtd_gdal_path=f"{base}/{member}",
        root_gdal_path=f"{base}/{root}" if str(root) != "." else base,
        xml=xml,
        members=frozenset(names),
        zip_path=str(archive_path),
        zip_root=str(root) if str(root) != "." else "",
        label=label,
    )


def parse_metadata(xml: bytes, label: str) -> S2Metadata:
    """Read what harmonisation needs from a product's MTD XML."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise ProductError(
            f"{label}: the product metadata is not valid XML ({error}); the file is damaged or "
            f"incomplete, download the product again."
        ) from error
    level_match = re.fullmatch(r"Level-(1C|2A)p?_User_Product", _local(root.tag))
    if level_match is None:
        raise ProductError(
            f"{label} is not the metadata of a Sentinel-2 L1C or L2A product (its root is "
            f"{_local(root.tag)!r}); choose the product's MTD_MSIL1C.xml / MTD_MSIL2A.xml at the "
            f"top of the .SAFE folder."
        )
    level = "L1C" if level_match.group(1) == "1C" else "L2A"
    texts: Dict[str, str] = {}
    offsets_by_id: Dict[str, float] = {}
    physical_by_id: Dict[str, str] = {}
    wavelengths_by_id: Dict[str, float] = {}
    image_files: List[str] = []
    granules: Set[str] = set()
    image_format = "JPEG2000"
    nodata = 0.0
    quantification: Optional[float] = None
    for element in root.iter():
        tag = _local(element.tag)
        text = (element.text or "").strip()
        if tag in ("RADIO_ADD_OFFSET", "BOA_ADD_OFFSET") and text:
            offsets_by_id[element.get("band_id", "")] = float(text)
        elif tag == "Spectral_Information":
            band_id = element.get("bandId", "")
            physical_by_id[band_id] = element.get("physicalBand", "")
            for child in element.iter():
                if _local(child.tag) == "CENTRAL" and (child.text or "").strip():
                    wavelengths_by_id[band_id] = float(child.text)
        elif tag == "Granule" or tag == "Granules":
            # Level-2Ap products (2017-2018) list one granule three times, once per resolution.
            granules.add(element.get("granuleIdentifier", str(len(granules))))
            image_format = element.get("imageFormat", image_format)
            identifier = element.get("granuleIdentifier", "")
            for child in element:
                child_tag = _local(child.tag)
                child_text = (child.text or "").strip()
                if child_tag in ("IMAGE_FILE", "IMAGE_FILE_2A") and child_text:
                    image_files.append(child_text)
                elif child_tag == "IMAGE_ID" and child_text:  # PSD < 14: a name in the granule
                    image_files.append(f"GRANULE/{identifier}/IMG_DATA/{child_text}")
        elif tag == "Special_Values":
            values = {_local(c.tag): (c.text or "").strip() for c in element}
            if values.get("SPECIAL_VALUE_TEXT", "").upper() == "NODATA":
                nodata = float(values.get("SPECIAL_VALUE_INDEX", "0") or 0)
        elif (
            (level == "L1C" and tag == "QUANTIFICATION_VALUE")
            or (level == "L2A" and tag.endswith("BOA_QUANTIFICATION_VALUE"))
        ) and text:
            quantification = float(text)
        elif text and tag not in texts:
            texts[tag] = text
    if quantification is None or quantification <= 0:
        raise ProductError(
            f"{label}: the product metadata has no quantification value "
            f"({'QUANTIFICATION_VALUE' if level == 'L1C' else 'BOA_QUANTIFICATION_VALUE'}), "
            f"so DN cannot be turned into reflectance; the file is incomplete, download the "
            f"product again."
        )
    physical = {band_id: _canonical_band(name) for band_id, name in physical_by_id.items()}
    for index, band in enumerate(BAND_ORDER):  # documents without a Spectral_Information_List
        physical.setdefault(str(index), band)
    offsets = {physical[i]: value for i, value in offsets_by_id.items() if i in physical}
    wavelengths = dict(DEFAULT_WAVELENGTHS_NM)
    wavelengths.update({physical[i]: v for i, v in wavelengths_by_id.items() if i in physical})
    return S2Metadata(
        level=level,
        product_uri=texts.get("PRODUCT_URI") or texts.get("PRODUCT_URI_2A") or Path(label).name,
        baseline=texts.get("PROCESSING_BASELINE", ""),
        spacecraft=texts.get("SPACECRAFT_NAME", ""),
        quantification=quantification,
        offsets=offsets,
        wavelengths_nm=wavelengths,
        nodata_dn=nodata,
        image_files=tuple(image_files),
        image_format=image_format,
        granules=len(granules),
    )


def _band_files(metadata: S2Metadata, label: str) -> Dict[str, Tuple[str, int]]:
    """For each band of the level, its image file (relative, no extension) at native resolution."""
    by_band: Dict[str, Dict[int, str]] = {}
    for relative in metadata.image_files:
        match = _IMAGE_BAND.search(PurePosixPath(relative).name)
        if not match:
            continue  # TCI, AOT, WVP, SCL
        band = _canonical_band(match.group(1))
        resolution = int(match.group(2)) if match.group(2) else NATIVE_RESOLUTION_M.get(band, 0)
        by_band.setdefault(band, {})[resolution] = relative
    chosen: Dict[str, Tuple[str, int]] = {}
    missing = []
    for band in LEVEL_BANDS[metadata.level]:
        files = by_band.get(band)
        if not files:
            missing.append(band)
            continue
        native = NATIVE_RESOLUTION_M[band]
        resolution = native if native in files else min(files)
        chosen[band] = (files[resolution], resolution)
    if missing:
        raise ProductError(
            f"{label}: the product metadata lists no image file for band(s) {', '.join(missing)}; "
            f"a Sentinel-2 {metadata.level} product has {len(LEVEL_BANDS[metadata.level])} bands. "
            f"Download the complete product (not a band subset)."
        )
    return chosen


def _resolve_file(location: ProductLocation, relative: str, image_format: str) -> str:
    """The GDAL path of one band file, checked to exist."""
    extensions = _FORMAT_EXTENSIONS.get(image_format.upper(), ()) + _ALL_EXTENSIONS
    if PurePosixPath(relative).suffix.lower() in (".jp2", ".tif"):
        extensions = ("",)
    if location.members is not None:
        prefix = location.zip_root
        for extension in extensions:
            member = f"{prefix}/{relative}{extension}" if prefix else f"{relative}{extension}"
            if member in location.members:
                return f"{location.root_gdal_path}/{relative}{extension}"
        expected = f"{location.zip_path}:{prefix}/{relative}{extensions[0]}"
    else:
        root = Path(location.root_gdal_path)
        for extension in extensions:
            candidate = root / f"{relative}{extension}"
            if candidate.is_file():
                return str(candidate)
        expected = str(root / f"{relative}{extensions[0]}")
    raise ProductError(
        f"band file {expected} is missing: the product metadata lists it but it is not in the "
        f"product. The download or unzip is incomplete; download the product again (or unzip it "
        f"completely)."
    )


def harmonise_product(source: str, workdir: Path) -> HarmonisedRaster:
    """Stack a Sentinel-2 L1C/L2A product's bands on its 10 m grid in reflectance x 10000."""
    location = locate(source)
    metadata = parse_metadata(location.xml, location.label)
    if metadata.granules > 1:
        raise ProductError(
            f"{location.label} holds {metadata.granules} tiles (a multi-tile product from before "
            f"December 2016); choose the band files of one tile (GRANULE/<tile>/IMG_DATA) as "
            f"separate band files instead."
        )
    files = _band_files(metadata, location.label)
    paths = {
        band: _resolve_file(location, rel, metadata.image_format)
        for band, (rel, _) in files.items()
    }
    bands = LEVEL_BANDS[metadata.level]
    ten_metre = next(b for b in bands if files[b][1] == min(r for _, r in files.values()))
    grid = probe(paths[ten_metre]).grid
    scale = 10000.0 / metadata.quantification
    sources = [
        BandSource(
            path=paths[band],
            name=band,
            wavelength_nm=metadata.wavelengths_nm.get(band),
            scale=scale,
            offset=metadata.offsets.get(band, 0.0) * scale,
            nodata=metadata.nodata_dn,
        )
        for band in bands
    ]
    baseline = f", processing baseline {metadata.baseline}" if metadata.baseline else ""
    product = f"Sentinel-2 {metadata.level} product {metadata.product_uri}{baseline}"
    target = target_in(
        workdir, metadata.product_uri.replace(".SAFE", ""), [location.label, *paths.values()]
    )
    path = write_stack_vrt(
        target,
        grid,
        sources,
        dtype="float32",
        nodata=float("nan"),
        resampling="bilinear",
        metadata={"MSGFM_PRODUCT": product, "MSGFM_SENSOR": SENSOR, "MSGFM_UNITS": UNITS},
    )
    return HarmonisedRaster(
        path=path,
        band_names=tuple(bands),
        wavelengths_nm=tuple(metadata.wavelengths_nm.get(b) for b in bands),
        sensor=SENSOR,
        units=UNITS,
        product=product,
        notes=tuple(_notes(metadata, files, grid.resolution[0])),
    )


def _notes(metadata: S2Metadata, files: Dict[str, Tuple[str, int]], grid_m: float) -> List[str]:
    notes = []
    key = "RADIO_ADD_OFFSET" if metadata.level == "L1C" else "BOA_ADD_OFFSET"
    offsets = {band: metadata.offsets.get(band, 0.0) for band in files}
    shifted = {v for v in offsets.values() if v != 0}
    if shifted:
        count = sum(1 for v in offsets.values() if v != 0)
        values = ", ".join(f"{v:g}" for v in sorted(shifted))
        notes.append(
            f"{key} {values} added to {count} bands (processing baseline {metadata.baseline})"
        )
    elif metadata.baseline:
        notes.append(f"no {key} in the metadata (processing baseline {metadata.baseline})")
    if metadata.quantification != 10000:
        notes.append(f"values scaled by 10000 / quantification value {metadata.quantification:g}")
    by_resolution: Dict[int, List[str]] = {}
    for band, (_, resolution) in files.items():
        if resolution != grid_m:
            by_resolution.setdefault(resolution, []).append(band)
    for resolution, names in sorted(by_resolution.items()):
        notes.append(
            f"{', '.join(names)} resampled from {resolution} m to the {grid_m:g} m grid (bilinear)"
        )
    notes.append(f"DN {metadata.nodata_dn:g} (the product's NODATA) kept as nodata")
    return notes


@dataclass(frozen=True)
class BandCalibration:
    """How one band file of a SAFE turns into reflectance x 10000, from its product's MTD."""

    band: str
    scale: float
    offset: float
    nodata_dn: float
    wavelength_nm: Optional[float]
    product: str
    baseline: str
    level: str


# A band file sits at most this many folders below its SAFE (GRANULE/<id>/IMG_DATA/R10m/...).
_SAFE_DEPTH = 5


def band_calibration(path: str) -> Optional[BandCalibration]:
    """The calibration of a band file inside an unpacked SAFE, None for any other file.

    Users often take the JP2 files out of ``IMG_DATA`` one by one; their DN still need the
    product's offset and quantification value, which only the SAFE's MTD XML states.
    """
    file = Path(path)
    match = _IMAGE_BAND.search(file.name.rsplit(".", 1)[0])
    if not match or not file.is_file():
        return None
    folder = file.resolve().parent
    for _ in range(_SAFE_DEPTH):
        mtd = _mtd_in_folder(folder)
        if mtd is not None:
            break
        folder = folder.parent
    else:
        return None
    metadata = parse_metadata(mtd.read_bytes(), str(mtd))
    band = _canonical_band(match.group(1))
    if band not in BAND_ORDER:
        return None
    scale = 10000.0 / metadata.quantification
    return BandCalibration(
        band=band,
        scale=scale,
        offset=metadata.offsets.get(band, 0.0) * scale,
        nodata_dn=metadata.nodata_dn,
        wavelength_nm=metadata.wavelengths_nm.get(band),
        product=metadata.product_uri,
        baseline=metadata.baseline,
        level=metadata.level,
    )
