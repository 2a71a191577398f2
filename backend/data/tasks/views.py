"""Views over task datasets: the same samples, relabelled or resized.

* :class:`MajorityClassTiles` turns a segmentation dataset into scene classification: each tile
  labelled by its majority class.
* :class:`TileSizedDataset` cuts or pads every sample to the encoder's tile size.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from ...conventions import IGNORE_INDEX


class MajorityClassTiles:
    """Scene-classification samples: tiles of a segmentation dataset, labelled by majority class.

    Tiles whose labelled fraction (of pixels an image covers) is below ``min_labelled`` are left
    out. Samples are
    ``{"inputs", "target": int64 class index, "row", "col"}``.
    """

    multilabel = False

    def __init__(self, tiles: Any, min_labelled: float = 0.5):
        self.tiles = tiles
        self.num_classes = tiles.num_classes
        self.class_names = list(tiles.class_names)
        self.class_values = list(tiles.class_values)
        self.sensors = [image.sensor for image in tiles.images]
        self.indices: List[int] = []
        self.targets: List[int] = []
        for index in range(len(tiles.tiles)):
            # Pixels without imagery do not count towards the majority or the labelled share.
            labels = tiles.seen_labels(index)
            labelled = labels[labels != tiles.ignore_index]
            if labelled.size < min_labelled * labels.size:
                continue
            counts = np.bincount(labelled, minlength=self.num_classes)
            self.indices.append(index)
            self.targets.append(int(np.argmax(counts)))
        if len(self.indices) < 2:
            raise ValueError(
                f"only {len(self.indices)} tile(s) of {tiles.label_source} are at least "
                f"{min_labelled:.0%} labelled; use smaller tiles or a lower min_labelled"
            )

    def __len__(self) -> int:
        return len(self.indices)

    def holdout_units(self) -> List[Any]:
        units = self.tiles.holdout_units()
        return [units[i] for i in self.indices]

    def target(self, index: int) -> np.ndarray:
        return np.array(self.targets[index], dtype=np.int64)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        sample = dict(self.tiles[self.indices[index]])
        sample["target"] = self.target(index)
        return sample


class TileSizedDataset:
    """A view of a task dataset whose samples are cut (centre) or padded to ``size`` pixels.

    The encoder needs tiles whose side is a multiple of its stride (BigEarthNet's 120-pixel
    patches are not). Padding is no data: NaN inputs and targets, ``IGNORE_INDEX`` labels, False
    masks, so padded pixels are neither learned from nor scored.
    """

    def __init__(self, dataset: Any, size: int):
        self.dataset = dataset
        self.size = int(size)

    def __len__(self) -> int:
        return len(self.dataset)

    def holdout_units(self) -> List[Any]:
        return self.dataset.holdout_units()

    def __getitem__(self, index: int) -> Dict[str, Any]:
        sample = self.dataset[index]
        out = dict(sample)
        out["inputs"] = {k: fit_array(v, self.size, np.nan) for k, v in sample["inputs"].items()}
        target = sample.get("target")
        if isinstance(target, np.ndarray) and target.ndim >= 2:
            fill = IGNORE_INDEX if np.issubdtype(target.dtype, np.integer) else np.nan
            out["target"] = fit_array(target, self.size, fill)
        for key in ("cloud_mask", "valid"):
            if key in sample:
                out[key] = fit_array(np.asarray(sample[key]), self.size, False)
        return out


def fit_array(array: np.ndarray, size: int, fill: Any) -> np.ndarray:
    """Centre-crop or pad the last two axes of ``array`` to ``size`` (padding with ``fill``)."""
    height, width = array.shape[-2:]
    if (height, width) == (size, size):
        return array
    out = np.full((*array.shape[:-2], size, size), fill, dtype=array.dtype)
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    window = array[..., top : top + size, left : left + size]
    offset_row, offset_col = max(0, (size - height) // 2), max(0, (size - width) // 2)
    out[
        ...,
        offset_row : offset_row + window.shape[-2],
        offset_col : offset_col + window.shape[-1],
    ] = window
    return out
