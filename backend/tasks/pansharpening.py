"""Pan-sharpening: multispectral bands at the panchromatic band's resolution."""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple

from .base import Task


class Pansharpening(Task):
    name = "pansharpening"
    # Brovey computed in the graph is the residual's base: the untrained model is the classical
    # method and finetuning learns a correction of it (backend/models/heads.py).
    head = "brovey-residual-image"
    target_sensor = "ms"
    # WorldView-2 MS is 11-bit DN; the pan:MS ratio of WorldView-2/3 (the SpaceNet-6 samples).
    data_range = 2047.0
    ergas_ratio = 4

    def monitor(self, multilabel: bool) -> Tuple[str, str]:
        """The validation loss: the finetuning objective, L1 plus the weighted spectral angle
        when the run adds it (``--sam-loss``); MAE alone would keep a checkpoint whose spectra
        drifted."""
        return ("val_loss", "min")

    def image_sensors(self, sensors: Sequence[str], dataset: Any) -> Tuple[List[str], str]:
        """The dataset's pan and MS sensors (``sensor_names``; default ``pan``, ``ms``)."""
        pan, ms = getattr(dataset, "sensor_names", ("pan", "ms"))
        return [pan, ms], ms
