"""Train / validation / test splits of a task dataset that are spatially disjoint, with a gap.

Neighbouring tiles of one raster are nearly the same data: a random split would put each held-back
tile next to (or overlapping) training tiles and report the score of memorisation. And a
checkpoint chosen on the tiles it is then scored on is scored with a bias. The split here gives
three parts: *train* (fitted on), *validation* (every choice: early stopping, the best
checkpoint) and *test* (reported scores only), and holds back whole units of ground:

* when the dataset has enough groups (patches, areas, scenes) that each held-back fraction rounds
  to at least one whole group, whole groups are held back (chosen at random with ``seed``; or, with
  ``fold``, leave-one-group-out: the fold's group is the test set). Groups are distinct places;
  ``tests/backend/data/tasks/test_split_real.py`` checks that on the real tasks' footprints;
* otherwise (tiles cut from one or a few rasters) each group gives one contiguous block of tile
  rows (or columns, for a raster wider than high): a test band, a ``gap`` of at least ``gap``
  pixels, and a validation band. Training keeps only tiles at least ``gap`` pixels away from both
  bands; tiles straddling a band's edge or inside a gap are in no part.

Each seed's held-back parts differ from those of the seeds before it while the data allows: seed 0
draws as it always did (so a model finetuned with it is scored again on the same test tiles), and
seed ``s`` draws with its own generator among the test groups or test bands that seeds
``0 .. s - 1`` have not yet used (once every one is used, the cycle starts again). Without that, a
few candidate bands gave seeds 0 and 2 the same test set, so three seeds were two test sets. Each
draw is still a function of the seed alone, and the leak-free rules above hold for every draw.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .windows import HoldoutUnit


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


class Split(NamedTuple):
    """The three parts of a dataset; ``test`` is empty when no test fraction was asked for."""

    train: Subset
    val: Subset
    test: Subset

    def held_back(self) -> List[HoldoutUnit]:
        """Units of every sample that must not be trained on (validation and test)."""
        return self.val.holdout_units() + self.test.holdout_units()

    def counts(self) -> Dict[str, int]:
        """``{"n_train", "n_val", "n_test"}``."""
        return {"n_train": len(self.train), "n_val": len(self.val), "n_test": len(self.test)}


def split(
    dataset: Any,
    val_fraction: float,
    seed: int = 0,
    test_fraction: float = 0.0,
    gap: Optional[int] = None,
    fold: Optional[int] = None,
) -> Split:
    """Split a task dataset into spatially separate training, validation and test samples.

    Args:
        dataset: Any dataset of this package (it has ``holdout_units()``).
        val_fraction: Fraction of the samples for validation, in (0, 1).
        seed: Chooses which groups or which bands are held back.
        test_fraction: Fraction for the test set, in [0, 1); 0 = no test set (a user's finetuning
            run on their own labels), as before this split had three parts.
        gap: Pixels of ground between a training tile and a held-back band, and between the test
            and validation bands (band mode). Default: half a tile.
        fold: Leave-one-group-out: the ``fold``-th group (in sorted order, modulo the number of
            groups) is the test set and the next one the validation set. Needs whole groups.

    Returns:
        ``Split(train, val, test)``: disjoint, and no training window comes within ``gap`` pixels
        of a held-back one.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"test_fraction must be in [0, 1) and leave samples for training beside "
            f"val_fraction {val_fraction}, got {test_fraction}"
        )
    units = list(dataset.holdout_units())
    parts = 3 if (test_fraction > 0 or fold is not None) else 2
    if len(units) < parts:
        raise ValueError(
            f"cannot hold back samples from a dataset of {len(units)} sample(s); "
            "add data or use smaller tiles"
        )
    groups: Dict[str, List[int]] = {}
    for index, unit in enumerate(units):
        groups.setdefault(unit.group, []).append(index)
    # Whole groups when each held-back fraction rounds to at least one group.
    whole_groups = len(groups) >= parts and round(val_fraction * len(groups)) >= 1
    if test_fraction > 0:
        whole_groups = whole_groups and round(test_fraction * len(groups)) >= 1
    if fold is not None:
        if len(groups) < 3:
            raise ValueError(
                f"leave-one-group-out needs at least 3 groups (train, validation, test); the "
                f"dataset has {len(groups)}"
            )
        train, val, test = _fold_groups(groups, fold)
    elif whole_groups:
        train, val, test = _seeded_groups(groups, val_fraction, test_fraction, len(units), seed)
    else:
        train, val, test = _seeded_bands(groups, units, val_fraction, test_fraction, gap, seed)
    if not train or not val or (parts == 3 and not test):
        raise ValueError(
            f"holding back {val_fraction:.0%} for validation and {test_fraction:.0%} for test of "
            f"{len(units)} samples left {len(train)} for training, {len(val)} for validation and "
            f"{len(test)} for test; change the fractions, the gap or the tiles"
        )
    return Split(
        Subset(dataset, sorted(train)), Subset(dataset, sorted(val)), Subset(dataset, sorted(test))
    )


