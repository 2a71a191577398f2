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
from .tasks.normalization import REGISTRY_STATISTICS

# A crop is re-drawn (up to this many times) while less than ``min_valid_fraction`` of it has data:
# masked SAR borders and nodata collars would otherwise teach the model to paint zeros.
_MAX_CROP_TRIES = 8


@dataclass
class CropSample:
    """One training sample: an image of ``sensor`` and, for a pair, its partner on the same window.

    Images are float32 (C, H, W), normalised for the model (or raw values when asked), no-data
    pixels set to 0 after normalisation (the band mean). ``valid`` (and ``partner_valid``) are
    (H, W) bool maps of the pixels with data in every band: the reconstruction loss scores only
    those. ``view_image`` is a second crop of the same scene overlapping the first (other offset,
    other flips), drawn when the dataset is asked for views; the alignment loss pulls the two
    together.
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
    valid: Optional[np.ndarray] = None
    partner_valid: Optional[np.ndarray] = None
    view_image: Optional[np.ndarray] = None
    view_valid: Optional[np.ndarray] = None


class BandNormalizer:
    """Per-sensor normalisation with statistics computed from data (or the registry defaults).

    Args:
        stats: ``{sensor: {"mean": [...], "std": [...]}}`` as written by ``msgfm data stats``,
            covering every sensor normalised (a missing one is an error); None = the registry's
            published statistics for every sensor.
    """

    def __init__(self, stats: Optional[Mapping[str, Mapping[str, Sequence[float]]]] = None):
        # No statistics at all: the registry's, on purpose. Given ones must cover every sensor.
        self.stats = (
            REGISTRY_STATISTICS if stats is None else {k: dict(v) for k, v in stats.items()}
        )

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
        views: Also draw a second, overlapping crop of each unpaired sample (``view_image``) for
            the alignment loss; a paired sample's partner is its second view.
        jitter: Radiometric augmentation in normalised units: every image (each view and each
            sensor of a pair separately) gets a per-band gain in ``[1 - jitter, 1 + jitter]`` and
            offset in ``[-jitter, jitter]``, on its pixels with data. Sentinel-2 L1C and L2A,
            seasons and sensors' calibrations differ by such shifts: features that ignore them
            carry over to a user's imagery.
        cache: Decoded, normalised scenes (:class:`~backend.data.crop_cache.CropCache`) built
            with this ``normalizer``'s statistics; crops are then sliced from it instead of
            decoded and normalised, with the same values.
    """

    def __init__(
        self,
        manifest: Manifest,
        crop_size: int,
        seed: int = 0,
        normalizer: Optional[BandNormalizer] = None,
        min_valid_fraction: float = 0.5,
        flips: bool = True,
        views: bool = False,
        jitter: float = 0.0,
        cache=None,
    ):
        if crop_size <= 0:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        self.manifest = manifest
        self.crop_size = crop_size
        self.seed = seed
        self.normalizer = normalizer or BandNormalizer()
        self.min_valid_fraction = min_valid_fraction
        self.flips = flips
        self.views = views
        self.jitter = float(jitter)
        self.cache = cache
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
        source_index = min(source_index, len(self.manifest.sources) - 1)
        source = self.manifest.sources[source_index]
        scene_index = int(rng.integers(len(source.scenes)))
        scene = source.scenes[scene_index]
        size = self.crop_size
        cache = self.cache
        if cache is not None:
            if not normalized:
                raise ValueError("a crop cache holds normalised values; draw raw crops without it")
            height, width = cache.shape(source_index, scene_index)

            def read(sensor: str, row: int, col: int) -> np.ndarray:
                return cache.crop(source_index, scene_index, sensor, row, col, size, size)

        else:
            grid = scene.reference_grid()
            height, width = grid.height, grid.width

            def read(sensor: str, row: int, col: int) -> np.ndarray:
                return scene.read(sensor, row, col, size, size)

        best = None
        for _ in range(_MAX_CROP_TRIES):
            row = _offset(rng, height, size)
            col = _offset(rng, width, size)
            images = [read(sensor, row, col) for sensor in scene.sensors]
            valid = min(float(np.isfinite(im).all(axis=0).mean()) for im in images)
            if best is None or valid > best[0]:
                best = (valid, row, col, images)
            if valid >= self.min_valid_fraction:
                break
        valid, row, col, images = best
        images = self._flip(rng, images)
        sensors = list(scene.sensors)
        # Either sensor of a pair may be the masked one, so both learn to reconstruct the other.
        if scene.paired and rng.random() < 0.5:
            sensors.reverse()
            images.reverse()
        view = None
        if self.views and not scene.paired:
            # A second crop shifted by up to half a crop: it shares ground with the first.
            shift = size // 2
            view_row = _shifted(rng, row, shift, height, size)
            view_col = _shifted(rng, col, shift, width, size)
            view = self._flip(rng, [read(sensors[0], view_row, view_col)])[0]
        masks = [np.isfinite(im).all(axis=0) for im in images]
        if normalized:

            def normalize(sensor: str, image: np.ndarray, valid: np.ndarray) -> np.ndarray:
                if cache is not None and cache.is_normalized(source_index, scene_index, sensor):
                    # Stored normalised, no data as NaN: what the normaliser gives, 0 there.
                    return np.where(valid, image, np.float32(0.0)).astype(np.float32)
                return self.normalizer(sensor, image)

            images = [
                self._jitter(rng, normalize(s, im, m), m)
                for s, im, m in zip(sensors, images, masks)
            ]
            if view is not None:
                view_valid = np.isfinite(view).all(axis=0)
                view = self._jitter(rng, normalize(sensors[0], view, view_valid), view_valid)
        else:
            images = [np.ascontiguousarray(im, dtype=np.float32) for im in images]
        if view is not None and not normalized:
            view_valid = np.isfinite(view).all(axis=0)
            view = np.ascontiguousarray(view, dtype=np.float32)
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
            valid=np.ascontiguousarray(masks[0]),
            partner_valid=np.ascontiguousarray(masks[1]) if scene.paired else None,
            view_image=None if view is None else np.ascontiguousarray(view),
            view_valid=None if view is None else np.ascontiguousarray(view_valid),
        )

    def _jitter(self, rng: np.random.Generator, image: np.ndarray, valid: np.ndarray) -> np.ndarray:
        if self.jitter <= 0:
            return image
        bands = image.shape[0]
        gain = rng.uniform(1 - self.jitter, 1 + self.jitter, (bands, 1, 1)).astype(np.float32)
        offset = rng.uniform(-self.jitter, self.jitter, (bands, 1, 1)).astype(np.float32)
        return np.where(valid, image * gain + offset, image).astype(np.float32)

    def _flip(self, rng: np.random.Generator, images: List[np.ndarray]) -> List[np.ndarray]:
        # The same flips for every image of the list (both sensors of a pair).
        if self.flips:
            if rng.random() < 0.5:
                images = [im[:, :, ::-1] for im in images]
            if rng.random() < 0.5:
                images = [im[:, ::-1, :] for im in images]
        return images


