"""User classes coloured by what their names mean, in several languages, else a stable palette."""

from __future__ import annotations

import pytest

from backend.class_colours import PALETTE, class_colours, meaning_colour

WATER, FOREST, CROP, URBAN = "#1f78b4", "#1b7837", "#ffd92f", "#e31a1c"
GRASS, BARE, CLOUD, SNOW = "#a6d96a", "#dcc8a0", "#ffffff", "#c6e9f5"


@pytest.mark.parametrize(
    "name, colour",
    [
        ("water", WATER),
        ("Open Water", WATER),
        ("lakes", WATER),
        ("Eau", WATER),
        ("Gewässer", WATER),
        ("forest", FOREST),
        ("Deciduous Forest", FOREST),
        ("trees", FOREST),
        ("Forêt", FOREST),
        ("Wald", FOREST),
        ("bosque", FOREST),
        ("crop", CROP),
        ("Cultivated Crops", CROP),
        ("agriculture", CROP),
        ("tree crops", CROP),  # crops first: an orchard is farmland
        ("Landwirtschaft", CROP),
        ("urban", URBAN),
        ("Developed, High Intensity", URBAN),
        ("built-up", URBAN),
        ("Bâti", URBAN),
        ("grassland", GRASS),
        ("Wiese", GRASS),
        ("bare soil", BARE),
        ("sand", BARE),
        ("Cloud", CLOUD),
        ("nuages", CLOUD),
        ("snow", SNOW),
        ("sea ice", SNOW),
        ("cloud shadow", "#404040"),
    ],
)
def test_common_names_get_their_conventional_colour(name, colour):
    assert meaning_colour(name) == colour


@pytest.mark.parametrize("name", ["class 1", "season", "A", "42"])
def test_other_names_have_no_meaning(name):
    assert meaning_colour(name) is None


def test_unnamed_classes_take_the_palette_in_order_and_never_repeat_a_named_colour():
    names = ["alpha", "water", "beta", "forest", "river", "gamma"]
    colours = class_colours(names)
    assert colours[1] == WATER and colours[3] == FOREST
    unnamed = [colours[i] for i in (0, 2, 4, 5)]  # the river's meaning is taken by "water"
    assert unnamed == list(PALETTE[:4])
    assert len(set(colours)) == len(colours)
    assert class_colours(names) == colours  # the same classes, the same colours on every run
