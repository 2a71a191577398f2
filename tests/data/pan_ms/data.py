"""A synthetic pan-sharpening folder: ``pan<N>.tif`` + ``ms<N>.tif`` pairs, MS 4x coarser.

Two pairs over 96 x 96 m. Pan: 1 band at 1 m (96 x 96), a smooth ramp plus a checkerboard of 4 m
squares, so there is detail the MS lacks. MS: 4 bands at 4 m (24 x 24), each band the block mean of
the pan times ``MS_GAINS[band]``. ``ms2.tif`` is stored pixel-replicated (48 x 48 at 2 m, every
pixel a 2 x 2 block), as the solaris SpaceNet-6 sample is, which the reader must detect. A third
``pan3.tif`` has no MS partner and must be ignored.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SIZE_M = 96
RATIO = 4
MS_GAINS = (0.5, 0.8, 1.0, 1.3)
EPSG = 32618
ORIGIN = (583000.0, 4507000.0)


def pan_values(pair: int) -> np.ndarray:
    """The pan band of pair ``pair`` (1 or 2), float32 (96, 96), never 0 (0 is no data)."""
    rows, cols = np.mgrid[0:SIZE_M, 0:SIZE_M].astype(np.float32)
    checker = ((rows // 4 + cols // 4) % 2) * 40.0
    return (200.0 + 100.0 * pair + rows + 0.5 * cols + checker).astype(np.float32)


def ms_values(pair: int) -> np.ndarray:
    """The true 4 m MS of pair ``pair``: float32 (4, 24, 24)."""
    pan = pan_values(pair)
    blocks = pan.reshape(SIZE_M // RATIO, RATIO, SIZE_M // RATIO, RATIO).mean(axis=(1, 3))
    return np.stack([gain * blocks for gain in MS_GAINS]).astype(np.float32)


def _write(path: Path, values: np.ndarray, pixel_m: float) -> None:
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(
        path, "w", driver="GTiff", width=values.shape[2], height=values.shape[1],
        count=values.shape[0], dtype="float32", crs=f"EPSG:{EPSG}",
        transform=from_origin(*ORIGIN, pixel_m, pixel_m),
    ) as dst:  # fmt: skip
        dst.write(values)


def generate(root: Path) -> Path:
    """Write the pairs into ``root`` and return it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for pair in (1, 2):
        _write(root / f"pan{pair}.tif", pan_values(pair)[None], 1.0)
        ms = ms_values(pair)
        if pair == 2:  # stored replicated: 2 m pixels, each a 2 x 2 block of the 4 m value
            _write(root / f"ms{pair}.tif", ms.repeat(2, axis=1).repeat(2, axis=2), 2.0)
        else:
            _write(root / f"ms{pair}.tif", ms, float(RATIO))
    _write(root / "pan3.tif", pan_values(3)[None], 1.0)
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1] if len(sys.argv) > 1 else "pan_ms-synthetic")))
