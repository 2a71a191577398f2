"""ISPRS Vaihingen-style reader on a layout built from the stars Landsat-7 scene + Olinda DEM.

The label images are colour-coded classes from a simple NDVI/elevation rule (conftest's
``olinda_area_rule``): they are NOT ground truth, they only exercise the reader.
"""

from __future__ import annotations

import numpy as np

from backend.data.tasks.isprs import (
    IGNORE_INDEX,
    ISPRS_CLASSES,
    ISPRSDataset,
    decode_label_colors,
    encode_label_colors,
)
from backend.data.tasks.split import split


def test_colour_codes_round_trip_and_unknown_colours_are_ignored():
    labels = np.array([[0, 1, 2], [3, 4, 5]])
    colours = encode_label_colors(labels)
    assert tuple(colours[:, 0, 1]) == (0, 0, 255)  # building is blue
    np.testing.assert_array_equal(decode_label_colors(colours), labels)
    colours[:, 1, 1] = (0, 0, 0)  # the boundary colour of the eroded references
    colours[:, 0, 0] = (254, 255, 255)  # not quite impervious white
    decoded = decode_label_colors(colours)
    assert decoded[1, 1] == IGNORE_INDEX and decoded[0, 0] == IGNORE_INDEX
    assert len(ISPRS_CLASSES) == 6


def test_areas_are_found_and_tiles_carry_image_dsm_and_labels(isprs_root):
    dataset = ISPRSDataset(isprs_root["root"], tile_size=64, stride=48)
    assert dataset.areas == ["1", "3"]
    assert dataset.num_classes == 6
    for index in (0, len(dataset) // 2, len(dataset) - 1):
        sample = dataset[index]
        area, row, col = sample["area"], sample["row"], sample["col"]
        expected = isprs_root["expected"][area]
        window = (slice(row, row + 64), slice(col, col + 64))
        assert sample["inputs"]["rgb"].shape == (3, 64, 64)
        assert sample["inputs"]["dsm"].shape == (1, 64, 64)
        assert sample["target"].shape == (64, 64) and sample["target"].dtype == np.int64
        np.testing.assert_array_equal(
            sample["inputs"]["rgb"], expected["irrg"][(slice(None), *window)]
        )
        np.testing.assert_allclose(sample["inputs"]["dsm"][0], expected["dsm"][window], rtol=1e-6)
        np.testing.assert_array_equal(sample["target"], expected["labels"][window])


def test_unlabelled_tiles_are_skipped(isprs_root):
    dataset = ISPRSDataset(isprs_root["root"], areas=[1], tile_size=40)
    # Area 1's top-left 40 x 40 block is all boundary colour: no tile starts there.
    assert ("1", 0, 0) not in dataset.tiles
    assert ("1", 0, 40) in dataset.tiles
    assert all((dataset[i]["target"] != IGNORE_INDEX).any() for i in range(len(dataset)))


def test_split_holds_back_a_whole_area(isprs_root):
    dataset = ISPRSDataset(isprs_root["root"], tile_size=64)
    train, held, _ = split(dataset, 0.5, seed=0)
    held_areas = {u.group for u in held.holdout_units()}
    assert len(held_areas) == 1
    assert held_areas.isdisjoint(u.group for u in train.holdout_units())
