"""Landsat Collection 2 (and Collection 1) Level-1 and Level-2 products, read through their MTL.

The MTL metadata comes as ODL text (``*_MTL.txt``: ``GROUP = ...`` / ``KEY = value``) or as XML
(``*_MTL.xml``, Collection 2: the same groups and keys as elements); both are read into
``(group, key) -> value``. The MTL names the band files (``FILE_NAME_BAND_n``), the spacecraft
and instrument, the processing level and, for Level-2, the surface-reflectance scale and offset
(``REFLECTANCE_MULT_BAND_n`` / ``REFLECTANCE_ADD_BAND_n`` in
``LEVEL2_SURFACE_REFLECTANCE_PARAMETERS``: 0.0000275 and -0.2 for Collection 2).

* Level-1 (L1TP, L1GT, L1GS): the reflective bands in their DN, unchanged. OLI/OLI-2 (Landsat-8
  and -9) bands 1-7 are the registry's ``landsat8`` (16-bit DN); TM and ETM+ bands 1-5 and 7 are
  ``landsat`` (8-bit DN).
* Level-2 (L2SP, L2SR): the surface-reflectance bands ``SR_B*`` scaled to reflectance x 10000,
  the registry's ``landsat8_sr`` / ``landsat_sr``, so that they are never mistaken for DN.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .harmonised import HarmonisedRaster, ProductError
from .vrt import BandSource, probe, target_in, write_stack_vrt

MtlValues = Dict[Tuple[str, str], str]

_OLI_WAVELENGTHS = {1: 443.0, 2: 482.0, 3: 561.0, 4: 655.0, 5: 865.0, 6: 1609.0, 7: 2201.0}
_ETM_WAVELENGTHS = {1: 485.0, 2: 560.0, 3: 660.0, 4: 835.0, 5: 1650.0, 7: 2220.0}
_TM_WAVELENGTHS = {1: 486.0, 2: 571.0, 3: 660.0, 4: 839.0, 5: 1678.0, 7: 2217.0}
_MTL_NAME = re.compile(r"_MTL\.(txt|xml)$", re.IGNORECASE)
_ODL_LINE = re.compile(r'^\s*([A-Za-z0-9_]+)\s*=\s*"?([^"]*?)"?\s*$')
_LEVEL2_GROUP = "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"


@dataclass(frozen=True)
class Instrument:
    """What a Landsat instrument delivers: its reflective bands and registry sensors."""

    label: str
    wavelengths_nm: Dict[int, float]
    level1_sensor: str
    level1_units: str
    level2_sensor: str


_OLI = Instrument("OLI", _OLI_WAVELENGTHS, "landsat8", "DN (16-bit Level-1)", "landsat8_sr")
_ETM = Instrument("ETM+", _ETM_WAVELENGTHS, "landsat", "DN 0-255", "landsat_sr")
_TM = Instrument("TM", _TM_WAVELENGTHS, "landsat", "DN 0-255", "landsat_sr")


def parse_mtl(text: str, label: str) -> MtlValues:
    """Read an MTL document (ODL text or XML) into ``(group, key) -> value``."""
    values: MtlValues = {}
    if text.lstrip().startswith("<"):
        try:
            root = ET.fromstring(text)
        except ET.ParseError as error:
            raise ProductError(
                f"{label} is not valid XML ({error}); download the product's MTL again."
            ) from error
        for group in root:
            for item in group:
                values[(group.tag, item.tag)] = (item.text or "").strip()
        return values
    groups: List[str] = []
    for line in text.splitlines():
        match = _ODL_LINE.match(line)
        if not match:
            continue
        key, value = match.group(1), match.group(2).strip()
        if key == "GROUP":
            groups.append(value)
        elif key == "END_GROUP":
            if groups:
                groups.pop()
        elif key != "END":
            values[(groups[-1] if groups else "", key)] = value
    return values


def _get(values: MtlValues, key: str, group: Optional[str] = None) -> Optional[str]:
    if group is not None:
        return values.get((group, key))
    for (_, name), value in values.items():
        if name == key:
            return value
    return None


def _is_mtl_document(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            head = stream.read(512)
    except OSError:
        return False
    return b"LANDSAT_METADATA_FILE" in head or b"L1_METADATA_FILE" in head


def find_mtl(source: str) -> Optional[Path]:
    """The MTL file that ``source`` (an MTL, a product folder or one band file) belongs to."""
    path = Path(source)
    if path.is_file() and _MTL_NAME.search(path.name):
        return path if _is_mtl_document(path) else None
    folder = path if path.is_dir() else path.parent
    if not folder.is_dir():
        return None
    candidates = sorted(
        p for p in folder.iterdir() if _MTL_NAME.search(p.name) and _is_mtl_document(p)
    )
    if not candidates:
        return None
    if path.is_dir():
        # One product: prefer the text MTL; both describe the same files.
        return min(candidates, key=lambda p: (p.suffix.lower() != ".txt", p.name))
    # A band file counts only when the MTL lists it: other files in that folder are not this
    # product's bands.
    for mtl in candidates:
        values = parse_mtl(mtl.read_text(encoding="utf-8", errors="replace"), str(mtl))
        listed = {v for (_, k), v in values.items() if k.startswith("FILE_NAME_BAND")}
        if path.name in listed:
            return mtl
    return None


def is_product(source: str) -> bool:
    """Whether ``source`` is a Landsat MTL, a folder holding one, or a band listed in one."""
    try:
        return find_mtl(source) is not None
    except OSError:
        return False


def _instrument(values: MtlValues, label: str) -> Tuple[Instrument, str]:
    spacecraft = (_get(values, "SPACECRAFT_ID") or "").upper()
    sensor = (_get(values, "SENSOR_ID") or "").upper()
    if "OLI" in sensor:
        return _OLI, spacecraft
    if "ETM" in sensor:
        return _ETM, spacecraft
    if sensor == "TM":
        return _TM, spacecraft
    raise ProductError(
        f"{label}: instrument {sensor or '(none)'} on {spacecraft or '(unknown)'} is not one of "
        f"the Landsat instruments the models know (OLI, ETM+, TM); MSS and thermal-only products "
        f"cannot be used."
    )


def _product_id(values: MtlValues, mtl: Path) -> str:
    return (
        _get(values, "LANDSAT_PRODUCT_ID")
        or _get(values, "LANDSAT_SCENE_ID")
        or mtl.name.rsplit("_MTL", 1)[0]
    )


def _level(values: MtlValues) -> str:
    level = (_get(values, "PROCESSING_LEVEL") or _get(values, "DATA_TYPE") or "").upper()
    return "L2" if level.startswith("L2") else "L1"


def _band_file(values: MtlValues, key: str, folder: Path, mtl: Path) -> str:
    name = _get(values, key, "PRODUCT_CONTENTS") or _get(values, key)
    if not name:
        raise ProductError(
            f"{mtl} names no file for {key}; the MTL is incomplete, download the product again."
        )
    path = folder / name
    if not path.is_file():
        raise ProductError(
            f"band file {path} is missing: {mtl.name} lists it ({key}) but it is not beside the "
            f"MTL. Download or unpack the whole product into one folder."
        )
    return str(path)


def _number(values: MtlValues, key: str, mtl: Path) -> float:
    text = _get(values, key, _LEVEL2_GROUP)
    if text is None:
        raise ProductError(
            f"{mtl} has no {key} in {_LEVEL2_GROUP}, so the surface-reflectance DN cannot be "
            f"scaled; download the product's MTL again."
        )
    return float(text)


def harmonise_product(source: str, workdir: Path) -> HarmonisedRaster:
    """The reflective bands of a Landsat product, Level-2 scaled to reflectance x 10000."""
    mtl = find_mtl(source)
    if mtl is None:
        raise ProductError(f"{source}: no Landsat MTL file found beside it.")
    values = parse_mtl(mtl.read_text(encoding="utf-8", errors="replace"), str(mtl))
    instrument, spacecraft = _instrument(values, str(mtl))
    level = _level(values)
    folder = mtl.parent
    numbers = sorted(instrument.wavelengths_nm)
    mission = spacecraft.replace("LANDSAT_", "Landsat-") or "Landsat"
    collection = _get(values, "COLLECTION_NUMBER") or ""
    collection = f" Collection {int(collection)}" if collection.isdigit() else ""
    product_id = _product_id(values, mtl)
    notes: List[str] = []
    bands: List[BandSource] = []
    if level == "L2":
        sensor, units = instrument.level2_sensor, "reflectance x 10000"
        for number in numbers:
            mult = _number(values, f"REFLECTANCE_MULT_BAND_{number}", mtl)
            add = _number(values, f"REFLECTANCE_ADD_BAND_{number}", mtl)
            bands.append(
                BandSource(
                    path=_band_file(values, f"FILE_NAME_BAND_{number}", folder, mtl),
                    name=f"SR_B{number}",
                    wavelength_nm=instrument.wavelengths_nm[number],
                    scale=mult * 10000.0,
                    offset=add * 10000.0,
                    nodata=0.0,
                )
            )
        scales = {(b.scale / 10000.0, b.offset / 10000.0) for b in bands}
        described = "; ".join(f"x {m:g} {a:+g}" for m, a in sorted(scales))
        notes.append(
            f"surface reflectance DN scaled by the MTL's REFLECTANCE_MULT/ADD ({described}) and "
            f"multiplied by 10000 for {len(bands)} bands; DN 0 (fill) kept as nodata"
        )
        dtype, nodata = "float32", float("nan")
        level_text = "Level-2 surface reflectance"
    else:
        sensor, units = instrument.level1_sensor, instrument.level1_units
        for number in numbers:
            bands.append(
                BandSource(
                    path=_band_file(values, f"FILE_NAME_BAND_{number}", folder, mtl),
                    name=f"B{number}",
                    wavelength_nm=instrument.wavelengths_nm[number],
                    nodata=0.0,
                )
            )
        first = probe(bands[0].path)
        dtype, nodata = first.dtypes[0], 0.0
        notes.append(
            f"Level-1 DN of bands {', '.join(b.name for b in bands)} unchanged; DN 0 (fill) is "
            f"nodata"
        )
        level_text = "Level-1"
        if spacecraft == "LANDSAT_9":
            notes.append("Landsat-9 OLI-2 bands 1-7 read as Landsat-8 OLI's (same bands)")
    product = f"{mission} {instrument.label}{collection} {level_text} product {product_id}"
    infos = {band.path: probe(band.path) for band in bands}
    grid = next(iter(infos.values())).grid
    target = target_in(workdir, product_id, [str(mtl), *infos])
    path = write_stack_vrt(
        target,
        grid,
        bands,
        dtype=dtype,
        nodata=nodata,
        resampling="nearest",
        metadata={"MSGFM_PRODUCT": product, "MSGFM_SENSOR": sensor, "MSGFM_UNITS": units},
        infos=infos,
    )
    return HarmonisedRaster(
        path=path,
        band_names=tuple(b.name for b in bands),
        wavelengths_nm=tuple(b.wavelength_nm for b in bands),
        sensor=sensor,
        units=units,
        product=product,
        notes=tuple(notes),
    )
