"""Conventions every layer shares (data encoding, losses, scores, the plugin's class rasters).

``IGNORE_INDEX`` is the label of a pixel or sample without a class (nodata, unlabelled, outside a
polygon): the datasets write it, the segmentation loss and the scores skip it, and a class raster
written by the plugin uses it as nodata. It is 255 so that labels fit uint8 with up to 255 classes.

An undefined score (NaN: a class absent from the tiles scored, nothing to average) is ``null`` in
every JSON the backend and the plugin write (JSON has no NaN; Python's ``json`` would write a bare
``NaN`` that other readers reject): :func:`json_safe`.
"""

import math
from typing import Any

IGNORE_INDEX = 255

# Said beside scores written as null, so that a reader knows what null means there.
NULL_SCORE_REASON = (
    "null: the score is undefined on the tiles scored (e.g. a class absent from them)"
)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity (nested in dicts, lists and tuples) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
