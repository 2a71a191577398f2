"""Pan-sharpening samples from co-registered panchromatic + multispectral pairs (SpaceNet style).

A pair is a ``pan*.tif`` (1 band) and an ``ms*.tif`` (C bands) covering the same ground, the MS at a
coarser resolution; ``ratio`` is the MS pixel size over the pan pixel size (4 for WorldView-2/3).

**Pixel replication.** Some distributions store MS resampled onto a finer grid by repeating pixels.
The solaris SpaceNet-6 samples do: their ``ms*.tif`` are 300 x 300 at a nominal 1 m, but every
pixel is a repeated 2 x 2 block, so the true MS is 150 x 150 at 2 m and the pan:MS ratio is 4, not
2. ``ms_replication="auto"`` detects such blocks (at least 99 % of the blocks with data constant)
and keeps one pixel per block (``ms[:, ::k, ::k]``).

Two protocols:

* ``"full"`` (full resolution, for inference): the model grid is the pan grid; inputs are the pan
  band and the MS upsampled bicubically onto it. There is no reference, so no target.
* ``"reduced"`` (Wald's protocol, for training and scoring): pan and MS are both degraded by the
  ratio: a Gaussian low-pass whose response at the degraded grid's Nyquist frequency matches the
  sensor MTF (gains 0.15 pan, 0.3 MS by default, see :func:`~.resampling.mtf_sigma`), then
  decimation at block centres. The model sharpens the degraded pair (degraded pan + degraded MS
  upsampled bicubically) on the original MS grid, and the target is the original MS.

Samples are tiles of ``tile_size`` pixels of the model grid: ``{"inputs": {"pan": (1, T, T),
"ms": (C, T, T)}, "target": (C, T, T) (reduced only), "valid": (T, T) bool, "pair": name}``.
Values are raw DN. The files carry no nodata tag; 0 outside the image footprint is no data
(``nodata``), and tiles with less than ``min_valid_fraction`` valid pixels are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..raster import Grid, read_grid
from .resampling import upsample_bicubic, wald_degrade
from .windows import HoldoutUnit, tile_origins

MODES = ("reduced", "full")
# Names of the 4 MS bands of SpaceNet-6 WorldView-2 tiles as distributed (blue, green, red, NIR1).
# Not verifiable from the sample files, which carry no band descriptions.
DEFAULT_MS_BANDS = ("B", "G", "R", "NIR")
_PAN_OR_MS = re.compile(r"(?i)(^|_)(pan|ms)(?=_|\d|$)")


def find_pan_ms_pairs(
    folder: Union[str, Path], pan_pattern: str = "pan*.tif", ms_pattern: str = "ms*.tif"
) -> List[Tuple[Path, Path]]:
    """Pairs of pan and MS files in a folder, matched by name with the ``pan``/``ms`` token removed.

    ``pan1.tif`` pairs with ``ms1.tif``; ``..._PAN_..._tile_8679.tif`` with ``..._MS_..._tile_8679.tif``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"pan-sharpening folder {folder} does not exist")
    ms_by_key = {_PAN_OR_MS.sub(r"\1", p.stem, count=1): p for p in sorted(folder.glob(ms_pattern))}
    pairs = []
    for pan in sorted(folder.glob(pan_pattern)):
        key = _PAN_OR_MS.sub(r"\1", pan.stem, count=1)
        if key in ms_by_key:
            pairs.append((pan, ms_by_key[key]))
    if not pairs:
        raise ValueError(f"no {pan_pattern} + {ms_pattern} pairs with matching names in {folder}")
    return pairs


def pixel_replication(image: np.ndarray, valid: np.ndarray, max_factor: int = 4) -> int:
    """The largest ``k <= max_factor`` such that >= 99 % of valid ``k x k`` blocks are constant."""
    best = 1
    for k in range(2, max_factor + 1):
        height, width = image.shape[1] // k, image.shape[2] // k
        if height == 0 or width == 0:
            break
        blocks = image[:, : height * k, : width * k].reshape(image.shape[0], height, k, width, k)
        constant = (blocks.max(axis=(2, 4)) == blocks.min(axis=(2, 4))).all(axis=0)
        block_valid = valid[: height * k, : width * k].reshape(height, k, width, k).all(axis=(1, 3))
        if block_valid.sum() and constant[block_valid].mean() >= 0.99:
            best = k
    return best


def _block_all(mask: np.ndarray, ratio: int) -> np.ndarray:
    height, width = mask.shape[0] // ratio, mask.shape[1] // ratio
    blocks = mask[: height * ratio, : width * ratio].reshape(height, ratio, width, ratio)
    return blocks.all(axis=(1, 3))


def _repeat(mask: np.ndarray, ratio: int) -> np.ndarray:
    return np.repeat(np.repeat(mask, ratio, axis=0), ratio, axis=1)


@dataclass
class _PreparedPair:
    pan: np.ndarray  # (1, H, W) on the model grid
    ms: np.ndarray  # (C, H, W) upsampled MS on the model grid
    target: Optional[np.ndarray]  # (C, H, W) reference MS (reduced protocol)
    valid: np.ndarray  # (H, W)
    ratio: int


