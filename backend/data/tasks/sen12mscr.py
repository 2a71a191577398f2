"""SAR-guided cloud removal samples: SEN12MS-CR triplets, or clouds simulated on clear S2 + S1.

SEN12MS-CR (Ebel et al. 2020) is published as one folder per season and modality::

    ROIs1158_spring_s1/s1_<scene>/ROIs1158_spring_s1_<scene>_p<patch>.tif              VV, VH (dB)
    ROIs1158_spring_s2/s2_<scene>/ROIs1158_spring_s2_<scene>_p<patch>.tif              13-band L1C, clear
    ROIs1158_spring_s2_cloudy/s2_cloudy_<scene>/ROIs1158_spring_s2_cloudy_<scene>_p<patch>.tif

The season folder may also hold all three scene folders (``ROIs1158_spring/s1_<scene>/...``, the
SEN12MS arrangement); both are found. Of the 13 L1C bands, B10 (cirrus) is dropped by name, leaving
the 12 bands of the ``s2`` sensor.

SEN12MS-CR ships no cloud masks. :class:`SEN12MSCRDataset` derives one: a pixel is cloudy where the
cloudy image is brighter than the clear one by more than ``cloud_mask_threshold`` (reflectance x
10000) averaged over B02, B03, B04. It marks clouds and thick haze, not shadows; the clear and
cloudy images are days apart, so strong land changes can also show up.

:class:`SimulatedCloudRemovalDataset` makes the same samples from any dataset of clear S2 + S1
(e.g. :class:`~backend.data.tasks.bigearthnet.BigEarthNetDataset`) with the seeded simulator of
:mod:`backend.data.tasks.clouds`; its mask is the simulator's.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ...sensors import get_sensor
from ..layouts import L1C_BAND_ORDER
from ..raster import read_grid
from .clouds import CloudSettings, simulate_clouds
from .windows import HoldoutUnit

_S1_PATCH = re.compile(r"^(?P<roi>ROIs\d+_[A-Za-z]+)_s1_(?P<scene>\d+)_p(?P<patch>\d+)\.tif$")
# The visible bands whose brightening marks a cloud (indexes into the 12 s2 bands).
_VISIBLE = tuple(get_sensor("s2").bands.index(b) for b in ("B02", "B03", "B04"))


def _partner(s1_path: Path, roi: str, scene: str, patch: str, kind: str) -> Path:
    """Path of the ``kind`` (``s2`` or ``s2_cloudy``) file matching an S1 patch file."""
    season = s1_path.parent.parent
    # ROIs1158_spring_s1/ -> ROIs1158_spring_s2/ ; ROIs1158_spring/ holds every modality itself.
    folder = season.parent / f"{season.name[:-3]}_{kind}" if season.name.endswith("_s1") else season
    return folder / f"{kind}_{scene}" / f"{roi}_{kind}_{scene}_p{patch}.tif"


def find_sen12mscr_triplets(root: Union[str, Path]) -> List[Tuple[str, Path, Path, Path]]:
    """``(patch id, s1, clear s2, cloudy s2)`` paths of every complete triplet under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"SEN12MS-CR folder {root} does not exist")
    triplets = []
    for s1_path in sorted(root.glob("**/s1_*/*_s1_*_p*.tif")):
        match = _S1_PATCH.match(s1_path.name)
        if match is None:
            continue
        roi, scene, patch = match["roi"], match["scene"], match["patch"]
        clear = _partner(s1_path, roi, scene, patch, "s2")
        cloudy = _partner(s1_path, roi, scene, patch, "s2_cloudy")
        # Incomplete triplets exist in the published archives; they are skipped, as upstream does.
        if clear.is_file() and cloudy.is_file():
            triplets.append((f"{roi}_{scene}_p{patch}", s1_path, clear, cloudy))
    return triplets


