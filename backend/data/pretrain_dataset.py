"""Random crops for pretraining: unpaired single-sensor crops and paired crops of one ground window.

Every sample is a pure function of ``(seed, index)``: the source (by weight), the scene, the crop
window, the flips and which sensor of a pair is encoded are all drawn from a generator seeded with
both. Data order therefore needs no sampler state: a run resumed at step ``s`` asks for the same
indexes as the uninterrupted run did, on any number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from .manifest import Manifest

# A crop is re-drawn (up to this many times) while less than ``min_valid_fraction`` of it has data:
# masked SAR borders and nodata collars would otherwise teach the model to paint zeros.
_MAX_CROP_TRIES = 8


@dataclass
class CropSample:
    """One training sample: an image of ``sensor`` and, for a pair, its partner on the same window.

    Images are float32 (C, H, W), normalised for the model (or raw values when asked), no-data
    pixels set to 0 after normalisation (the band mean).
    """

    sensor: str
    image: np.ndarray
    partner_sensor: Optional[str]
    partner_image: Optional[np.ndarray]
    source: str
    scene: str
    row: int
    col: int
    valid_fraction: float


class BandNormalizer:
    """Per-sensor normalisation with statistics computed from data (or the registry defaults).

    Args:
        stats: ``{sensor: {"mean": [...], "std": [...]}}`` as written by ``msgfm data stats``;
            sensors missing from it use the registry's defaults.
    """

    def __init__(self, stats: Optional[Mapping[str, Mapping[str, Sequence[float]]]] = None):
        self.stats = {k: dict(v) for k, v in (stats or {}).items()}

    def sensor(self, name: str):
        """The registry entry with this normaliser's mean/std for ``name``."""
        from .tasks.normalization import sensor_with_stats

        return sensor_with_stats(name, self.stats)

    def __call__(self, name: str, raw: np.ndarray) -> np.ndarray:
        """Normalise raw values (C, H, W) of sensor ``name`` as finetuning and inference do: a
        pixel with any band missing (NaN) is no data and becomes 0 in every band."""
        from .tasks.normalization import normalize_inputs

        return normalize_inputs({name: raw}, self.stats)[name]


class PretrainCropDataset:
    """Index-addressed random crops from the scenes of a manifest.

    Args:
        manifest: Parsed manifest (sources with scenes).
        crop_size: Crop side in pixels of each scene's reference grid.
        seed: Base seed; sample ``i`` is drawn from ``default_rng([seed, i])``.
        normalizer: Normalisation per sensor; None = registry defaults.
        min_valid_fraction: Minimum fraction of pixels with data a crop should have.
        flips: Random horizontal/vertical flips (applied identically to both sensors of a pair).
    """

    def __init__(
        self,
        manifest: Manifest,
        crop_size: int,
        seed: int = 0,
        normalizer: Optional[BandNormalizer] = None,
        min_valid_fraction: float = 0.5,
        flips: bool = True,
    ):
        if crop_size <= 0:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        self.manifest = manifest
        self.crop_size = crop_size
        self.seed = seed
        self.normalizer = normalizer or BandNormalizer()
        self.min_valid_fraction = min_valid_fraction
        self.flips = flips
        weights = np.array([s.weight for s in manifest.sources], dtype=np.float64)
        self._source_cdf = np.cumsum(weights / weights.sum())

    def __len__(self) -> int:
        # Crops are drawn with replacement: the stream is endless, this only bounds an epoch.
        return 2**31 - 1

    @property
    def sensors(self) -> List[str]:
        """Sensors the samples can come from."""
        return self.manifest.sensors

    def __getitem__(self, index: int) -> CropSample:
        return self.sample(index)

    def sample(self, index: int, normalized: bool = True) -> CropSample:
        """Draw sample ``index`` (deterministic in ``seed`` and ``index``)."""
        rng = np.random.default_rng([self.seed, int(index)])
        source_index = int(np.searchsorted(self._source_cdf, rng.random(), side="right"))
        source = self.manifest.sources[min(source_index, len(self.manifest.sources) - 1)]
        scene = source.scenes[int(rng.integers(len(source.scenes)))]
        grid = scene.reference_grid()
        size = self.crop_size
        best = None
        for _ in range(_MAX_CROP_TRIES):
            row = _offset(rng, grid.height, size)
            col = _offset(rng, grid.width, size)
            images = [scene.read(sensor, row, col, size, size) for sensor in scene.sensors]
            valid = min(float(np.isfinite(im).all(axis=0).mean()) for im in images)
            if best is None or valid > best[0]:
                best = (valid, row, col, images)
            if valid >= self.min_valid_fraction:
                break
        valid, row, col, images = best
        if self.flips:
            if rng.random() < 0.5:
                images = [im[:, :, ::-1] for im in images]
            if rng.random() < 0.5:
                images = [im[:, ::-1, :] for im in images]
        sensors = list(scene.sensors)
        # Either sensor of a pair may be the masked one, so both learn to reconstruct the other.
        if scene.paired and rng.random() < 0.5:
            sensors.reverse()
            images.reverse()
        if normalized:
            images = [self.normalizer(s, im) for s, im in zip(sensors, images)]
        else:
            images = [np.ascontiguousarray(im, dtype=np.float32) for im in images]
        return CropSample(
            sensor=sensors[0],
            image=np.ascontiguousarray(images[0]),
            partner_sensor=sensors[1] if scene.paired else None,
            partner_image=np.ascontiguousarray(images[1]) if scene.paired else None,
            source=source.name,
            scene=scene.name,
            row=row,
            col=col,
            valid_fraction=valid,
        )


