"""One small picture per model and scene: the input beside the output, as a user sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

# Colours of the land-cover classes 1-7 (the bundled models' palette), 0 / NaN drawn white.
CLASS_COLOURS = {
    1: "#1f77b4",
    2: "#ff7f0e",
    3: "#2ca02c",
    4: "#d62728",
    5: "#9467bd",
    6: "#8c564b",
    7: "#e377c2",
}


def stretch_limits(rgb: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """2nd and 98th percentile of each band (NaN ignored): the stretch of the input, applied to
    every panel of a figure so brightness changes stay visible."""
    flat = rgb.reshape(rgb.shape[0], -1)
    return np.nanpercentile(flat, 2, axis=1), np.nanpercentile(flat, 98, axis=1)


def as_rgb(image: np.ndarray, limits: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    low, high = limits
    span = np.where(high > low, high - low, 1.0)
    scaled = (image - low[:, None, None]) / span[:, None, None]
    return np.clip(np.nan_to_num(np.moveaxis(scaled, 0, -1), nan=1.0), 0.0, 1.0)


def as_classes(classes: np.ndarray, colours: Optional[Dict[int, str]] = None) -> np.ndarray:
    from matplotlib.colors import to_rgb

    colours = colours or CLASS_COLOURS
    out = np.ones((*classes.shape, 3))
    for value, colour in colours.items():
        out[classes == value] = to_rgb(colour)
    return out


def save_panels(path: Path, panels: Sequence[Tuple[str, np.ndarray]], title: str) -> Path:
    """A row of images (``(H, W, 3)`` floats in [0, 1]) with titles, as a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9), dpi=80)
    axes_list: List = list(np.atleast_1d(axes))
    for axis, (name, image) in zip(axes_list, panels):
        axis.imshow(image, interpolation="nearest")
        axis.set_title(name, fontsize=8)
        axis.set_axis_off()
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)
    return small_png(path)


def small_png(path: Path) -> Path:
    """Rewrite a PNG with a 256-colour palette (a third of the size; the docs keep these)."""
    from PIL import Image

    with Image.open(path) as image:
        quantized = image.convert("RGB").quantize(colors=256)
    quantized.save(path, optimize=True)
    return path