def _read_l1c(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as dataset:
        if dataset.count != len(L1C_BAND_ORDER):
            raise ValueError(
                f"{path}: a SEN12MS-CR S2 patch has the 13 L1C bands "
                f"({', '.join(L1C_BAND_ORDER)}); this file has {dataset.count}"
            )
        values = dataset.read(masked=True).astype(np.float32).filled(np.nan)
    keep = [L1C_BAND_ORDER.index(b) for b in get_sensor("s2").bands]
    return np.ascontiguousarray(values[keep])


def _read_s1(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as dataset:
        if dataset.count != 2:
            raise ValueError(
                f"{path}: a SEN12MS-CR S1 patch has 2 bands (VV, VH), not {dataset.count}"
            )
        return dataset.read(masked=True).astype(np.float32).filled(np.nan)


def brightening_cloud_mask(cloudy: np.ndarray, clear: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels where ``cloudy`` is brighter than ``clear`` by more than ``threshold`` (visible mean)."""
    difference = (cloudy[list(_VISIBLE)] - clear[list(_VISIBLE)]).mean(axis=0)
    return np.nan_to_num(difference, nan=0.0) > threshold


class SEN12MSCRDataset:
    """SEN12MS-CR triplets for SAR-guided cloud removal.

    Each sample is a dict:

    * ``"inputs"``: ``{"s2": float32 (12, H, W) cloudy, "sar": float32 (2, H, W)}``.
    * ``"target"``: float32 (12, H, W), the clear image.
    * ``"cloud_mask"``: bool (H, W) (see the module docstring).
    * ``"patch"``: ``<roi>_<scene>_p<patch>``.

    Values are raw: reflectance x 10000 and sigma0 dB; NaN = no data.

    Args:
        root: Folder holding the season folders.
        cloud_mask_threshold: Brightening (reflectance x 10000) that marks a cloud.
    """

    def __init__(self, root: Union[str, Path], cloud_mask_threshold: float = 500.0):
        self.root = Path(root)
        self.triplets = find_sen12mscr_triplets(self.root)
        if not self.triplets:
            raise ValueError(
                f"no SEN12MS-CR triplets under {self.root}: expected "
                "ROIs<id>_<season>_s1/s1_<n>/..._s1_<n>_p<k>.tif with matching _s2 and _s2_cloudy files"
            )
        self.cloud_mask_threshold = cloud_mask_threshold

    def __len__(self) -> int:
        return len(self.triplets)

    def holdout_units(self) -> List[HoldoutUnit]:
        """Patches of one scene overlap (SEN12MS cuts them with a half-patch stride): the group is
        the scene, so a split holds back whole scenes."""
        units = []
        for patch_id, _, clear_path, _ in self.triplets:
            grid = read_grid(str(clear_path))
            group = patch_id.rsplit("_p", 1)[0]
            # The window is the patch's own grid, so its footprint is the patch's ground.
            units.append(HoldoutUnit(group, 0, 0, grid.height, grid.width, grid))
        return units

    def __getitem__(self, index: int) -> Dict[str, Any]:
        patch_id, s1_path, clear_path, cloudy_path = self.triplets[index]
        clear = _read_l1c(clear_path)
        cloudy = _read_l1c(cloudy_path)
        sar = _read_s1(s1_path)
        if not clear.shape[1:] == cloudy.shape[1:] == sar.shape[1:]:
            raise ValueError(
                f"SEN12MS-CR patch {patch_id}: S1 {sar.shape[1:]}, clear {clear.shape[1:]} and "
                f"cloudy {cloudy.shape[1:]} sizes differ"
            )
        return {
            "inputs": {"s2": cloudy, "sar": sar},
            "target": clear,
            "cloud_mask": brightening_cloud_mask(cloudy, clear, self.cloud_mask_threshold),
            "patch": patch_id,
        }


class SimulatedCloudRemovalDataset:
    """Cloud-removal samples made from a dataset of clear S2 (+ S1) with simulated clouds.

    Sample ``i`` takes the base dataset's sample ``i`` and covers its ``s2`` input with clouds drawn
    from ``seed`` and ``i`` (the same every epoch); the cover fraction is drawn uniformly from
    ``coverage_range``. Keys as :class:`SEN12MSCRDataset`.

    Args:
        base: A dataset whose samples have ``inputs["s2"]`` (12 bands) and usually ``inputs["sar"]``.
        seed: Seed of the cloud simulation.
        coverage_range: Range of the cloud cover fraction.
        settings: Other simulator settings (its ``coverage`` is replaced per sample).
    """

    def __init__(
        self,
        base: Any,
        seed: int = 0,
        coverage_range: Tuple[float, float] = (0.2, 0.7),
        settings: Optional[CloudSettings] = None,
    ):
        low, high = coverage_range
        if not 0.0 < low <= high < 1.0:
            raise ValueError(
                f"coverage_range must be within (0, 1) and ordered, got {coverage_range}"
            )
        self.base = base
        self.seed = seed
        self.coverage_range = (float(low), float(high))
        self.settings = settings or CloudSettings()

    def __len__(self) -> int:
        return len(self.base)

    def holdout_units(self) -> List[HoldoutUnit]:
        """The base dataset's units."""
        return self.base.holdout_units()

    def __getitem__(self, index: int) -> Dict[str, Any]:
        sample = self.base[index]
        clear = sample["inputs"]["s2"]
        rng = np.random.default_rng([self.seed, int(index)])
        coverage = float(rng.uniform(*self.coverage_range))
        settings = _replace_coverage(self.settings, coverage)
        cloudy, _, mask = simulate_clouds(
            clear, get_sensor("s2").bands, seed=int(rng.integers(2**31)), settings=settings
        )
        inputs = dict(sample["inputs"])
        inputs["s2"] = cloudy
        out = {key: value for key, value in sample.items() if key not in ("inputs", "target")}
        out.update({"inputs": inputs, "target": clear, "cloud_mask": mask})
        return out


def _replace_coverage(settings: CloudSettings, coverage: float) -> CloudSettings:
    return dataclasses.replace(settings, coverage=coverage)


def l1c_band_names() -> Sequence[str]:
    """The 13 band names of a SEN12MS-CR S2 file, in file order."""
    return L1C_BAND_ORDER
