"""Every pretraining scene decoded once, normalised, on disk as memory-mapped arrays.

Without it each process (each run, each seed, each DataLoader worker) decodes every scene again on
first use: the Sentinel-2 JPEG2000 band files of the samples take seconds each, the 160 small
Sentinel-1 scenes of the time series together as long. The cache decodes each scene of a manifest
onto its reference grid once, normalises it with the run's band statistics and keeps it as one
``.npy`` per scene and sensor, which every process maps read-only: crops are slices of the map and
the operating system shares the pages between workers.

The values are those the uncached path gives, bit for bit: sensors normalised with fixed
statistics (``mean_std``) are normalised whole, which is the same elementwise arithmetic as
normalising a crop; no-data pixels (any band missing) are stored as NaN in every band, so a crop's
valid map is read back from it and its no-data pixels become 0 as the normaliser makes them.
Sensors normalised per tile (elevation) depend on the crop, so they are stored raw and normalised
per crop. Scenes larger than :data:`~backend.data.scene.PRELOAD_MAX_PIXELS` are decoded strip by
strip; their resampled bands can differ in the last bits from a window read (GDAL warps another
extent), which the uncached path also reads window by window.

An entry is keyed on what decides its values: the cache format, each source's spec, each scene's
band files (path, band index, scale, resampling, size and modification time) and the statistics of
every sensor. A run with other statistics or changed files gets a new entry; an entry is written
into a temporary folder and renamed into place, so a crashed or concurrent build never leaves a
half-written entry that another run would read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..sensors import get_sensor
from .manifest import Manifest
from .scene import PRELOAD_MAX_PIXELS, ArrayScene, Scene

CACHE_FORMAT = "msgfm-crop-cache/1"
INDEX_NAME = "index.json"
# Rows decoded at a time for scenes too large to hold whole in memory.
_STRIP_ROWS = 1024


@dataclass(frozen=True)
class CachedRaster:
    """One sensor of one scene in the cache.

    Attributes:
        file: ``.npy`` file name inside the entry.
        normalized: True when the values are normalised (no data = NaN); False for raw values
            of a per-tile sensor (normalised per crop).
    """

    file: str
    normalized: bool


def default_cache_dir() -> Path:
    """``crop-cache/`` beside the sample data (``$MSGFM_DATA_DIR`` or ``~/.cache/msgfm``)."""
    from .fetch import cache_root

    return cache_root() / "crop-cache"


def resolve_cache_dir(value: Optional[str]) -> Optional[Path]:
    """The cache folder of a ``--crop-cache`` value: ``auto`` (the default folder), a folder,
    or None / ``""`` / ``off`` (no cache)."""
    if value is None or str(value).strip().lower() in ("", "off", "none"):
        return None
    if str(value).strip().lower() == "auto":
        return default_cache_dir()
    return Path(value).expanduser()


def cache_key(manifest: Manifest, stats: Mapping[str, Any]) -> str:
    """SHA-256 of everything the cached values depend on (see the module docstring)."""
    document = {
        "format": CACHE_FORMAT,
        "root": str(manifest.root),
        "sources": [
            {
                "spec": source.spec,
                "scenes": [_scene_identity(scene) for scene in source.scenes],
            }
            for source in manifest.sources
        ],
        # Only what the cached values are computed from (not notes such as a source).
        "stats": {
            name: {k: stats[name].get(k) for k in ("bands", "mean", "std", "normalization")}
            for name in sorted(stats)
            if name in manifest.sensors
        },
    }
    text = json.dumps(document, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _scene_identity(scene: Scene) -> Dict[str, Any]:
    rasters = []
    for raster in scene.rasters:
        files = []
        for band in raster.sources:
            try:
                info = os.stat(band.path)
                stamp = [info.st_size, info.st_mtime_ns]
            except OSError:
                stamp = None
            files.append([band.path, band.index, band.scale, stamp])
        rasters.append(
            {
                "sensor": raster.sensor,
                "bands": list(raster.bands),
                "resampling": raster.resampling,
                "files": files,
            }
        )
    identity: Dict[str, Any] = {"name": scene.name, "rasters": rasters}
    if isinstance(scene, ArrayScene):
        identity["loader"] = _loader_identity(scene.loader)
        identity["pixel_size"] = scene.pixel_size
    return identity


def _loader_identity(loader: Any) -> Any:
    # A functools.partial of a module function and its arguments (the file among them; its
    # stamp is in the scene's band sources). Never the repr of a function: it holds an address
    # that differs between processes.
    if isinstance(loader, functools.partial):
        function = loader.func
        return [
            f"{function.__module__}.{function.__qualname__}",
            [str(a) for a in loader.args],
            {k: str(v) for k, v in sorted(loader.keywords.items())},
        ]
    return f"{type(loader).__module__}.{getattr(loader, '__qualname__', type(loader).__name__)}"


class CropCache:
    """A built cache entry: read crops of the normalised scenes.

    Open one with :meth:`open_or_build`. Arrays are mapped on first use in each process, so the
    object pickles small into DataLoader workers.

    Args:
        folder: The entry's folder (holds ``index.json`` and the ``.npy`` files).
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        index = json.loads((self.folder / INDEX_NAME).read_text())
        if index.get("format") != CACHE_FORMAT:
            raise ValueError(f"{self.folder} is not a crop cache entry of format {CACHE_FORMAT}")
        self.key = str(index["key"])
        self._scenes: Dict[Tuple[int, int], Dict[str, Any]] = {
            (int(s["source"]), int(s["scene"])): s for s in index["scenes"]
        }
        self._maps: Dict[str, np.ndarray] = {}

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    @classmethod
    def open_or_build(
        cls,
        manifest: Manifest,
        stats: Mapping[str, Any],
        normalizer: Callable[[str, np.ndarray], np.ndarray],
        cache_dir: Path,
        say: Callable[[str], None] = lambda message: None,
    ) -> CropCache:
        """The entry for this manifest and these statistics, built first if missing.

        Args:
            manifest: The parsed manifest (its scenes are read only when building).
            stats: ``{sensor: {"mean", "std", ...}}`` the normaliser uses (part of the key).
            normalizer: ``normalizer(sensor, raw)`` as the dataset normalises a crop.
            cache_dir: Folder that holds the entries (one subfolder per key).
            say: Where to report a build (a line before and after).
        """
        key = cache_key(manifest, stats)
        folder = Path(cache_dir) / key
        if (folder / INDEX_NAME).is_file():
            return cls(folder)
        started = time.time()
        say(f"msgfm: decoding every scene of manifest {manifest.name!r} once into {folder}")
        build_entry(manifest, normalizer, folder, key)
        say(f"msgfm: crop cache built in {time.time() - started:.1f} s")
        return cls(folder)

    def shape(self, source: int, scene: int) -> Tuple[int, int]:
        """``(height, width)`` of a scene's reference grid."""
        entry = self._entry(source, scene)
        return int(entry["height"]), int(entry["width"])

    def is_normalized(self, source: int, scene: int, sensor: str) -> bool:
        """Whether ``sensor``'s values in this scene are stored normalised."""
        return bool(self._entry(source, scene)["rasters"][sensor]["normalized"])

    def crop(
        self, source: int, scene: int, sensor: str, row: int, col: int, height: int, width: int
    ) -> np.ndarray:
        """A window of a scene's stored values, float32 (C, H, W), NaN outside the scene and
        where there is no data (a copy: callers may write to it)."""
        from .scene import crop_array

        entry = self._entry(source, scene)
        try:
            name = entry["rasters"][sensor]["file"]
        except KeyError:
            raise KeyError(
                f"scene {entry['name']!r} has no sensor {sensor!r} in crop cache {self.folder}"
            ) from None
        values = self._maps.get(name)
        if values is None:
            values = self._maps[name] = np.load(self.folder / name, mmap_mode="r")
        return crop_array(values, row, col, height, width)

    def _entry(self, source: int, scene: int) -> Dict[str, Any]:
        try:
            return self._scenes[(source, scene)]
        except KeyError:
            raise KeyError(
                f"crop cache {self.folder} has no scene {scene} of source {source}: it was built "
                "for another manifest"
            ) from None


