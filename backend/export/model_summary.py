"""A model's metadata as a few lines a person reads: ``msgfm info`` and *Model information*.

What a user needs to choose a model and trust its figures: the task, the sensors and bands in their
units, the classes, the scores with the split they were measured on (test: tiles never trained nor
chosen on; validation: tiles that chose the checkpoint, so optimistic), what it was trained on and
its licence. ``msgfm info --json`` gives the full metadata.
"""

from __future__ import annotations

import math
from typing import Any, List

from .schema import ModelMetadata

# Scores shown first, when the model has them; per-class scores follow on one line.
_HEADLINE = ("overall_accuracy", "mean_iou", "accuracy", "macro_f1", "micro_map", "psnr", "ssim")
_COUNTS = ("n_pixels", "n_samples", "n_classes_absent", "loss")
_SPLITS = {
    "test": "test scores (held-back tiles, never trained nor chosen on)",
    "validation": "validation scores (the tiles that chose the checkpoint: optimistic)",
}


def _units(sensor: str) -> str:
    from ..sensors import get_sensor

    try:
        return get_sensor(sensor).units
    except (KeyError, ValueError):
        return "units unknown to this version"


def _score(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "undefined"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _levels_text(metadata: ModelMetadata, sensor: str) -> str:
    from ..product_levels import LEVEL_MEANINGS

    levels = metadata.product_levels.get(sensor)
    if not levels:
        return ""
    meanings = dict.fromkeys(LEVEL_MEANINGS.get(level, "") for level in levels)
    named = " or ".join(levels) + f" ({', '.join(m for m in meanings if m)})"
    refused = "" if "L1C" in levels else ", not L1C (top of atmosphere)"
    return f"; domain: product level {named}{refused}"


def summary_lines(metadata: ModelMetadata) -> List[str]:
    """The model in a few lines: task, inputs, outputs and classes, scores, training data, licence."""
    lines = [
        f"{metadata.model_name} {metadata.model_version}: {metadata.task} model",
        f"Tiles: {metadata.tile_size} px, default overlap {metadata.default_overlap:.0%}",
    ]
    for spec in metadata.inputs:
        resolution = f" at {spec.resolution_m:g} m" if spec.resolution_m else ""
        lines.append(
            f"Input '{spec.name}': sensor {spec.sensor}, {len(spec.bands)} bands "
            f"({', '.join(spec.bands)}){resolution}, in {_units(spec.sensor)}"
            + ("; optional (trained with samples without it)" if spec.optional else "")
            + _levels_text(metadata, spec.sensor)
        )
    for spec in metadata.outputs:
        if spec.classes:
            classes = ", ".join(f"{c.value} {c.name}" for c in spec.classes)
            lines.append(
                f"Output '{spec.name}': {spec.kind}, {len(spec.classes)} classes: {classes}"
            )
        else:
            lines.append(f"Output '{spec.name}': {spec.kind}, {len(spec.bands)} bands")
    lines.extend(score_lines(metadata))
    lines.append(f"Trained on: {metadata.trained_on or 'not recorded'}")
    lines.append(f"Licence: {metadata.license or 'not recorded'}")
    return lines


def score_lines(metadata: ModelMetadata) -> List[str]:
    """The model's scores, labelled with the split they come from."""
    metrics = metadata.metrics
    if not metrics:
        return ["Scores: none recorded"]
    split = str(metadata.extra.get("metrics_split", ""))
    label = _SPLITS.get(split, "scores (split not recorded: treat them as validation scores)")
    headline = [f"{name} {_score(metrics[name])}" for name in _HEADLINE if name in metrics]
    rest = [
        f"{name} {_score(value)}"
        for name, value in sorted(metrics.items())
        if name not in _HEADLINE and name not in _COUNTS
    ]
    samples = metrics.get("n_samples")
    on = f" on {int(samples)} tiles" if isinstance(samples, (int, float)) else ""
    lines = [f"{label[0].upper()}{label[1:]}{on}: {', '.join(headline) or 'see below'}"]
    if rest:
        lines.append(f"  also: {', '.join(rest)}")
    return lines
