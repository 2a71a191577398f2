"""Training augmentations of task samples, drawn per step from a seeded generator.

A small model trained on a handful of scenes learns their exact radiometry and orientation unless
told otherwise. These functions change a raw task sample (registry units, see
:mod:`backend.data.tasks`) the way another scene would differ, and keep every label aligned:

* :func:`radiometric_jitter`: a per-scene gain and offset (the whole image brighter or darker,
  another sun angle, another atmosphere or calibration) with a smaller per-band gain;
* :func:`dihedral`: one of the 8 rotations/reflections of a square tile, applied to every spatial
  array of the sample (inputs, label raster, masks) alike;
* :func:`fresh_clouds`: new simulated clouds and haze over the clear target of a cloud-removal
  sample, of a random shape, cover and thickness each time, or none (a clear sample, whose target
  is its input);
* :func:`class_balanced_weights`: sampling weights that draw rare classes as often as common ones.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from .clouds import CloudSettings, add_haze, simulate_clouds

# Keys of a sample that hold per-pixel arrays besides ``inputs`` and ``target``.
_PIXEL_KEYS = ("cloud_mask", "valid", "opacity")


@dataclasses.dataclass(frozen=True)
class JitterSettings:
    """How far radiometric jitter goes.

    Attributes:
        gain: Largest relative change of the scene gain (0.15: x0.85 .. x1.15).
        band_gain: Largest relative change of each band's gain on top of the scene gain.
        offset: Largest offset per band as a fraction of that band's mean over the tile.
        sar_offset_db: Largest offset of SAR backscatter in dB (calibration, incidence angle).
    """

    gain: float = 0.15
    band_gain: float = 0.05
    offset: float = 0.05
    sar_offset_db: float = 1.0


def radiometric_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    settings: JitterSettings = JitterSettings(),
    decibels: bool = False,
) -> np.ndarray:
    """One random gain and offset of a raw image (C, H, W); NaN stays NaN.

    Optical bands: ``x * g * g_b + o_b * mean_b`` with ``g`` the scene gain, ``g_b`` each band's
    gain and ``o_b`` its offset (uniform within the settings). SAR in dB (``decibels``): a common
    offset of up to ``sar_offset_db`` plus a tenth of it per band (a gain in linear power is an
    offset in dB).
    """
    image = np.asarray(image, dtype=np.float32)
    bands = image.shape[0]
    if decibels:
        shift = rng.uniform(-1, 1) * settings.sar_offset_db
        shift = shift + rng.uniform(-0.1, 0.1, bands) * settings.sar_offset_db
        return (image + shift.reshape(-1, 1, 1)).astype(np.float32)
    gain = 1.0 + rng.uniform(-1, 1) * settings.gain
    band_gain = 1.0 + rng.uniform(-1, 1, bands) * settings.band_gain
    with np.errstate(all="ignore"):
        means = np.nanmean(image.reshape(bands, -1), axis=1)
    means = np.nan_to_num(means, nan=0.0)
    offset = rng.uniform(-1, 1, bands) * settings.offset * np.abs(means)
    out = image * (gain * band_gain).reshape(-1, 1, 1) + offset.reshape(-1, 1, 1)
    return out.astype(np.float32)


def _transform(array: np.ndarray, rotations: int, flip: bool) -> np.ndarray:
    out = np.rot90(array, k=rotations, axes=(-2, -1))
    if flip:
        out = np.flip(out, axis=-1)
    return np.ascontiguousarray(out)


def dihedral(sample: Mapping[str, Any], rotations: int, flip: bool) -> Dict[str, Any]:
    """Rotate every spatial array of a sample by ``rotations`` x 90 degrees, then mirror it.

    Inputs, a label raster or reference image (``target`` with 2+ dimensions) and the per-pixel
    masks turn together, so labels stay on their pixels; scene labels and metadata are kept.
    Tiles must be square when ``rotations`` is odd (the encoder's tiles are).
    """
    out = dict(sample)
    out["inputs"] = {k: _transform(v, rotations, flip) for k, v in sample["inputs"].items()}
    target = sample.get("target")
    if isinstance(target, np.ndarray) and target.ndim >= 2:
        out["target"] = _transform(target, rotations, flip)
    for key in _PIXEL_KEYS:
        if key in sample and np.ndim(sample[key]) >= 2:
            out[key] = _transform(np.asarray(sample[key]), rotations, flip)
    return out


def random_cloud_settings(rng: np.random.Generator) -> CloudSettings:
    """Clouds of a random kind: scattered small cumulus to one large deck, thin haze to opaque."""
    scale = float(np.exp(rng.uniform(np.log(6.0), np.log(128.0))))
    haze = float(rng.choice([0.0, rng.uniform(0.0, 0.15), rng.uniform(0.15, 0.6)]))
    return CloudSettings(
        coverage=float(rng.uniform(0.03, 0.9)),
        thick_fraction=float(rng.uniform(0.05, 1.0)),
        haze=haze,
        scale_px=scale,
        octaves=int(rng.integers(2, 6)),
    )


def fresh_clouds(
    sample: Mapping[str, Any],
    rng: np.random.Generator,
    band_names: Sequence[str],
    clear_probability: float = 0.2,
    jitter: Optional[JitterSettings] = None,
    sar_sensor: str = "sar",
    optical_sensor: str = "s2",
    scene_haze: float = 0.0,
) -> Dict[str, Any]:
    """A cloud-removal sample with new clouds over its clear ``target`` (or a clear sample).

    The clear target is first jittered (``jitter``; the SAR input gets its own dB offset), then
    covered with clouds of :func:`random_cloud_settings`; with ``clear_probability`` it stays
    clear, so the model also learns to return a clear input unchanged. The sample's
    ``opacity`` (H, W) is the simulated cloud opacity (0 for a clear sample) and ``cloud_mask``
    the pixels above the cloud threshold.

    With ``scene_haze`` > 0, haze is part of the scene, not of the clouds: half of the samples
    get a veil of opacity up to ``scene_haze`` on the target and the input alike
    (:func:`~backend.data.tasks.clouds.add_haze`), and the clouds carry no haze of their own, so
    the cloud opacity a gated head learns is zero wherever there is no cloud. A model taught to
    "dehaze" a uniform veil opens its gate on clear scenes with a bluer atmosphere than its
    training scenes' (the rejected model removed half of B01 on a clear Austrian patch).
    """
    clear = np.asarray(sample["target"], dtype=np.float32)
    inputs = dict(sample["inputs"])
    if jitter is not None:
        clear = radiometric_jitter(clear, rng, jitter)
        if sar_sensor in inputs:
            inputs[sar_sensor] = radiometric_jitter(inputs[sar_sensor], rng, jitter, decibels=True)
    if scene_haze > 0 and rng.random() < 0.5:
        strength = float(rng.uniform(0.0, scene_haze))
        scale = float(np.exp(rng.uniform(np.log(32.0), np.log(256.0))))
        clear = add_haze(clear, band_names, rng, strength, scale)
    out = dict(sample)
    height, width = clear.shape[-2:]
    if rng.random() < clear_probability:
        cloudy = clear.copy()
        opacity = np.zeros((height, width), dtype=np.float32)
        mask = np.zeros((height, width), dtype=bool)
    else:
        settings = random_cloud_settings(rng)
        if scene_haze > 0:
            settings = dataclasses.replace(settings, haze=0.0)
        cloudy, opacity, mask = simulate_clouds(
            np.nan_to_num(clear, nan=0.0), band_names, seed=int(rng.integers(2**31)),
            settings=settings,
        )  # fmt: skip
        cloudy = np.where(np.isfinite(clear), cloudy, np.nan).astype(np.float32)
    inputs[optical_sensor] = cloudy
    out.update({"inputs": inputs, "target": clear, "opacity": opacity, "cloud_mask": mask})
    return out


def jitter_inputs(
    sample: Mapping[str, Any],
    rng: np.random.Generator,
    settings: JitterSettings = JitterSettings(),
    decibel_sensors: Sequence[str] = ("sar", "sar_vv"),
) -> Dict[str, Any]:
    """Radiometric jitter of every input of a classification or segmentation sample."""
    out = dict(sample)
    out["inputs"] = {
        name: radiometric_jitter(values, rng, settings, decibels=name in decibel_sensors)
        for name, values in sample["inputs"].items()
    }
    return out


def class_balanced_weights(
    targets: Sequence[np.ndarray], num_classes: int, ignore_index: int = 255, power: float = 1.0
) -> np.ndarray:
    """Sampling weights (summing to 1) that draw each class about equally often.

    A scene label's sample weighs ``1 / count(class) ** power``; a label raster's sample weighs
    the mean over its labelled pixels of ``1 / frequency(class) ** power`` (a tile with a rare
    class is drawn more often). ``power`` 0.5 is the softer square-root balancing. Samples with
    nothing labelled keep a small weight (the smallest of the others) so they still appear.
    """
    counts = np.zeros(num_classes, dtype=np.float64)
    labels = []
    for target in targets:
        values = np.asarray(target).reshape(-1).astype(np.int64)
        values = values[(values != ignore_index) & (values >= 0) & (values < num_classes)]
        labels.append(values)
        counts += np.bincount(values, minlength=num_classes)
    frequency = counts / max(counts.sum(), 1.0)
    inverse = np.where(frequency > 0, 1.0 / np.maximum(frequency, 1e-12) ** power, 0.0)
    weights = np.array([inverse[v].mean() if v.size else 0.0 for v in labels])
    positive = weights[weights > 0]
    if positive.size == 0:
        return np.full(len(labels), 1.0 / max(len(labels), 1))
    weights[weights == 0] = positive.min()
    return weights / weights.sum()


def class_loss_weights(
    targets: Sequence[np.ndarray], num_classes: int, ignore_index: int = 255, power: float = 0.5
) -> np.ndarray:
    """Cross-entropy class weights ``frequency ** -power``, mean 1 over the classes present
    (absent classes get weight 1: they cannot be learned from this data anyway)."""
    counts = np.zeros(num_classes, dtype=np.float64)
    for target in targets:
        values = np.asarray(target).reshape(-1).astype(np.int64)
        values = values[(values != ignore_index) & (values >= 0) & (values < num_classes)]
        counts += np.bincount(values, minlength=num_classes)
    present = counts > 0
    weights = np.ones(num_classes, dtype=np.float64)
    if present.any():
        frequency = counts[present] / counts.sum()
        raw = frequency**-power
        weights[present] = raw / raw.mean()
    return weights.astype(np.float32)