def _offset(rng: np.random.Generator, extent: int, size: int) -> int:
    if extent >= size:
        return int(rng.integers(0, extent - size + 1))
    # A scene smaller than the crop is centred; the missing border reads as no data.
    return -((size - extent) // 2)


def group_by_sensor(samples: Sequence[CropSample]) -> List[Dict[str, object]]:
    """Collate samples into per-sensor sub-batches (a heterogeneous batch).

    Samples with the same ``(sensor, partner_sensor)`` are stacked together, in order of first
    appearance, as ``{"sensor", "image", "partner_sensor", "partner_image"}`` with torch tensors.
    """
    import torch

    groups: Dict[tuple, List[CropSample]] = {}
    for sample in samples:
        groups.setdefault((sample.sensor, sample.partner_sensor), []).append(sample)
    batches: List[Dict[str, object]] = []
    for (sensor, partner), members in groups.items():
        batch: Dict[str, object] = {
            "sensor": sensor,
            "image": torch.from_numpy(np.stack([m.image for m in members])),
            "partner_sensor": partner,
            "partner_image": None,
        }
        if partner is not None:
            batch["partner_image"] = torch.from_numpy(np.stack([m.partner_image for m in members]))
        batches.append(batch)
    return batches


class StepBatchSampler:
    """Index lists for each micro-batch of each optimiser step of one rank, from ``start_step``.

    Global sample numbering: micro-batch ``m`` of step ``s`` on rank ``r`` takes the indexes
    ``((s * accumulation + m) * world_size + r) * micro_batch_size + [0, micro_batch_size)``. It
    depends on nothing but the step, so resuming at ``s`` reproduces the data order exactly.
    """

    def __init__(
        self,
        start_step: int,
        max_steps: int,
        micro_batch_size: int,
        accumulation: int = 1,
        world_size: int = 1,
        rank: int = 0,
    ):
        self.start_step = start_step
        self.max_steps = max_steps
        self.micro_batch_size = micro_batch_size
        self.accumulation = accumulation
        self.world_size = world_size
        self.rank = rank

    def __len__(self) -> int:
        return max(0, self.max_steps - self.start_step) * self.accumulation

    def __iter__(self) -> Iterator[List[int]]:
        for step in range(self.start_step, self.max_steps):
            for micro in range(self.accumulation):
                first = (
                    (step * self.accumulation + micro) * self.world_size + self.rank
                ) * self.micro_batch_size
                yield list(range(first, first + self.micro_batch_size))
