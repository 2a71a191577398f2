"""BigEarthNet scene classification: S2 (and optionally S1) patches with 19-class labels.

Published layout (BigEarthNet-S2 v1.0 and BigEarthNet-S1 v1.0)::

    <s2_root>/<s2 patch>/<s2 patch>_B01.tif ... _B12.tif, _B8A.tif     (10, 20 and 60 m bands)
    <s2_root>/<s2 patch>/<s2 patch>_labels_metadata.json              ("labels": CORINE names)
    <s1_root>/<s1 patch>/<s1 patch>_VV.tif, _VH.tif                    (sigma0 in dB)
    <s1_root>/<s1 patch>/<s1 patch>_labels_metadata.json              ("corresponding_s2_patch")

Every S2 band is read onto the patch's 10 m grid (120 x 120): the 20 m and 60 m bands bilinearly.
S1 is read onto the same grid. Values stay in the registry units (S2 reflectance x 10000, S1 dB).

Labels: each patch carries CORINE Land Cover level-3 names (43 in BigEarthNet). The 19-class
nomenclature of Sumbul et al. (2020, "BigEarthNet-MM") merges some of them and drops eleven that
cannot be recognised from a 1.2 km Sentinel patch (roads, ports, airports, mines, dumps,
construction, green urban areas, sport facilities, bare rock, burnt areas, intertidal flats). Class
indexes follow that paper's order (``BIGEARTHNET19_CLASSES``); torchgeo uses sorted order instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ...sensors import select_bands
from ..raster import BandSource, Grid, read_grid, read_window
from .windows import HoldoutUnit

BIGEARTHNET19_CLASSES: Tuple[str, ...] = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)

# The 43 CORINE level-3 names used by BigEarthNet -> their 19-class name (None: no counterpart).
CORINE_TO_BIGEARTHNET19: Dict[str, Optional[str]] = {
    "Continuous urban fabric": "Urban fabric",
    "Discontinuous urban fabric": "Urban fabric",
    "Industrial or commercial units": "Industrial or commercial units",
    "Road and rail networks and associated land": None,
    "Port areas": None,
    "Airports": None,
    "Mineral extraction sites": None,
    "Dump sites": None,
    "Construction sites": None,
    "Green urban areas": None,
    "Sport and leisure facilities": None,
    "Non-irrigated arable land": "Arable land",
    "Permanently irrigated land": "Arable land",
    "Rice fields": "Arable land",
    "Vineyards": "Permanent crops",
    "Fruit trees and berry plantations": "Permanent crops",
    "Olive groves": "Permanent crops",
    "Pastures": "Pastures",
    "Annual crops associated with permanent crops": "Permanent crops",
    "Complex cultivation patterns": "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation": (
        "Land principally occupied by agriculture, with significant areas of natural vegetation"
    ),
    "Agro-forestry areas": "Agro-forestry areas",
    "Broad-leaved forest": "Broad-leaved forest",
    "Coniferous forest": "Coniferous forest",
    "Mixed forest": "Mixed forest",
    "Natural grassland": "Natural grassland and sparsely vegetated areas",
    "Moors and heathland": "Moors, heathland and sclerophyllous vegetation",
    "Sclerophyllous vegetation": "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland/shrub": "Transitional woodland, shrub",
    "Beaches, dunes, sands": "Beaches, dunes, sands",
    "Bare rock": None,
    "Sparsely vegetated areas": "Natural grassland and sparsely vegetated areas",
    "Burnt areas": None,
    "Inland marshes": "Inland wetlands",
    "Peatbogs": "Inland wetlands",
    "Salt marshes": "Coastal wetlands",
    "Salines": "Coastal wetlands",
    "Intertidal flats": None,
    "Water courses": "Inland waters",
    "Water bodies": "Inland waters",
    "Coastal lagoons": "Marine waters",
    "Estuaries": "Marine waters",
    "Sea and ocean": "Marine waters",
}

LABEL_MODES = ("multi", "single")


def bigearthnet19_indices(names: Sequence[str], patch: str = "") -> List[int]:
    """19-class indexes (sorted, unique) of a patch's CORINE names; dropped names give none.

    Names already in the 19-class nomenclature (BigEarthNet v2 metadata) map to themselves.

    Raises:
        ValueError: A name is neither one of the 43 CORINE names nor a 19-class name.
    """
    indices = set()
    for name in names:
        if name in CORINE_TO_BIGEARTHNET19:
            new_name = CORINE_TO_BIGEARTHNET19[name]
        elif name in BIGEARTHNET19_CLASSES:
            new_name = name
        else:
            raise ValueError(
                f"BigEarthNet patch {patch or '?'}: unknown label {name!r}; expected one of the "
                "43 CORINE level-3 names of BigEarthNet (see CORINE_TO_BIGEARTHNET19)"
            )
        if new_name is not None:
            indices.add(BIGEARTHNET19_CLASSES.index(new_name))
    return sorted(indices)


def multi_hot(indices: Sequence[int], num_classes: int = len(BIGEARTHNET19_CLASSES)) -> np.ndarray:
    """A float32 multi-hot vector with ones at ``indices``."""
    target = np.zeros(num_classes, dtype=np.float32)
    target[list(indices)] = 1.0
    return target


def _band_sources(sensor: str, folder: Path) -> List[BandSource]:
    paths = sorted(folder.glob("*.tif"))
    if not paths:
        raise FileNotFoundError(
            f"{folder}: no band GeoTIFFs (*.tif) in this BigEarthNet patch folder"
        )
    indexes = select_bands(sensor, [p.name for p in paths])
    return [BandSource(str(paths[i]), 1) for i in indexes]


class BigEarthNetDataset:
    """BigEarthNet patches for multi-label (or single-label) scene classification.

    Each sample is a dict:

    * ``"inputs"``: ``{"s2": float32 (12, 120, 120)}`` plus ``"sar": float32 (2, 120, 120)`` when
      ``s1_root`` is given; raw registry units, NaN where a band has no data.
    * ``"target"``: multi-label: float32 (19,) multi-hot; single-label: int64 scalar, the first of
      the patch's labels (in the file's CORINE order) that has a 19-class counterpart.
    * ``"patch"``: the S2 patch name.

    Args:
        s2_root: Folder of BigEarthNet-S2 patch folders, or a list of such folders (their patches
            are pooled; a patch name may appear once).
        s1_root: Folder of BigEarthNet-S1 patch folders; each is paired with the S2 patch its
            metadata names, and S2 patches without an S1 partner are left out.
        label_mode: ``"multi"`` or ``"single"``.
        skip_unlabelled: Leave out patches none of whose labels has a 19-class counterpart (57
            patches of the full dataset); otherwise they give an all-zero target.
        keep_unpaired: With ``s1_root``, keep S2 patches that have no S1 partner; their ``sar``
            input is all no data (NaN), which normalisation turns into the band means (cloud
            removal learns from their S2 alone).
        exclude: S2 patch names to leave out (patches kept for independent evaluation).
    """

    num_classes = len(BIGEARTHNET19_CLASSES)
    class_names = BIGEARTHNET19_CLASSES

    def __init__(
        self,
        s2_root: Union[str, Path, Sequence[Union[str, Path]]],
        s1_root: Optional[Union[str, Path]] = None,
        label_mode: str = "multi",
        skip_unlabelled: bool = True,
        keep_unpaired: bool = False,
        exclude: Sequence[str] = (),
    ):
        if label_mode not in LABEL_MODES:
            raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
        roots = [s2_root] if isinstance(s2_root, (str, Path)) else list(s2_root)
        self.s2_roots = [Path(r) for r in roots]
        self.s2_root = self.s2_roots[0]
        s2_patches: Dict[str, Path] = {}
        for root in self.s2_roots:
            if not root.is_dir():
                raise FileNotFoundError(f"BigEarthNet S2 folder {root} does not exist")
            for folder in sorted(p for p in root.iterdir() if p.is_dir()):
                if folder.name in s2_patches:
                    raise ValueError(
                        f"BigEarthNet patch {folder.name} is in both {s2_patches[folder.name].parent}"
                        f" and {root}; give each patch once"
                    )
                s2_patches[folder.name] = folder
        self.label_mode = label_mode
        s1_for_s2: Dict[str, Path] = {}
        if s1_root is not None:
            s1_folder = Path(s1_root)
            if not s1_folder.is_dir():
                raise FileNotFoundError(f"BigEarthNet S1 folder {s1_folder} does not exist")
            for s1_patch in sorted(p for p in s1_folder.iterdir() if p.is_dir()):
                s2_name = _read_metadata(s1_patch).get("corresponding_s2_patch")
                if not s2_name:
                    raise ValueError(
                        f"{s1_patch}: its labels metadata has no 'corresponding_s2_patch'; "
                        "is this a BigEarthNet-S1 patch folder?"
                    )
                if s2_name in s2_patches:
                    s1_for_s2[str(s2_name)] = s1_patch
        unknown = sorted(set(exclude) - set(s2_patches))
        if unknown:
            raise ValueError(f"exclude names BigEarthNet patches that are not there: {unknown}")
        self.excluded = sorted(exclude)
        self.patches: List[Tuple[str, Path, Optional[Path], List[int]]] = []
        for name, folder in s2_patches.items():
            if name in self.excluded:
                continue
            if s1_root is not None and name not in s1_for_s2 and not keep_unpaired:
                continue
            labels = _read_metadata(folder).get("labels")
            if not isinstance(labels, list):
                raise ValueError(f"{folder}: labels metadata lacks a 'labels' list")
            indices = bigearthnet19_indices(labels, name)
            if not indices and skip_unlabelled:
                continue
            self.patches.append((name, folder, s1_for_s2.get(name), indices))
        if not self.patches:
            raise ValueError(
                f"no usable BigEarthNet patches under {', '.join(map(str, self.s2_roots))}"
                + (f" paired with {s1_root}" if s1_root is not None else "")
            )
        self.sensors = ["s2"] + (["sar"] if s1_root is not None else [])
        self._units: Optional[List[HoldoutUnit]] = None

    def __len__(self) -> int:
        return len(self.patches)

    def holdout_units(self) -> List[HoldoutUnit]:
        """Each patch is its own unit of ground (BigEarthNet patches do not overlap)."""
        if self._units is None:
            self._units = []
            for name, folder, *_ in self.patches:
                grid = _finest_grid(_band_sources("s2", folder))
                self._units.append(HoldoutUnit(name, 0, 0, grid.height, grid.width, grid))
        return list(self._units)

    def target(self, index: int) -> np.ndarray:
        """The target of sample ``index`` without reading its imagery."""
        indices = self.patches[index][3]
        if self.label_mode == "multi":
            return multi_hot(indices, self.num_classes)
        return np.array(indices[0] if indices else -1, dtype=np.int64)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} BigEarthNet patches")
        name, s2_folder, s1_folder, _ = self.patches[index]
        s2_sources = _band_sources("s2", s2_folder)
        grid = _finest_grid(s2_sources)
        inputs = {"s2": read_window(s2_sources, grid, 0, 0, grid.height, grid.width)}
        if s1_folder is not None:
            sar_sources = _band_sources("sar", s1_folder)
            inputs["sar"] = read_window(sar_sources, grid, 0, 0, grid.height, grid.width)
        elif "sar" in self.sensors:
            inputs["sar"] = np.full((2, grid.height, grid.width), np.nan, dtype=np.float32)
        return {"inputs": inputs, "target": self.target(index), "patch": name}


def _finest_grid(sources: Sequence[BandSource]) -> Grid:
    grids = [read_grid(s.path) for s in sources]
    return min(grids, key=lambda g: g.resolution[0] * g.resolution[1])


def _read_metadata(folder: Path) -> Dict[str, Any]:
    files = sorted(folder.glob("*_labels_metadata.json"))
    if not files:
        raise FileNotFoundError(f"{folder}: no *_labels_metadata.json (BigEarthNet patch metadata)")
    return json.loads(files[0].read_text())
