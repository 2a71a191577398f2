"""Cloud removal: a cloud-free Sentinel-2 image from a cloudy one and Sentinel-1 SAR."""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple

from .base import Task


class CloudRemoval(Task):
    name = "cloud-removal"
    # The correction applies only where a cloud weight is predicted: clear pixels pass through.
    head = "gated-residual-image"
    target_sensor = "s2"
    # Sentinel-2 reflectance x 10000 (SEN12MS-CR practice: values clipped to 0..10000).
    data_range = 10000.0

    def image_sensors(self, sensors: Sequence[str], dataset: Any) -> Tuple[List[str], str]:
        """The cloudy Sentinel-2 image first, then SAR (always an input: it sees through clouds)."""
        sensors = list(sensors) + ([] if "sar" in sensors else ["sar"])
        return ["s2", *[s for s in sensors if s != "s2"]], "s2"

    def missing_input_advice(self, sensors: Sequence[str], missing: Sequence[str]) -> str:
        if "sar" not in missing or "s2" not in sensors:
            return ""
        return (
            "It was not trained with Sentinel-2 samples without SAR, so it cannot run without "
            "SAR: give a Sentinel-1 VV/VH raster, or use a cloud-removal model trained with "
            "S2-only samples (its metadata marks the SAR input optional)"
        )
