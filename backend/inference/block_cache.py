"""A bound on GDAL's block cache while the engine reads and writes.

GDAL keeps recently read and written raster blocks in one process-wide cache whose default size is
5 % of the machine's memory. A streaming run never reads a block again once the scan has moved on a
band of tile rows, so on a large raster that cache only grows: it is what made the engine's peak memory rise
with the raster size. While a run is in progress the cache is held to
:data:`ENGINE_BLOCK_CACHE_BYTES`, enough for the blocks of the chunks being read and of the rows being
written; a smaller limit set by the user is kept, and the previous limit comes back when the last
concurrent run ends. The GDAL configuration option ``GDAL_CACHEMAX`` itself is never changed.

The limit is GDAL's, so other GDAL users in the same process (QGIS drawing layers, when the engine
runs inside QGIS) share the smaller cache for the duration of a run.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator, Optional

ENGINE_BLOCK_CACHE_BYTES = 16 * 2**20

_lock = threading.Lock()
_active = 0
_previous: Optional[int] = None  # the limit before the first of the concurrent runs
_applied: Optional[int] = None  # the limit those runs set (None: they kept the previous one)


def current_limit() -> int:
    """GDAL's block cache limit in bytes, for the GDAL that rasterio uses."""
    from rasterio._env import get_gdal_config  # the cache size in bytes, not the config text

    return int(get_gdal_config("GDAL_CACHEMAX"))


@contextmanager
def bounded_block_cache(limit: int = ENGINE_BLOCK_CACHE_BYTES) -> Iterator[None]:
    """Hold GDAL's block cache to at most ``limit`` bytes inside the block."""
    from rasterio._env import set_gdal_config  # sets the cache size, not the config option

    global _active, _previous, _applied
    with _lock:
        if _active == 0:
            _previous, _applied = current_limit(), None
            if _previous > limit:
                set_gdal_config("GDAL_CACHEMAX", limit)
                _applied = limit
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            # Restored unless someone changed the limit meanwhile (then theirs is kept).
            if _active == 0 and _applied is not None and current_limit() == _applied:
                set_gdal_config("GDAL_CACHEMAX", _previous)
