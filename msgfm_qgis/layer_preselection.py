"""Preselecting, in an algorithm's dialog, the project layer that fits each model input.

Without it the Processing dialog puts the first raster layer of the project in every layer box
(the SAR layer in both boxes of Remove clouds). Each raster layer of the project is scored against
each model input: its band count, band descriptions that name the input's bands, and sensor words
in its name (``s2``, ``sentinel-2``, ``s1``, ``sar``, ``vv``, ``pan``...). Every input gets the
best-scoring layer not given to another input; an input no layer fits gets none.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence

from .layers import band_names
from .model_checks import match_band_names

# Words in a layer name that point to a sensor (lower case, matched as whole tokens).
SENSOR_WORDS: Dict[str, Sequence[str]] = {
    "s2": ("s2", "sentinel2", "sentinel-2", "msi", "l2a", "l1c", "s2a", "s2b"),
    "sar": ("s1", "sentinel1", "sentinel-1", "sar", "vv", "vh", "grd", "s1a", "s1b"),
    "pan": ("pan", "panchromatic"),
    "ms": ("ms", "multispectral", "mul"),
    "rgb": ("rgb", "ortho", "aerial", "photo"),
    "dsm": ("dsm", "dem", "elevation", "height", "lidar"),
    "landsat": ("landsat", "l7", "l8", "etm", "lsat7", "lsat"),
}


def _tokens(name: str) -> List[str]:
    lowered = name.lower()
    return re.split(r"[^a-z0-9-]+", lowered) + re.split(r"[^a-z0-9]+", lowered)


def layer_score(layer: Any, sensor: str, bands: Sequence[str]) -> int:
    """How well ``layer`` fits an input of ``sensor`` with ``bands`` (0: not at all)."""
    count = layer.bandCount()
    if count < len(bands):
        return 0
    score = 1
    if count == len(bands):
        score += 3
    if match_band_names(band_names(layer), bands) is not None:
        score += 4
    words = SENSOR_WORDS.get(sensor, (sensor,))
    if any(token in words for token in _tokens(layer.name())):
        score += 3
    return score


def preselect(
    layers: Sequence[Any], inputs: Sequence[Any], minimum: int = 2
) -> List[Optional[Any]]:
    """One layer (or None) per model input spec in ``inputs``, each layer used at most once.

    Args:
        layers: the project's raster layers.
        inputs: the model's input specs (``sensor`` and ``bands``), in the dialog's order.
        minimum: the lowest score worth a preselection.
    """
    pairs = []
    for i, spec in enumerate(inputs):
        for j, layer in enumerate(layers):
            score = layer_score(layer, spec.sensor, spec.bands)
            if score >= minimum:
                pairs.append((score, -i, -j, i, j))
    chosen: List[Optional[Any]] = [None] * len(inputs)
    used = set()
    for _, _, _, i, j in sorted(pairs, reverse=True):
        if chosen[i] is None and j not in used:
            chosen[i] = layers[j]
            used.add(j)
    return chosen