def _draw_seeds(seed: int) -> range:
    """Seeds whose draws decide ``seed``'s: every one from 0 (a draw avoids earlier ones)."""
    if seed < 0:
        raise ValueError(f"the split seed must be 0 or more, got {seed}")
    return range(seed + 1)


def _seeded_groups(
    groups: Dict[str, List[int]],
    val_fraction: float,
    test_fraction: float,
    total: int,
    seed: int,
) -> Tuple[List[int], List[int], List[int]]:
    """Whole groups held back, the test groups (or validation, without a test part) of
    ``seed`` drawn first among the groups that smaller seeds have not held back."""
    used: set = set()
    chosen: Tuple[List[int], List[int], List[int]] = ([], [], [])
    for draw in _draw_seeds(seed):
        chosen, key = _hold_back_groups(
            groups, val_fraction, test_fraction, total, np.random.default_rng(draw), used
        )
        used |= key
        if used >= set(groups):
            used = set()
    return chosen


def _seeded_bands(
    groups: Dict[str, List[int]],
    units: List[HoldoutUnit],
    val_fraction: float,
    test_fraction: float,
    gap: Optional[int],
    seed: int,
) -> Tuple[List[int], List[int], List[int]]:
    """Bands of tile rows held back in every group; each group's test band (or validation
    band, without a test part) of ``seed`` is drawn among those smaller seeds have not used."""
    used: Dict[str, set] = {name: set() for name in groups}
    parts: Tuple[List[int], List[int], List[int]] = ([], [], [])
    for draw in _draw_seeds(seed):
        rng = np.random.default_rng(draw)
        parts = ([], [], [])
        for name, members in groups.items():
            size = max(max(units[i].height, units[i].width) for i in members)
            group_gap = size // 2 if gap is None else int(gap)
            parts_of_group, key, options = _hold_back_band(
                [units[i] for i in members],
                val_fraction,
                test_fraction,
                group_gap,
                rng,
                used[name] if draw else None,
            )
            used[name].add(key)
            if used[name] >= options:
                used[name] = set()
            for bucket, chosen in zip(parts, parts_of_group):
                bucket += [members[i] for i in chosen]
    return parts


def _fold_groups(groups: Dict[str, List[int]], fold: int) -> Tuple[List[int], List[int], List[int]]:
    names = sorted(groups)
    test_name = names[fold % len(names)]
    val_name = names[(fold + 1) % len(names)]
    train = [i for name in names if name not in (test_name, val_name) for i in groups[name]]
    return train, list(groups[val_name]), list(groups[test_name])


def _take_groups(order: List[str], groups: Dict[str, List[int]], target: float) -> List[str]:
    """Groups from the front of ``order`` while that brings the count closer to ``target``."""
    taken: List[str] = []
    count = 0
    for name in order:
        size = len(groups[name])
        if taken and abs(count + size - target) >= abs(count - target):
            break
        taken.append(name)
        count += size
    return taken


def _hold_back_groups(
    groups: Dict[str, List[int]],
    val_fraction: float,
    test_fraction: float,
    total: int,
    rng: np.random.Generator,
    avoid: Optional[set] = None,
) -> Tuple[Tuple[List[int], List[int], List[int]], set]:
    """``((train, validation, test), groups that decide the draw)``; groups in ``avoid`` go to
    the back of the drawn order, so they are held back for test only when no other can be."""
    names = sorted(groups)
    order = [names[i] for i in rng.permutation(len(names))]
    if avoid:
        order = [n for n in order if n not in avoid] + [n for n in order if n in avoid]
    keep = 1  # always leave at least one group for training
    test_names: List[str] = []
    if test_fraction > 0:
        test_names = _take_groups(order[: len(order) - keep - 1], groups, test_fraction * total)
    rest = [n for n in order if n not in test_names]
    val_names = _take_groups(rest[: len(rest) - keep], groups, val_fraction * total)
    train = [i for name in names if name not in test_names + val_names for i in groups[name]]
    val = [i for name in val_names for i in groups[name]]
    test = [i for name in test_names for i in groups[name]]
    return (train, val, test), set(test_names or val_names)


