"""Simulated clouds on clear Sentinel-2 images (training pairs for SAR-guided cloud removal).

Where no real cloudy/clear pairs (SEN12MS-CR) are at hand, a cloudy input is made from a clear one:

1. **Cloud field.** Fractal value noise: random values on a coarse lattice (cell ``scale_px``
   pixels), smoothly interpolated (cubic Hermite) to the image, plus ``octaves - 1`` finer lattices
   at half the cell size and half the amplitude each. It looks like cumulus fields: large smooth
   blobs with ragged edges.
2. **Opacity.** Thresholds on the field are taken from its own quantiles, so the cloud cover is what
   is asked: the fraction ``coverage`` of pixels gets an opacity above ``mask_threshold`` and the
   fraction ``coverage * thick_fraction`` is opaque (opacity 1, the thick cores). Between, opacity
   rises smoothly (smoothstep) from the thin edges to the cores. A second, smoother field adds thin
   haze of opacity up to ``haze`` everywhere (below ``mask_threshold`` by default, so it does not
   count as cloud).
3. **Blending.** ``cloudy = (1 - opacity) * clear + opacity * cloud``, per band, where ``cloud`` is
   a bright, nearly white cloud-top reflectance per band (``S2_CLOUD_REFLECTANCE``, reflectance x
   10000: high in the visible and near infrared, lower in the short-wave infrared where ice and
   water absorb) with +-10 % texture from the field.
4. **Mask.** ``cloud_mask = opacity > mask_threshold``.

Not simulated: cloud shadows, cirrus-only (B10) signatures, parallax between bands. Everything is
drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same clouds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

# Typical top-of-cloud reflectance x 10000 of thick water clouds per Sentinel-2 band.
S2_CLOUD_REFLECTANCE: Dict[str, float] = {
    "B01": 7800.0,
    "B02": 7600.0,
    "B03": 7400.0,
    "B04": 7300.0,
    "B05": 7200.0,
    "B06": 7100.0,
    "B07": 7000.0,
    "B08": 6900.0,
    "B8A": 6800.0,
    "B09": 3500.0,
    "B10": 2500.0,
    "B11": 4500.0,
    "B12": 3000.0,
}


@dataclass(frozen=True)
class CloudSettings:
    """How clouds are simulated (see the module docstring).

    Attributes:
        coverage: Fraction of pixels under cloud (opacity above ``mask_threshold``), in (0, 1).
        thick_fraction: Fraction of the cloudy pixels that are opaque cores.
        haze: Largest opacity of the thin haze over the whole image.
        scale_px: Cell size of the coarsest noise lattice, in pixels (the size of cloud blobs).
        octaves: Number of noise lattices (each twice as fine and half as strong).
        mask_threshold: Opacity above which a pixel counts as cloudy.
    """

    coverage: float = 0.4
    thick_fraction: float = 0.4
    haze: float = 0.05
    scale_px: float = 48.0
    octaves: int = 4
    mask_threshold: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.coverage < 1.0:
            raise ValueError(f"cloud coverage must be in (0, 1), got {self.coverage}")
        if not 0.0 < self.thick_fraction <= 1.0:
            raise ValueError(f"thick_fraction must be in (0, 1], got {self.thick_fraction}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must be in (0, 1), got {self.mask_threshold}")
        if not 0.0 <= self.haze < 1.0:
            raise ValueError(f"haze must be in [0, 1), got {self.haze}")
        if self.scale_px < 2 or self.octaves < 1:
            raise ValueError("scale_px must be >= 2 pixels and octaves >= 1")


def _smooth_lattice(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Values of a random lattice with spacing ``cell``, cubic-Hermite interpolated to the image."""
    rows = int(np.ceil(height / cell)) + 2
    cols = int(np.ceil(width / cell)) + 2
    lattice = rng.random((rows, cols))
    # A random sub-cell offset keeps lattice nodes of different octaves from lining up.
    y = (np.arange(height) + rng.random() * cell) / cell
    x = (np.arange(width) + rng.random() * cell) / cell
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    ty, tx = y - y0, x - x0
    ty, tx = ty * ty * (3 - 2 * ty), tx * tx * (3 - 2 * tx)
    top = lattice[y0][:, x0] * (1 - tx) + lattice[y0][:, x0 + 1] * tx
    bottom = lattice[y0 + 1][:, x0] * (1 - tx) + lattice[y0 + 1][:, x0 + 1] * tx
    return top * (1 - ty)[:, None] + bottom * ty[:, None]


def fractal_noise(
    rng: np.random.Generator, height: int, width: int, scale_px: float, octaves: int
) -> np.ndarray:
    """Fractal value noise in [0, 1] of shape (height, width)."""
    field = np.zeros((height, width), dtype=np.float64)
    amplitude, cell = 1.0, float(scale_px)
    for _ in range(octaves):
        field += amplitude * _smooth_lattice(rng, height, width, max(cell, 1.0))
        amplitude *= 0.5
        cell /= 2.0
    low, high = field.min(), field.max()
    return (field - low) / max(high - low, 1e-12)


