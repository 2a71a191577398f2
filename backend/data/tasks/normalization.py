"""Normalising task samples for a model: per-band ``(raw - mean) / std`` per input sensor.

Task datasets return raw values in each sensor's registry units so that training (torch) and ONNX
evaluation (numpy) can share them and apply the statistics the model was trained with (the
registry's defaults, ``msgfm data stats`` output, or a checkpoint's). No data is per pixel, as in
the inference engine (:mod:`backend.inference.preprocessing`): a pixel with any band missing (NaN)
is no data in every band of its input, is left out of per-tile statistics, and becomes 0 after
normalisation, i.e. the band mean. Training and evaluation therefore see exactly what a user's
raster gives the exported model.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from ...sensors import SENSORS, Sensor, get_sensor, normalize


def sensor_with_stats(
    name: str, stats: Optional[Mapping[str, Mapping[str, Sequence[float]]]] = None
) -> Sensor:
    """The registry entry for ``name`` with mean/std replaced by ``stats[name]`` when given."""
    sensor = get_sensor(name)
    if stats and name in stats:
        entry = stats[name]
        sensor = dataclasses.replace(
            sensor, mean=tuple(map(float, entry["mean"])), std=tuple(map(float, entry["std"]))
        )
    return sensor


def normalize_inputs(
    inputs: Mapping[str, np.ndarray],
    stats: Optional[Mapping[str, Mapping[str, Sequence[float]]]] = None,
    sensors: Optional[Mapping[str, str]] = None,
) -> Dict[str, np.ndarray]:
    """Normalise every input of a sample.

    Args:
        inputs: ``{input name: (C, H, W) raw values}``; the input name is the sensor name unless
            ``sensors`` maps it to one.
        stats: ``{sensor: {"mean": [...], "std": [...]}}`` overriding the registry defaults.
        sensors: ``{input name: sensor name}`` for inputs not named after their sensor.
            Inputs of no registered sensor (pan-sharpening ``ms``) need an entry in ``stats``.

    Returns:
        ``{input name: float32 (C, H, W)}`` with no-data pixels (any band NaN) at 0 in every band.
    """
    out = {}
    for name, values in inputs.items():
        sensor_name = (sensors or {}).get(name, name)
        values = np.asarray(values, dtype=np.float32)
        valid = np.isfinite(values).all(axis=-3, keepdims=True)
        values = np.where(valid, values, np.float32(np.nan))
        if stats and sensor_name in stats and sensor_name not in SENSORS:
            # An input without a registry entry needs its statistics given.
            mean = np.asarray(stats[sensor_name]["mean"], dtype=np.float32).reshape(-1, 1, 1)
            std = np.asarray(stats[sensor_name]["std"], dtype=np.float32).reshape(-1, 1, 1)
            values = (np.asarray(values, dtype=np.float32) - mean) / std
        else:
            values = normalize(sensor_with_stats(sensor_name, stats), values)
        values = np.where(valid, values, np.float32(0.0))
        out[name] = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    return out


def normalize_sample(
    sample: Mapping[str, Any],
    stats: Optional[Mapping[str, Mapping[str, Sequence[float]]]] = None,
    sensors: Optional[Mapping[str, str]] = None,
) -> Dict[str, Any]:
    """A copy of a task sample whose ``inputs`` are normalised (targets keep their units)."""
    out = dict(sample)
    out["inputs"] = normalize_inputs(sample["inputs"], stats, sensors)
    return out
