"""Raster layers as files the inference engine can read, and their band names.

The engine (and the subprocess worker) read rasters with GDAL from a path. A layer backed by a plain
file is used as it is; any other layer (in-memory ``/vsimem/`` rasters, virtual rasters, web
services with a native grid, GeoPackage raster tables) is first written to a GeoTIFF through QGIS's
own raster pipe, so what the model sees is what QGIS reads.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Optional

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProviderRegistry,
    QgsRasterDataProvider,
    QgsRasterFileWriter,
    QgsRasterLayer,
    QgsRasterPipe,
)

from .i18n import tr

# QGIS names bands "Band 1" or, when the raster describes them, "Band 01: B04".
_BAND_NAME = re.compile(r"^Band\s+\d+\s*:\s*(.+)$")


def source_file(layer: QgsRasterLayer) -> Optional[str]:
    """The file on disk behind ``layer`` when GDAL reads it as a whole, else None."""
    if layer.providerType() != "gdal":
        return None
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = parts.get("path")
    if not path or parts.get("layerName") or parts.get("openOptions"):
        return None  # a sub-dataset or a raster opened with options: not the plain file
    # Absolute: a name relative to the current folder (qgis_process's command line) means the
    # same file to a worker process and in a data spec, which resolves it against its data root.
    return os.path.abspath(path) if os.path.isfile(path) else None


def product_source(layer: QgsRasterLayer) -> Optional[str]:
    """The GDAL SENTINEL2 subdataset a layer was loaded from (``SENTINEL2_L2A:...MTD.xml:10m:...``),
    which :func:`backend.products.harmonise` reads as the whole product; else None."""
    source = layer.source() if layer.providerType() == "gdal" else ""
    return source if source.upper().startswith("SENTINEL2_") else None


def raster_file(
    layer: QgsRasterLayer, folder: Path, context: QgsProcessingContext, label: str
) -> str:
    """A GeoTIFF (or other GDAL file) path with the pixels of ``layer``.

    Args:
        layer: the raster layer.
        folder: where to write a copy when the layer is not a plain file.
        context: the Processing context (its coordinate transform context is used).
        label: the parameter's name, for messages.
    """
    path = product_source(layer) or source_file(layer)
    if path is not None:
        return path
    return export_geotiff(layer, folder, context, label)


def export_geotiff(
    layer: QgsRasterLayer, folder: Path, context: QgsProcessingContext, label: str
) -> str:
    """Write ``layer`` at its native grid to a GeoTIFF in ``folder``; returns its path."""
    provider = layer.dataProvider()
    if provider is None or not layer.isValid():
        raise QgsProcessingException(
            tr("Layer '{}' ({}) cannot be read").format(layer.name(), label)
        )
    if not provider.capabilities() & QgsRasterDataProvider.Size or provider.xSize() <= 0:
        raise QgsProcessingException(
            tr(
                "Layer '{}' ({}) has no native pixel grid (e.g. a web map service): save it "
                "as a GeoTIFF with a resolution first (right-click > Export > Save As...) and "
                "use that file"
            ).format(layer.name(), label)
        )
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", layer.name()) or "layer"
    target = folder / f"{safe}_{len(list(folder.iterdir()))}.tif"
    pipe = QgsRasterPipe()
    if not pipe.set(provider.clone()):
        raise QgsProcessingException(
            tr("Layer '{}' ({}) cannot be copied").format(layer.name(), label)
        )
    writer = QgsRasterFileWriter(str(target))
    writer.setOutputFormat("GTiff")
    error = writer.writeRaster(
        pipe,
        provider.xSize(),
        provider.ySize(),
        provider.extent(),
        provider.crs(),
        context.transformContext(),
    )
    if error != QgsRasterFileWriter.NoError or not target.is_file():
        raise QgsProcessingException(
            tr(
                "Layer '{}' ({}) could not be written to a temporary GeoTIFF (QGIS raster "
                "writer error {}); save it as a GeoTIFF and use that file"
            ).format(layer.name(), label, int(error))
        )
    return str(target)


def band_names(layer: QgsRasterLayer) -> List[str]:
    """The bands' descriptions (e.g. ``B04``), or ``""`` for a band without one."""
    names = []
    for band in range(1, layer.bandCount() + 1):
        match = _BAND_NAME.match(layer.bandName(band))
        names.append(match.group(1).strip() if match else "")
    return names
