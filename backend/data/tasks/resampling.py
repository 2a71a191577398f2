"""Numpy resampling for task samples: bicubic upsampling, MTF-matched low-pass, decimation.

The pan-sharpening samples need the same operations in training (torch) and in ONNX evaluation
(numpy), so they are written here in numpy once. Every operation is separable: a 1-D operator per
axis, applied to the rows and then to the columns of each band.

Pixel-centre convention: a low-resolution pixel ``i`` at ``ratio`` covers high-resolution pixels
``ratio * i ... ratio * i + ratio - 1``; its centre lies at high-resolution coordinate
``ratio * i + (ratio - 1) / 2``. Upsampling and decimation both keep that alignment, so degrading
and re-upsampling an image does not shift it by half a pixel.
"""

from __future__ import annotations

import math

import numpy as np

# Keys' cubic convolution parameter; -0.5 is the value GDAL's and most libraries' "cubic" use.
_CUBIC_A = -0.5


def _cubic_weight(distance: np.ndarray) -> np.ndarray:
    x = np.abs(distance)
    a = _CUBIC_A
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def cubic_upsampling_matrix(size_in: int, factor: int) -> np.ndarray:
    """The (size_in * factor, size_in) matrix of cubic convolution upsampling along one axis.

    Samples beyond the edges repeat the edge pixel (clamped indices), so a constant image stays
    constant up to the border.
    """
    if size_in < 1 or factor < 1:
        raise ValueError(
            f"cubic upsampling needs size_in >= 1 and factor >= 1, got {size_in}, {factor}"
        )
    size_out = size_in * factor
    # Position of each output pixel centre in input pixel coordinates (centre-aligned grids).
    position = (np.arange(size_out) + 0.5) / factor - 0.5
    base = np.floor(position).astype(int)
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    rows = np.arange(size_out)
    for tap in range(-1, 3):
        index = base + tap
        weight = _cubic_weight(position - index)
        np.add.at(matrix, (rows, np.clip(index, 0, size_in - 1)), weight)
    return matrix


def upsample_bicubic(image: np.ndarray, factor: int) -> np.ndarray:
    """Upsample ``(C, H, W)`` by an integer factor with bicubic convolution: ``(C, H*f, W*f)``."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise ValueError(f"upsample_bicubic expects (C, H, W), got shape {image.shape}")
    if factor == 1:
        return image.copy()
    rows = cubic_upsampling_matrix(image.shape[1], factor).astype(np.float32)
    cols = cubic_upsampling_matrix(image.shape[2], factor).astype(np.float32)
    return np.einsum("ij,cjk,lk->cil", rows, image, cols, optimize=True).astype(np.float32)


def mtf_sigma(ratio: int, nyquist_gain: float) -> float:
    """Standard deviation (pixels) of the Gaussian whose response at the low-res Nyquist is a gain.

    Wald's protocol degrades an image with a filter that matches the sensor's modulation transfer
    function (MTF): the Gaussian ``exp(-2 pi^2 sigma^2 f^2)`` takes the value ``nyquist_gain`` at
    ``f = 1 / (2 * ratio)`` cycles per pixel, the Nyquist frequency of the decimated grid. Typical
    gains are about 0.3 for multispectral and 0.15 for panchromatic bands of very-high-resolution
    sensors.
    """
    if not 0.0 < nyquist_gain < 1.0:
        raise ValueError(f"nyquist_gain must be in (0, 1), got {nyquist_gain}")
    return ratio * math.sqrt(-2.0 * math.log(nyquist_gain)) / math.pi


def gaussian_kernel(sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian kernel reaching 4 sigma on each side."""
    radius = max(1, math.ceil(4.0 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_lowpass(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian filter of ``(C, H, W)``; borders are reflected (no dark rim)."""
    image = np.asarray(image, dtype=np.float32)
    kernel = gaussian_kernel(sigma).astype(np.float32)
    radius = len(kernel) // 2
    out = image
    for axis in (1, 2):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect" if out.shape[axis] > radius else "edge")
        size = out.shape[axis]
        filtered = np.zeros_like(out)
        for tap, weight in enumerate(kernel):
            filtered += weight * np.take(padded, np.arange(tap, tap + size), axis=axis)
        out = filtered
    return out


def decimate(image: np.ndarray, ratio: int) -> np.ndarray:
    """Sample ``(C, H, W)`` at the centres of ``ratio x ratio`` blocks: ``(C, H//r, W//r)``.

    For an even ratio the block centre falls between four pixels; their mean is the sample (the
    image is already low-passed, so this adds almost no blur). Rows and columns beyond the last
    whole block are dropped.
    """
    image = np.asarray(image, dtype=np.float32)
    height, width = image.shape[1] // ratio, image.shape[2] // ratio
    if height == 0 or width == 0:
        raise ValueError(f"an image of {image.shape[1:]} pixels cannot be decimated by {ratio}")
    blocks = image[:, : height * ratio, : width * ratio].reshape(
        image.shape[0], height, ratio, width, ratio
    )
    centre = ratio // 2
    if ratio % 2:
        return np.ascontiguousarray(blocks[:, :, centre, :, centre])
    middle = blocks[:, :, centre - 1 : centre + 1, :, centre - 1 : centre + 1]
    return middle.mean(axis=(2, 4)).astype(np.float32)


def wald_degrade(image: np.ndarray, ratio: int, nyquist_gain: float) -> np.ndarray:
    """Degrade ``(C, H, W)`` by ``ratio``: MTF-matched Gaussian low-pass, then decimation."""
    if ratio < 2:
        raise ValueError(f"Wald degradation needs a ratio >= 2, got {ratio}")
    return decimate(gaussian_lowpass(image, mtf_sigma(ratio, nyquist_gain)), ratio)
