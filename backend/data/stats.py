"""Per-band mean and standard deviation of a manifest's data, for normalisation.

Statistics come from random crops drawn exactly as training draws them (same sources, weights and
windows), over pixels with data only. For per-tile sensors (elevation) each crop is first centred
on its own mean, as the model will see it, so ``std`` is the typical relief within a tile.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Union

import numpy as np

from ..sensors import get_sensor
from .manifest import Manifest
from .pretrain_dataset import PretrainCropDataset

STATS_FORMAT = "msgfm-band-stats/1"


def corpus_product_levels(manifest: Manifest, name: str) -> List[str]:
    """The product levels of a manifest's sources of sensor ``name`` (``unknown`` where a source
    does not say)."""
    return sorted(
        {
            str(source.spec.get("product_level", "unknown"))
            for source in manifest.sources
            if name in source.sensors
        }
    )


def compute_band_stats(
    manifest: Manifest, crop_size: int = 96, num_crops: int = 256, seed: int = 0
) -> Dict[str, Any]:
    """Per-sensor, per-band statistics of ``num_crops`` random crops.

    Returns:
        ``{"format", "manifest", "crop_size", "num_crops", "sensors": {name: {"bands", "mean",
        "std", "pixels", "normalization"}}}``, JSON-serialisable.
    """
    dataset = PretrainCropDataset(manifest, crop_size, seed=seed, flips=False)
    sums: Dict[str, np.ndarray] = {}
    squares: Dict[str, np.ndarray] = {}
    counts: Dict[str, np.ndarray] = {}
    for index in range(num_crops):
        sample = dataset.sample(index, normalized=False)
        pairs = [(sample.sensor, sample.image), (sample.partner_sensor, sample.partner_image)]
        for sensor_name, image in pairs:
            if sensor_name is None:
                continue
            values = image.astype(np.float64)
            if get_sensor(sensor_name).normalization == "per_tile":
                values = values - np.nanmean(values, axis=(1, 2), keepdims=True)
            valid = np.isfinite(values)
            values = np.where(valid, values, 0.0)
            if sensor_name not in sums:
                sums[sensor_name] = np.zeros(values.shape[0])
                squares[sensor_name] = np.zeros(values.shape[0])
                counts[sensor_name] = np.zeros(values.shape[0])
            sums[sensor_name] += values.sum(axis=(1, 2))
            squares[sensor_name] += (values**2).sum(axis=(1, 2))
            counts[sensor_name] += valid.sum(axis=(1, 2))
    sensors: Dict[str, Any] = {}
    for name in sorted(sums):
        n = np.maximum(counts[name], 1)
        mean = sums[name] / n
        std = np.sqrt(np.maximum(squares[name] / n - mean**2, 0.0))
        sensor = get_sensor(name)
        sensors[name] = {
            "bands": list(sensor.bands),
            # A constant band would divide by zero; fall back to the registry's scale.
            "mean": [round(float(m), 6) for m in mean],
            "std": [round(float(s), 6) if s > 1e-6 else float(d) for s, d in zip(std, sensor.std)],
            "pixels": [int(c) for c in counts[name]],
            "normalization": sensor.normalization,
        }
    for name, entry in sensors.items():
        levels = corpus_product_levels(manifest, name)
        if levels and "unknown" not in levels:
            # Imagery of another level is normalised with that level's statistics
            # (backend.data.tasks.normalization.statistics_for_level).
            entry["product_levels"] = levels
    return {
        "format": STATS_FORMAT,
        "manifest": manifest.name,
        "crop_size": crop_size,
        "num_crops": num_crops,
        "seed": seed,
        "sensors": sensors,
    }


def save_band_stats(stats: Dict[str, Any], path: Union[str, Path]) -> Path:
    """Write statistics as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stats, indent=2) + "\n")
    return path


def load_band_stats(path: Union[str, Path]) -> Dict[str, Any]:
    """Read statistics written by :func:`save_band_stats` (checks the format)."""
    document = json.loads(Path(path).read_text())
    if document.get("format") != STATS_FORMAT or "sensors" not in document:
        raise ValueError(
            f"{path} is not a band statistics file ({STATS_FORMAT}); "
            "write one with `msgfm data stats --manifest M --out FILE`"
        )
    return document