def build_entry(
    manifest: Manifest,
    normalizer: Callable[[str, np.ndarray], np.ndarray],
    folder: Path,
    key: str,
) -> Path:
    """Decode and normalise every scene into ``folder`` (atomically: a temporary folder renamed).

    Returns:
        ``folder`` (built by this call, or by a concurrent one that finished first).
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-", dir=folder.parent))
    try:
        scenes: List[Dict[str, Any]] = []
        for source_index, source in enumerate(manifest.sources):
            for scene_index, scene in enumerate(source.scenes):
                scenes.append(
                    _write_scene(
                        scene, normalizer, staging, f"{source_index:03d}_{scene_index:05d}"
                    )
                )
                scenes[-1].update(source=source_index, scene=scene_index)
        index = {"format": CACHE_FORMAT, "key": key, "manifest": manifest.name, "scenes": scenes}
        (staging / INDEX_NAME).write_text(json.dumps(index, indent=1) + "\n")
        try:
            os.rename(staging, folder)
        except OSError:
            # Another process renamed its complete entry into place first: keep that one.
            if not (folder / INDEX_NAME).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _write_scene(
    scene: Scene, normalizer: Callable[[str, np.ndarray], np.ndarray], staging: Path, stem: str
) -> Dict[str, Any]:
    grid = scene.reference_grid()
    height, width = grid.height, grid.width
    rasters: Dict[str, Any] = {}
    whole = height * width <= PRELOAD_MAX_PIXELS or isinstance(scene, ArrayScene)
    for sensor in scene.sensors:
        per_tile = get_sensor(sensor).normalization == "per_tile"
        bands = len(scene.raster(sensor).bands)
        name = f"{stem}_{sensor}.npy"
        out = np.lib.format.open_memmap(
            staging / name, mode="w+", dtype=np.float32, shape=(bands, height, width)
        )
        step = height if whole else _STRIP_ROWS
        for top in range(0, height, step):
            rows = min(step, height - top)
            raw = scene.read(sensor, top, 0, rows, width)
            out[:, top : top + rows] = (
                raw if per_tile else _normalized_with_nodata(normalizer, sensor, raw)
            )
        out.flush()
        del out
        rasters[sensor] = {"file": name, "normalized": not per_tile}
    scene.release()
    return {"name": scene.name, "height": height, "width": width, "rasters": rasters}


def _normalized_with_nodata(
    normalizer: Callable[[str, np.ndarray], np.ndarray], sensor: str, raw: np.ndarray
) -> np.ndarray:
    # The normaliser sets no-data pixels to 0; NaN keeps them recognisable in the cache.
    valid = np.isfinite(raw).all(axis=0)
    return np.where(valid, normalizer(sensor, raw), np.float32(np.nan)).astype(np.float32)