def _offset(rng: np.random.Generator, extent: int, size: int) -> int:
    if extent >= size:
        return int(rng.integers(0, extent - size + 1))
    # A scene smaller than the crop is centred; the missing border reads as no data.
    return -((size - extent) // 2)


def _shifted(rng: np.random.Generator, offset: int, shift: int, extent: int, size: int) -> int:
    moved = offset + int(rng.integers(-shift, shift + 1))
    if extent >= size:
        return min(max(moved, 0), extent - size)
    return offset


def group_by_sensor(samples: Sequence[CropSample]) -> List[Dict[str, object]]:
    """Collate samples into per-sensor sub-batches (a heterogeneous batch).

    Samples with the same ``(sensor, partner_sensor)`` are stacked together, in order of first
    appearance, as ``{"sensor", "image", "valid", "partner_sensor", "partner_image",
    "partner_valid", "view_image", "view_valid"}`` with torch tensors (None where absent).
    """
    import torch

    groups: Dict[tuple, List[CropSample]] = {}
    for sample in samples:
        key = (sample.sensor, sample.partner_sensor, sample.view_image is not None)
        groups.setdefault(key, []).append(sample)

    def stack(members: List[CropSample], name: str):
        values = [getattr(m, name) for m in members]
        if any(v is None for v in values):
            return None
        return torch.from_numpy(np.stack(values))

    batches: List[Dict[str, object]] = []
    for (sensor, partner, _), members in groups.items():
        batches.append(
            {
                "sensor": sensor,
                "image": stack(members, "image"),
                "valid": stack(members, "valid"),
                "partner_sensor": partner,
                "partner_image": stack(members, "partner_image") if partner else None,
                "partner_valid": stack(members, "partner_valid") if partner else None,
                "view_image": stack(members, "view_image"),
                "view_valid": stack(members, "view_valid"),
            }
        )
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