def _smoothstep_inverse(value: float) -> float:
    # Solve 3r^2 - 2r^3 = value on [0, 1] by bisection (monotonic there).
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        if mid * mid * (3 - 2 * mid) < value:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def cloud_opacity(
    rng: np.random.Generator, height: int, width: int, settings: CloudSettings
) -> np.ndarray:
    """Per-pixel cloud opacity in [0, 1] (float32, (height, width))."""
    field = fractal_noise(rng, height, width, settings.scale_px, settings.octaves)
    t_mask = np.quantile(field, 1.0 - settings.coverage)
    t_core = np.quantile(field, 1.0 - settings.coverage * settings.thick_fraction)
    t_core = max(t_core, t_mask + 1e-6)
    # Place the ramp's start so that opacity crosses mask_threshold exactly at t_mask.
    r_mask = _smoothstep_inverse(settings.mask_threshold)
    t_edge = (t_mask - r_mask * t_core) / (1.0 - r_mask)
    ramp = np.clip((field - t_edge) / (t_core - t_edge), 0.0, 1.0)
    opacity = ramp * ramp * (3 - 2 * ramp)
    if settings.haze > 0:
        haze = settings.haze * fractal_noise(rng, height, width, 2 * settings.scale_px, 2)
        opacity = np.maximum(opacity, haze)
    return opacity.astype(np.float32)


def simulate_clouds(
    clear: np.ndarray,
    band_names: Sequence[str],
    seed: int = 0,
    settings: Optional[CloudSettings] = None,
    cloud_reflectance: Optional[Sequence[float]] = None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Put simulated clouds over a clear image.

    Args:
        clear: Clear image (C, H, W) in reflectance x 10000 (NaN = no data, kept).
        band_names: Names of the C bands (Sentinel-2 names pick ``S2_CLOUD_REFLECTANCE``).
        seed: Seed of the cloud field.
        settings: Cloud settings; defaults to :class:`CloudSettings()`.
        cloud_reflectance: Cloud-top value per band, for bands without a Sentinel-2 name.

    Returns:
        ``(cloudy float32 (C, H, W), opacity float32 (H, W), cloud_mask bool (H, W))``.
    """
    settings = settings or CloudSettings()
    clear = np.asarray(clear, dtype=np.float32)
    if clear.ndim != 3 or clear.shape[0] != len(band_names):
        raise ValueError(
            f"simulate_clouds needs a (C, H, W) image with one name per band; got shape "
            f"{clear.shape} and {len(band_names)} band names"
        )
    if cloud_reflectance is None:
        missing = [b for b in band_names if b not in S2_CLOUD_REFLECTANCE]
        if missing:
            raise ValueError(
                f"no default cloud reflectance for bands {missing}; pass cloud_reflectance "
                "(one value per band, in the image's units)"
            )
        cloud_reflectance = [S2_CLOUD_REFLECTANCE[b] for b in band_names]
    if len(cloud_reflectance) != clear.shape[0]:
        raise ValueError(
            f"cloud_reflectance has {len(cloud_reflectance)} values for {clear.shape[0]} bands"
        )
    rng = np.random.default_rng(seed)
    _, height, width = clear.shape
    opacity = cloud_opacity(rng, height, width, settings)
    texture = 0.9 + 0.2 * fractal_noise(rng, height, width, settings.scale_px / 4, 2)
    cloud = np.asarray(cloud_reflectance, dtype=np.float32)[:, None, None] * texture[None]
    cloudy = (1.0 - opacity)[None] * clear + opacity[None] * cloud
    return cloudy.astype(np.float32), opacity, opacity > settings.mask_threshold


def add_haze(
    image: np.ndarray,
    band_names: Sequence[str],
    rng: np.random.Generator,
    strength: float,
    scale_px: float = 96.0,
) -> np.ndarray:
    """Thin haze over a whole image: ``(1 - h) * image + h * cloud``, ``h`` a smooth field.

    ``h`` is fractal noise (two octaves, cells of ``scale_px``) scaled to at most ``strength``;
    ``cloud`` is :data:`S2_CLOUD_REFLECTANCE` of each band. Used as part of a scene's atmosphere
    (on the clear target as on the input), not as cloud: a uniform veil cannot be told apart from
    another scene's radiometry, so a cloud-removal model must leave it alone.

    Args:
        image: (C, H, W) reflectance x 10000 (NaN stays NaN).
        band_names: Sentinel-2 names of the C bands.
        rng: Generator of the haze field.
        strength: Largest haze opacity, in [0, 1).
        scale_px: Cell size of the coarsest lattice of the haze field.

    Returns:
        The hazy image, float32 (C, H, W).
    """
    if not 0.0 <= strength < 1.0:
        raise ValueError(f"haze strength must be in [0, 1), got {strength}")
    missing = [b for b in band_names if b not in S2_CLOUD_REFLECTANCE]
    if missing:
        raise ValueError(f"no cloud reflectance for bands {missing}")
    image = np.asarray(image, dtype=np.float32)
    _, height, width = image.shape
    veil = strength * fractal_noise(rng, height, width, scale_px, 2).astype(np.float32)
    cloud = np.asarray([S2_CLOUD_REFLECTANCE[b] for b in band_names], dtype=np.float32)
    return ((1.0 - veil)[None] * image + veil[None] * cloud[:, None, None]).astype(np.float32)
