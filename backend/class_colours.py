"""Colours of user classes: the colour a map reader expects for common land-cover names.

Classes named by the user (a class field of training examples or polygons) get the colour
land-cover maps conventionally use for their meaning: water blue, forest dark green, crops yellow,
built-up red, grass light green, bare ground beige, clouds white, snow and ice pale cyan... The name
is matched word by word, in English and a few other languages (French, German, Spanish, Portuguese,
Italian), without regard to case or accents. Other classes take the colours of a fixed qualitative
palette in order, skipping the colours the named classes took: the same classes get the same
colours on every run.
"""

from __future__ import annotations

import re
import unicodedata
from typing import List, Optional, Sequence, Tuple

# (colour, words separated by spaces). A word ending in "*" matches every word that starts with
# it ("forest*": "forests", "forestry"); others match whole words only ("sea" is not "season").
# The first meaning with a matching word wins, so the more specific meanings come first ("cloud shadow" is
# a shadow, "sea ice" is ice, "tree crops" are crops).
MEANINGS: Tuple[Tuple[str, str], ...] = (
    ("#404040", "shadow* ombre schatten sombra*"),
    ("#ffffff", "cloud* nuage* wolke* nube* nuvem nuvens nuvol* haze"),
    (
        "#c6e9f5",
        "snow* ice glacier* neige* glace* schnee* eis gletscher* nieve* hielo* neve gelo ghiacci*",
    ),
    (
        "#4fb3a9",
        "wetland* marsh* swamp* bog bogs mangrove* fen peat* marais marecage* sumpf* "
        "moor feuchtgebiet* humedal* pantano*",
    ),
    (
        "#1f78b4",
        "water* river* lake* sea seas ocean* reservoir* pond* stream* eau eaux lac lacs "
        "riviere* fleuve* mer wasser* see seen fluss* gewasser* agua* rio rios lago* "
        "mar acqua* fiume*",
    ),
    (
        "#e31a1c",
        "urban* built* building* developed development settlement* city cities town* "
        "residential industrial commercial artificial houses urbain* bati batiment* "
        "ville* stadt* siedlung* bebau* gebaude* urbano* urbana* edific* ciudad* "
        "cidade* citta",
    ),
    ("#8c8c8c", "road* impervious paved asphalt* route* strasse* carretera*"),
    (
        "#ffd92f",
        "crop* agricult* farm* field* arable cultivat* cereal* wheat maize corn rice "
        "paddy orchard* vineyard* culture* agricole* champ* cereale* acker* "
        "landwirtschaft* feld* cultivo* agricola* cultura* agricultura* lavoura* "
        "coltiv* seminativ*",
    ),
    (
        "#a6d96a",
        "grass* meadow* pasture* herbaceous lawn* savanna* prairie* steppe* herbe* "
        "paturage* pelouse* wiese* weide* grunland gras pasto* pradera* pastizal* "
        "pastagem* gramin* prato prati",
    ),
    (
        "#b8a03c",
        "shrub* scrub* bush* heath* arbuste* broussaille* maquis garrigue gebusch* "
        "strauch* heide matorral* arbusto* cerrado macchia",
    ),
    (
        "#1b7837",
        "forest* wood* tree* broadleaf conifer* deciduous evergreen foret* bois arbre* "
        "wald* forst* baum* bosque* arbol* floresta* mata bosco boschi foresta*",
    ),
    (
        "#dcc8a0",
        "bare* barren sand* soil* desert* rock* dune* beach* gravel sable* sol sols "
        "roche* boden fels* wuste* suelo* arena* desierto* areia* solo deserto* sabbia* "
        "roccia*",
    ),
)

# Classes without a known meaning take these in order (ColorBrewer Dark2 then Set1-like tones,
# chosen to stay apart from the colours above).
PALETTE: Tuple[str, ...] = (
    "#7570b3",
    "#e7298a",
    "#d95f02",
    "#a6761d",
    "#66c2a5",
    "#e78ac3",
    "#8da0cb",
    "#fc8d62",
    "#b15928",
    "#cab2d6",
    "#6a3d9a",
    "#fb9a99",
)


def _words(name: str) -> List[str]:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return [word for word in re.split(r"[^a-z]+", plain.lower()) if word]


def _matches(word: str, key: str) -> bool:
    return word.startswith(key[:-1]) if key.endswith("*") else word == key


def meaning_colour(name: str) -> Optional[str]:
    """The conventional colour of a class named ``name`` ("#rrggbb"), or None if none is known."""
    words = _words(str(name))
    for colour, keys in MEANINGS:
        if any(_matches(word, key) for word in words for key in keys.split()):
            return colour
    return None


def class_colours(names: Sequence[object]) -> List[str]:
    """One "#rrggbb" colour per class name: its meaning's colour, else the next palette colour.

    A meaning's colour goes to its first class only ("water" and "river": the river takes a
    palette colour), so that distinct classes stay distinct on the map.
    """
    named: List[Optional[str]] = []
    for name in names:
        colour = meaning_colour(str(name))
        named.append(colour if colour not in named else None)
    free = [colour for colour in PALETTE if colour not in named]
    colours, k = [], 0
    for colour in named:
        if colour is None:
            colour = free[k % len(free)]
            k += 1
        colours.append(colour)
    return colours
