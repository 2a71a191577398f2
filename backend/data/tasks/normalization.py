"""Normalising task samples for a model: per-band ``(raw - mean) / std`` per input sensor.

Task datasets return raw values in each sensor's registry units so that training (torch) and ONNX
evaluation (numpy) can share them and apply the statistics the model was trained with (the
registry's defaults, ``msgfm data stats`` output, or a checkpoint's). No data is per pixel, as in
the inference engine (:mod:`backend.inference.preprocessing`): a pixel with any band missing (NaN)
is no data in every band of its input, is left out of per-tile statistics, and becomes 0 after
normalisation, i.e. the band mean. Training and evaluation therefore see exactly what a user's
raster gives the exported model.

Statistics are never filled in behind the caller's back: given statistics (a checkpoint's, a
corpus') must cover every input sensor, or normalising refuses with the sensors it has. An encoder
whose checkpoint has no statistics for a sensor was never pretrained on it (its patch embedding is
untrained), so registry defaults would score a different model than the one named. A caller that
means the registry's published statistics says so: ``stats=REGISTRY_STATISTICS``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from ...sensors import SENSORS, Sensor, get_sensor, normalize

# The deliberate choice of the sensor registry's published statistics (no data statistics).
REGISTRY_STATISTICS = "registry"

Stats = Union[str, Mapping[str, Any], None]


def _per_sensor(stats: Stats) -> Optional[Mapping[str, Any]]:
    """``{sensor: {"mean", "std"}}`` of statistics given as that or as a statistics document
    (``{"sensors": {...}}``, ``msgfm data stats`` and pretraining checkpoints); None for the
    registry's."""
    if stats is None:
        raise ValueError(
            "no band statistics given: pass the model's or corpus' statistics, or "
            "REGISTRY_STATISTICS to use the sensor registry's published ones on purpose"
        )
    if isinstance(stats, str):
        if stats != REGISTRY_STATISTICS:
            raise ValueError(
                f"unknown statistics {stats!r}; give a mapping or {REGISTRY_STATISTICS!r}"
            )
        return None
    if "sensors" in stats and isinstance(stats["sensors"], Mapping) and "mean" not in stats:
        return stats["sensors"]
    return stats


def missing_statistics_error(name: str, stats: Mapping[str, Any]) -> ValueError:
    """The error of a sensor the given statistics do not cover."""
    return ValueError(
        f"the band statistics given have no entry for sensor {name!r} (they cover "
        f"{', '.join(sorted(stats)) or 'no sensor'}): a model whose checkpoint lacks {name!r} "
        f"was not trained on it. Use a checkpoint trained on {name!r}, or pass "
        "REGISTRY_STATISTICS to use the registry's published statistics on purpose"
    )


def sensor_with_stats(name: str, stats: Stats) -> Sensor:
    """The registry entry for ``name`` with mean/std replaced by ``stats[name]``.

    Args:
        name: A registered sensor.
        stats: ``{sensor: {"mean", "std"}}`` (or a statistics document with ``"sensors"``), which
            must have ``name``; or :data:`REGISTRY_STATISTICS` for the registry's own.

    Raises:
        ValueError: ``stats`` has no entry for ``name``.
    """
    sensor = get_sensor(name)
    per_sensor = _per_sensor(stats)
    if per_sensor is None:
        return sensor
    if name not in per_sensor:
        raise missing_statistics_error(name, per_sensor)
    entry = per_sensor[name]
    return dataclasses.replace(
        sensor, mean=tuple(map(float, entry["mean"])), std=tuple(map(float, entry["std"]))
    )


def normalize_inputs(
    inputs: Mapping[str, np.ndarray],
    stats: Stats,
    sensors: Optional[Mapping[str, str]] = None,
) -> Dict[str, np.ndarray]:
    """Normalise every input of a sample.

    Args:
        inputs: ``{input name: (C, H, W) raw values}``; the input name is the sensor name unless
            ``sensors`` maps it to one.
        stats: ``{sensor: {"mean": [...], "std": [...]}}`` for every input's sensor, or
            :data:`REGISTRY_STATISTICS` for the registry's published statistics.
        sensors: ``{input name: sensor name}`` for inputs not named after their sensor.

    Raises:
        ValueError: ``stats`` lacks an input's sensor (never a silent registry default).

    Returns:
        ``{input name: float32 (C, H, W)}`` with no-data pixels (any band NaN) at 0 in every band.
    """
    per_sensor = _per_sensor(stats)
    out = {}
    for name, values in inputs.items():
        sensor_name = (sensors or {}).get(name, name)
        values = np.asarray(values, dtype=np.float32)
        valid = np.isfinite(values).all(axis=-3, keepdims=True)
        values = np.where(valid, values, np.float32(np.nan))
        if per_sensor is not None and sensor_name in per_sensor and sensor_name not in SENSORS:
            # An input without a registry entry needs its statistics given.
            mean = np.asarray(per_sensor[sensor_name]["mean"], dtype=np.float32).reshape(-1, 1, 1)
            std = np.asarray(per_sensor[sensor_name]["std"], dtype=np.float32).reshape(-1, 1, 1)
            values = (np.asarray(values, dtype=np.float32) - mean) / std
        else:
            values = normalize(sensor_with_stats(sensor_name, stats), values)
        values = np.where(valid, values, np.float32(0.0))
        out[name] = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    return out