class PanSharpeningDataset:
    """Tiles of pan + MS pairs for pan-sharpening (see the module docstring).

    Args:
        pairs: ``(pan path, ms path)`` pairs (:func:`find_pan_ms_pairs`).
        mode: ``"reduced"`` (Wald protocol, with target) or ``"full"`` (no target).
        tile_size: Tile side in model-grid pixels.
        stride: Step between regular tiles (default ``tile_size``).
        random_tiles: If set, this many random tiles per pair (drawn from ``seed``) instead of a
            regular grid.
        seed: Seed of the random tiles.
        ms_replication: ``"auto"`` or the MS pixel-replication factor (1 = none).
        nodata: Value marking no data in both files.
        min_valid_fraction: Tiles with fewer valid pixels are left out.
        pan_nyquist_gain: MTF gain of the pan band at the degraded Nyquist frequency.
        ms_nyquist_gain: MTF gain of the MS bands at the degraded Nyquist frequency.
        ms_bands: Names of the MS bands.
        sensor_names: The sensors the pan and MS inputs are (registry names): ``("pan", "ms")``
            for WorldView, ``("landsat8_pan", "landsat8")`` for Landsat-8 OLI.
    """

    def __init__(
        self,
        pairs: Sequence[Tuple[Union[str, Path], Union[str, Path]]],
        mode: str = "reduced",
        tile_size: int = 64,
        stride: Optional[int] = None,
        random_tiles: Optional[int] = None,
        seed: int = 0,
        ms_replication: Union[str, int] = "auto",
        nodata: Optional[float] = 0.0,
        min_valid_fraction: float = 1.0,
        pan_nyquist_gain: float = 0.15,
        ms_nyquist_gain: float = 0.3,
        ms_bands: Sequence[str] = DEFAULT_MS_BANDS,
        sensor_names: Tuple[str, str] = ("pan", "ms"),
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not pairs:
            raise ValueError("no pan/MS pairs given")
        self.mode = mode
        self.tile_size = int(tile_size)
        self.stride = int(stride or tile_size)
        self.ms_replication = ms_replication
        self.nodata = nodata
        self.pan_nyquist_gain = pan_nyquist_gain
        self.ms_nyquist_gain = ms_nyquist_gain
        self.ms_bands = tuple(ms_bands)
        self.sensor_names = (str(sensor_names[0]), str(sensor_names[1]))
        self.pairs = [(Path(p), Path(m)) for p, m in pairs]
        self._cache: Dict[int, _PreparedPair] = {}
        self.tiles: List[Tuple[int, int, int]] = []
        self.ratios: List[int] = []
        rng = np.random.default_rng(seed)
        for pair_index in range(len(self.pairs)):
            prepared = self._prepare(pair_index)
            self.ratios.append(prepared.ratio)
            height, width = prepared.valid.shape
            if random_tiles:
                windows = [
                    (int(rng.integers(0, max(height - self.tile_size, 0) + 1)),
                     int(rng.integers(0, max(width - self.tile_size, 0) + 1)))
                    for _ in range(int(random_tiles))
                ]  # fmt: skip
            else:
                windows = [
                    (r, c)
                    for r in tile_origins(height, self.tile_size, self.stride)
                    for c in tile_origins(width, self.tile_size, self.stride)
                ]
            for row, col in windows:
                window = prepared.valid[row : row + self.tile_size, col : col + self.tile_size]
                fraction = window.sum() / float(self.tile_size * self.tile_size)
                if fraction >= min_valid_fraction and window.any():
                    self.tiles.append((pair_index, row, col))
            # Keep only the last pair in memory: a large collection would not fit.
            self._cache = {pair_index: prepared}
        if not self.tiles:
            raise ValueError(
                f"no {self.tile_size}-pixel tile of the {len(self.pairs)} pan/MS pair(s) has "
                f"{min_valid_fraction:.0%} valid pixels; use smaller tiles or min_valid_fraction"
            )

    @classmethod
    def from_folder(cls, folder: Union[str, Path], **kwargs: Any) -> PanSharpeningDataset:
        """A dataset of every ``pan*.tif`` + ``ms*.tif`` pair of a folder."""
        return cls(find_pan_ms_pairs(folder), **kwargs)

    def __len__(self) -> int:
        return len(self.tiles)

    def holdout_units(self) -> List[HoldoutUnit]:
        """Each pair is a group; tiles are windows of its model grid."""
        grids = {p: self.model_grid(p) for p in {p for p, _, _ in self.tiles}}
        return [
            HoldoutUnit(self.pairs[p][0].stem, r, c, self.tile_size, self.tile_size, grids[p])
            for p, r, c in self.tiles
        ]

    def model_grid(self, pair_index: int) -> Grid:
        """The pair's model grid: the pan grid, coarsened by the ratio in the reduced protocol
        (both grids start at the same corner, which :func:`_ratio` checks)."""
        pan = read_grid(str(self.pairs[pair_index][0]))
        factor = self.ratios[pair_index] if self.mode == "reduced" else 1
        a, b, c, d, e, f = pan.transform
        transform = (a * factor, b * factor, c, d * factor, e * factor, f)
        return Grid(pan.crs_wkt, transform, pan.width // factor, pan.height // factor)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        pair_index, row, col = self.tiles[index]
        if pair_index not in self._cache:
            self._cache = {pair_index: self._prepare(pair_index)}
        prepared = self._cache[pair_index]
        window = (slice(None), slice(row, row + self.tile_size), slice(col, col + self.tile_size))
        sample: Dict[str, Any] = {
            "inputs": {
                self.sensor_names[0]: np.ascontiguousarray(prepared.pan[window]),
                self.sensor_names[1]: np.ascontiguousarray(prepared.ms[window]),
            },
            "target_sensor": self.sensor_names[1],
            "valid": np.ascontiguousarray(prepared.valid[window[1:]]),
            "pair": self.pairs[pair_index][0].stem,
        }
        if prepared.target is not None:
            sample["target"] = np.ascontiguousarray(prepared.target[window])
        return sample

    def _read(self, path: Path) -> Tuple[np.ndarray, Any]:
        import rasterio

        with rasterio.open(path) as dataset:
            return dataset.read().astype(np.float32), dataset.transform

    def _prepare(self, pair_index: int) -> _PreparedPair:
        pan_path, ms_path = self.pairs[pair_index]
        pan, pan_transform = self._read(pan_path)
        ms, ms_transform = self._read(ms_path)
        if pan.shape[0] != 1:
            raise ValueError(
                f"{pan_path}: a panchromatic image has 1 band, this one {pan.shape[0]}"
            )
        if ms.shape[0] != len(self.ms_bands):
            raise ValueError(
                f"{ms_path}: {ms.shape[0]} bands but ms_bands names {len(self.ms_bands)} "
                f"({', '.join(self.ms_bands)}); pass ms_bands matching the file"
            )
        pan_valid = np.isfinite(pan[0])
        ms_valid = np.isfinite(ms).all(axis=0)
        if self.nodata is not None:
            pan_valid &= pan[0] != self.nodata
            ms_valid &= (ms != self.nodata).all(axis=0)
        replication = (
            pixel_replication(ms, ms_valid)
            if self.ms_replication == "auto"
            else int(self.ms_replication)
        )
        if replication > 1:
            ms = np.ascontiguousarray(ms[:, ::replication, ::replication])
            ms_valid = ms_valid[::replication, ::replication]
        ratio = _ratio(pan_path, pan_transform, ms_path, ms_transform, replication)
        # Crop both to the common whole-pixel extent (MS pixel = ratio pan pixels).
        height = min(ms.shape[1], pan.shape[1] // ratio)
        width = min(ms.shape[2], pan.shape[2] // ratio)
        if self.mode == "full":
            ms, ms_valid = ms[:, :height, :width], ms_valid[:height, :width]
            pan = pan[:, : height * ratio, : width * ratio]
            valid = pan_valid[: height * ratio, : width * ratio] & _repeat(ms_valid, ratio)
            return _PreparedPair(pan, upsample_bicubic(ms, ratio), None, valid, ratio)
        # Reduced resolution: the model grid is the MS grid, cut to whole degraded pixels.
        height, width = (height // ratio) * ratio, (width // ratio) * ratio
        if height == 0 or width == 0:
            raise ValueError(f"{ms_path}: too small to degrade by the pan:MS ratio {ratio}")
        target, ms_valid = ms[:, :height, :width], ms_valid[:height, :width]
        pan = pan[:, : height * ratio, : width * ratio]
        pan_valid = pan_valid[: height * ratio, : width * ratio]
        pan_low = wald_degrade(pan, ratio, self.pan_nyquist_gain)
        ms_low = wald_degrade(target, ratio, self.ms_nyquist_gain)
        valid = (
            ms_valid & _block_all(pan_valid, ratio) & _repeat(_block_all(ms_valid, ratio), ratio)
        )
        return _PreparedPair(pan_low, upsample_bicubic(ms_low, ratio), target, valid, ratio)


def _ratio(pan_path: Path, pan_transform, ms_path: Path, ms_transform, replication: int) -> int:
    ratio_float = abs(ms_transform.a) * replication / abs(pan_transform.a)
    ratio = round(ratio_float)
    if ratio < 2 or abs(ratio_float - ratio) > 0.01 * ratio:
        raise ValueError(
            f"{ms_path} ({abs(ms_transform.a) * replication:.4f} m) and {pan_path} "
            f"({abs(pan_transform.a):.4f} m): the MS pixel must be a whole number >= 2 of pan pixels"
        )
    # The two grids must start at the same corner (to a fraction of a pan pixel).
    shift = max(abs(ms_transform.c - pan_transform.c), abs(ms_transform.f - pan_transform.f))
    if shift > 0.5 * abs(pan_transform.a):
        raise ValueError(
            f"{pan_path} and {ms_path} do not start at the same corner (offset {shift:.3f} CRS "
            "units); pan-sharpening pairs must be co-registered tiles of the same extent"
        )
    return ratio
