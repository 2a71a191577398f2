"""Input layers opened without GDAL writing ``.aux.xml`` sidecar files beside them."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def no_sidecars_beside_inputs() -> Iterator[None]:
    """Open raster layers in this block with GDAL's PAM (persistent auxiliary metadata) off.

    A layer that Processing opens from a file name (qgis_process, batch runs, models) gets its
    default contrast stretch from a histogram, which GDAL keeps in ``<file>.aux.xml`` beside the
    input when the layer closes: up to megabytes written into someone else's folder (a read-only
    data cache included). The setting is read when GDAL opens a file, so a layer opened here never
    writes one. It holds for this thread only, and only while layers are opened: the outputs'
    ``.aux.xml`` (class names of a class raster) are still written.
    """
    from osgeo import gdal

    previous = gdal.GetThreadLocalConfigOption("GDAL_PAM_ENABLED", None)
    gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", "NO")
    try:
        yield
    finally:
        gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", previous)
