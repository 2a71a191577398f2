"""Finetuning datasets: published downstream-task layouts read into map-style numpy samples.

Every dataset returns dicts of numpy arrays, so torch training (``DataLoader`` collates them) and
ONNX evaluation (numpy) share one reader:

* ``"inputs"``: ``{sensor: float32 (C, H, W)}`` in the sensor registry's units, *not* normalised
  (NaN = no data); :func:`normalize_sample` applies a model's per-band statistics.
* ``"target"``: the task's reference: multi-hot float32 (K,) or int64 class index (scene
  classification), int64 (H, W) with an ignore index (segmentation), float32 (C, H, W) (cloud
  removal, pan-sharpening).
* task extras: ``"cloud_mask"``, ``"valid"``, and where the sample comes from.

Every dataset has ``holdout_units()``; :func:`split` holds back whole patches or areas, or a
contiguous block of tiles of one raster, never random neighbours of training tiles.

Adapters: :class:`BigEarthNetDataset` (S2 + S1, 19 classes), :class:`SEN12MSCRDataset` and
:class:`SimulatedCloudRemovalDataset` (cloud removal), :class:`PanSharpeningDataset` (SpaceNet-style
pan + MS, full and reduced resolution), :class:`ISPRSDataset` (Vaihingen-style image + DSM + colour
labels), :class:`RasterSegmentationDataset` (any rasters + a class raster or polygons).
"""

from __future__ import annotations

from .bigearthnet import BIGEARTHNET19_CLASSES, CORINE_TO_BIGEARTHNET19, BigEarthNetDataset
from .clouds import CloudSettings, simulate_clouds
from .generic import ImageSource, RasterSegmentationDataset
from .isprs import ISPRS_CLASSES, ISPRSDataset
from .normalization import normalize_inputs, normalize_sample
from .sen12mscr import SEN12MSCRDataset, SimulatedCloudRemovalDataset
from .spacenet import PanSharpeningDataset
from .split import Subset, split
from .windows import HoldoutUnit

__all__ = [
    "BIGEARTHNET19_CLASSES",
    "CORINE_TO_BIGEARTHNET19",
    "ISPRS_CLASSES",
    "BigEarthNetDataset",
    "CloudSettings",
    "HoldoutUnit",
    "ISPRSDataset",
    "ImageSource",
    "PanSharpeningDataset",
    "RasterSegmentationDataset",
    "SEN12MSCRDataset",
    "SimulatedCloudRemovalDataset",
    "Subset",
    "normalize_inputs",
    "normalize_sample",
    "simulate_clouds",
    "split",
]
