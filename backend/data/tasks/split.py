"""Hold back spatially separate samples for evaluation.

Neighbouring tiles of one raster are nearly the same data: a random split would put each validation
tile next to (or overlapping) training tiles and report the score of memorisation. The split here
holds back whole units of ground instead:

* when the dataset has enough groups (patches, areas, scenes) that ``val_fraction`` of them is at
  least one whole group, whole groups are held back (chosen at random with ``seed``);
* otherwise (tiles cut from one or a few rasters) each group gives a contiguous band of tile rows
  (or columns, for a raster that is one tile high), and training keeps only tiles that do not
  overlap that band's pixels. Tiles straddling the band's edge are in neither set.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from .tiling import HoldoutUnit


class Subset:
    """A map-style view of some samples of a dataset (torch's ``DataLoader`` accepts it).

    Attributes:
        dataset: The full dataset.
        indices: Indexes into ``dataset``, in order.
    """

    def __init__(self, dataset: Any, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return self.dataset[self.indices[index]]

    def holdout_units(self) -> List[HoldoutUnit]:
        """The holdout units of the samples in this subset."""
        units = self.dataset.holdout_units()
        return [units[i] for i in self.indices]


def split(dataset: Any, val_fraction: float, seed: int = 0) -> Tuple[Subset, Subset]:
    """Split a task dataset into training samples and spatially separate held-back samples.

    Args:
        dataset: Any dataset of this package (it has ``holdout_units()``).
        val_fraction: Fraction of the samples to hold back, in (0, 1).
        seed: Chooses which groups or which band are held back.

    Returns:
        ``(train, held_back)`` subsets; disjoint, and no training window overlaps a held-back one.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    units = list(dataset.holdout_units())
    if len(units) < 2:
        raise ValueError(
            f"cannot hold back samples from a dataset of {len(units)} sample(s); "
            "add data or use smaller tiles"
        )
    groups: Dict[str, List[int]] = {}
    for index, unit in enumerate(units):
        groups.setdefault(unit.group, []).append(index)
    rng = np.random.default_rng(seed)
    if len(groups) >= 2 and val_fraction * len(groups) >= 1.0:
        train, held = _hold_back_groups(groups, val_fraction, len(units), rng)
    else:
        train, held = [], []
        for members in groups.values():
            group_train, group_held = _hold_back_band(
                [units[i] for i in members], val_fraction, rng
            )
            train += [members[i] for i in group_train]
            held += [members[i] for i in group_held]
    if not train or not held:
        raise ValueError(
            f"holding back {val_fraction:.0%} of {len(units)} samples left "
            f"{len(train)} for training and {len(held)} held back; change val_fraction or tiles"
        )
    return Subset(dataset, sorted(train)), Subset(dataset, sorted(held))


def _hold_back_groups(
    groups: Dict[str, List[int]], val_fraction: float, total: int, rng: np.random.Generator
) -> Tuple[List[int], List[int]]:
    names = sorted(groups)
    order = [names[i] for i in rng.permutation(len(names))]
    target = val_fraction * total
    held_names: List[str] = []
    held_count = 0
    # Take groups while that brings the held-back count closer to the target (at least one);
    # always leave at least one group for training.
    for name in order[:-1]:
        size = len(groups[name])
        if held_names and abs(held_count + size - target) >= abs(held_count - target):
            break
        held_names.append(name)
        held_count += size
    held = [i for name in held_names for i in groups[name]]
    train = [i for name in names if name not in held_names for i in groups[name]]
    return train, held


def _hold_back_band(
    units: List[HoldoutUnit], val_fraction: float, rng: np.random.Generator
) -> Tuple[List[int], List[int]]:
    rows = sorted({u.row for u in units})
    cols = sorted({u.col for u in units})
    by_rows = len(rows) >= len(cols)
    origins = rows if by_rows else cols
    if len(origins) < 2:
        raise ValueError(
            f"group {units[0].group!r} has a single tile row and column; a contiguous block "
            "cannot be held back. Use smaller tiles or more rasters."
        )
    position = [u.row if by_rows else u.col for u in units]
    counts = np.array([sum(p == o for p in position) for o in origins])
    target = max(1, math.ceil(val_fraction * len(units)))
    # Candidate bands: each start, extended over consecutive tile rows until the target is met.
    bands = []
    for start in range(len(origins)):
        stop = start
        while stop < len(origins) and counts[start:stop].sum() < target:
            stop += 1
        if counts[start:stop].sum() >= target and (start > 0 or stop < len(origins)):
            bands.append((start, stop))
    if not bands:
        bands = [(len(origins) - 1, len(origins))]
    start, stop = bands[int(rng.integers(len(bands)))]
    chosen = set(origins[start:stop])
    held = [i for i, p in enumerate(position) if p in chosen]
    extents = [
        (u.row, u.row + u.height) if by_rows else (u.col, u.col + u.width)
        for u in (units[i] for i in held)
    ]
    band_first, band_last = min(e[0] for e in extents), max(e[1] for e in extents)
    train = []
    for i, unit in enumerate(units):
        if i in held:
            continue
        first = unit.row if by_rows else unit.col
        last = first + (unit.height if by_rows else unit.width)
        if last <= band_first or first >= band_last:
            train.append(i)
    return train, held