def _band_size(counts: np.ndarray, start: int, target: float) -> int:
    """Tile rows from ``start`` whose sample count is closest to ``target`` (at least one)."""
    stop = start + 1
    while stop < len(counts) and abs(counts[start : stop + 1].sum() - target) < abs(
        counts[start:stop].sum() - target
    ):
        stop += 1
    return stop - start


def _hold_back_band(
    units: List[HoldoutUnit],
    val_fraction: float,
    test_fraction: float,
    gap: int,
    rng: np.random.Generator,
    avoid: Optional[set] = None,
) -> Tuple[Tuple[List[int], List[int], List[int]], Tuple[int, int], set]:
    """``((train, validation, test), the first held-back band, every possible first band)``;
    the first band is the test band (the validation band without a test part), and bands in
    ``avoid`` are drawn only when no other is possible."""
    rows = sorted({u.row for u in units})
    cols = sorted({u.col for u in units})
    by_rows = len(rows) >= len(cols)
    origins = rows if by_rows else cols
    if len(origins) < 2:
        raise ValueError(
            f"group {units[0].group!r} has a single tile row and column; a contiguous block "
            "cannot be held back. Use smaller tiles or more rasters."
        )
    first = [u.row if by_rows else u.col for u in units]
    last = [f + (u.height if by_rows else u.width) for f, u in zip(first, units)]
    counts = np.array([sum(p == o for p in first) for o in origins])
    extent = max(last)

    def band(start: int, target: float) -> Tuple[int, int, int]:
        """(first origin index, stop origin index, pixel end) of a band of tile rows."""
        size = _band_size(counts, start, target)
        stop = min(start + size, len(origins))
        end = max(
            last[i] for i, p in enumerate(first) if origins[start] <= p < origins[stop - 1] + 1
        )
        return start, stop, end

    # Candidate blocks: each start gives [first band | gap | second band]; which of test and
    # validation comes first is drawn too. A block may not cover the whole group: training needs
    # ground outside it, at least `gap` pixels away.
    targets = [val_fraction * len(units)]
    if test_fraction > 0:
        targets = [test_fraction * len(units), val_fraction * len(units)]
    candidates = []
    full: List[bool] = []
    for swap in [False, True] if len(targets) == 2 else [False]:
        ordered = targets[::-1] if swap else targets
        for start in range(len(origins)):
            bands = []
            position = start
            for target in ordered:
                if position >= len(origins):
                    break
                first_band = band(position, target)
                bands.append((origins[first_band[0]], first_band[2]))
                # The next band starts at the first origin at least `gap` past this one's end.
                position = next(
                    (k for k, o in enumerate(origins) if o >= first_band[2] + gap), len(origins)
                )
            if len(bands) != len(ordered):
                continue
            block_start, block_end = bands[0][0], bands[-1][1]
            if block_start - gap <= 0 and block_end + gap >= extent:
                continue
            candidates.append(bands[::-1] if swap else bands)
            # A band cut short by the raster's end holds under three quarters of the samples
            # asked for.
            held = [sum(low <= f and e <= high for f, e in zip(first, last)) for low, high in bands]
            full.append(all(h >= 0.75 * t for h, t in zip(held, ordered)))
    if not candidates:
        raise ValueError(
            f"group {units[0].group!r} ({len(origins)} tile rows) is too small to hold back "
            f"{'test and validation bands' if test_fraction > 0 else 'a band'} with a {gap}-pixel "
            "gap and keep training tiles; use smaller tiles, a smaller gap or more rasters"
        )
    # Seed 0 draws among all candidates, as it always did. A later seed draws among the bands no
    # smaller seed used, preferring bands that are not cut short.
    fresh = candidates
    if avoid is not None:
        sized = [c for c, ok in zip(candidates, full) if ok] or candidates
        fresh = [c for c in sized if c[0] not in avoid] or sized
    chosen = fresh[int(rng.integers(len(fresh)))]
    options = {c[0] for c in candidates}
    held: List[List[int]] = []
    for low, high in chosen:
        held.append([i for i in range(len(units)) if low <= first[i] and last[i] <= high])
    train = [
        i
        for i in range(len(units))
        if all(last[i] + gap <= low or first[i] >= high + gap for low, high in chosen)
    ]
    if len(held) == 1:
        return (train, held[0], []), chosen[0], options
    test, val = held
    return (train, val, test), chosen[0], options