def absent_inputs(samples: Any, sensors: Any) -> Dict[str, int]:
    """How many of ``samples`` have no data at all for each input in ``sensors``.

    Such an input is fed to the model as 0 in every band after normalisation (the band means, see
    :func:`normalize_inputs`). A model trained with such samples learned to work without that
    input, and export records it (``InputSpec.optional``), so a run may leave it out and is fed
    the same.

    Args:
        samples: A task dataset (``len`` and indexing) whose samples have raw ``inputs``.
        sensors: The model's input names.

    Returns:
        ``{input name: number of samples without any valid pixel}``, every name listed.
    """
    counts = {name: 0 for name in sensors}
    for index in range(len(samples)):
        inputs = samples[index]["inputs"]
        for name in counts:
            values = np.asarray(inputs[name], dtype=np.float32)
            if not np.isfinite(values).all(axis=-3).any():
                counts[name] += 1
    return counts


def normalize_sample(
    sample: Mapping[str, Any],
    stats: Stats,
    sensors: Optional[Mapping[str, str]] = None,
) -> Dict[str, Any]:
    """A copy of a task sample whose ``inputs`` are normalised (targets keep their units)."""
    out = dict(sample)
    out["inputs"] = normalize_inputs(sample["inputs"], stats, sensors)
    return out


# --- product levels -----------------------------------------------------------------------------
# Sentinel-2 top-of-atmosphere (L1C) and surface reflectance (L2A) are the same bands in the same
# units but not the same values (B01 and B09 differ by several standard deviations). A corpus'
# statistics describe the product levels it was computed from; imagery of another level is
# normalised with statistics of its own level, so that the encoder sees what it was trained on:
# inputs of about zero mean and unit variance per band.


def statistics_levels(sensor: str, entry: Mapping[str, Any]) -> Optional[Tuple[str, ...]]:
    """The product levels a sensor's statistics entry describes (None: not recorded).

    Read from the entry's ``product_levels`` (written by pretraining since the statistics became
    level-aware); older entries say it in their ``source`` (``"registry"``, or ``"corpus (L1C;
    ...)"``).
    """
    from ...sensors import STATISTICS_PRODUCT_LEVELS

    levels = entry.get("product_levels")
    if levels:
        return tuple(str(level) for level in levels)
    source = str(entry.get("source", ""))
    if source == "registry":
        return STATISTICS_PRODUCT_LEVELS.get(sensor)
    if source.startswith("corpus ("):
        listed = source[len("corpus (") :].split(";")[0].rstrip(")")
        return tuple(part.strip() for part in listed.split(","))
    return None


def statistics_for_level(
    sensor: str, entry: Mapping[str, Any], level: Optional[str]
) -> Dict[str, Any]:
    """A sensor's statistics for imagery of product ``level``.

    The entry itself where it describes ``level`` (or either is unknown: sensors without product
    levels, such as SAR and elevation, and entries that never recorded one); the registry's
    published statistics where those describe ``level`` (:data:`backend.sensors.
    STATISTICS_PRODUCT_LEVELS`).

    Raises:
        ValueError: neither the entry nor the registry describes ``level``: no statistics would
            put such imagery where the model expects it.
    """
    from ...sensors import STATISTICS_PRODUCT_LEVELS

    levels = statistics_levels(sensor, entry)
    if level is None or levels is None or level in levels:
        return dict(entry)
    described = STATISTICS_PRODUCT_LEVELS.get(sensor, ())
    if level in described:
        registry = get_sensor(sensor)
        if list(entry.get("bands", registry.bands)) != list(registry.bands):
            raise ValueError(
                f"the {sensor!r} statistics are of bands {list(entry['bands'])}, the registry's "
                f"{level} statistics of {list(registry.bands)}"
            )
        return {
            **entry,
            "mean": list(registry.mean),
            "std": list(registry.std),
            "source": "registry",
            "product_levels": list(described),
        }
    raise ValueError(
        f"{sensor!r} imagery of product level {level} has no statistics: the model's describe "
        f"{'/'.join(levels)} and the registry's {'/'.join(described) or 'none'}. Use a model "
        f"pretrained on {level} imagery"
    )
