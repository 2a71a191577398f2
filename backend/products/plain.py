"""A plain raster (GeoTIFF, VRT, JP2, ENVI ...): read as it is, its band names and wavelengths."""

from __future__ import annotations

from pathlib import Path

from .bandinfo import band_name_and_wavelength
from .harmonised import HarmonisedRaster, ProductError


def describe_raster(path: str) -> HarmonisedRaster:
    """The raster itself, with the band names and wavelengths its metadata states.

    Raises:
        ProductError: GDAL cannot open it.
    """
    import rasterio

    try:
        with rasterio.open(path) as dataset:
            named = [band_name_and_wavelength(dataset, i) for i in range(1, dataset.count + 1)]
            driver = dataset.driver
    except rasterio.errors.RasterioIOError as error:
        raise ProductError(
            f"cannot open {path} as a raster ({error}); choose a raster file (GeoTIFF, JP2, VRT), "
            f"a Sentinel-2 .SAFE product or zip, a Landsat MTL file, or a folder of band files."
        ) from error
    return HarmonisedRaster(
        path=str(path),
        band_names=tuple(name for name, _ in named),
        wavelengths_nm=tuple(wavelength for _, wavelength in named),
        sensor=None,
        units=None,
        product=f"{driver} {Path(str(path)).name}",
        notes=(),
    )
