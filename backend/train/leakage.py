"""Keep an evaluation's held-back ground out of pretraining, by patch id and by footprint.

An encoder pretrained on the tiles a task is later scored on has seen the answer: its score is a
leak, not transfer. Every evaluation (``msgfm ablate``, ``msgfm train-defaults``) therefore
pretrains on a *derived* manifest: the pretraining manifest with every scene removed that

* has the id (patch or scene name) of a held-back sample's group, or
* shares any ground with a held-back sample: the bounds of every file of the scene (every band
  of every sensor) against the bounds of every held-back tile, compared in the scene's CRS when
  both are in one CRS, else both in geographic coordinates (EPSG:4326).

A scene is removed whole, even when only a corner touches held-back ground: crops are drawn
anywhere in a scene, so a partly held-back scene cannot be kept safely. :func:`leaks` enumerates
what remains and is what the tests assert on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..files import write_json_atomically

Bounds = Tuple[float, float, float, float]


@dataclass(frozen=True)
class HeldBack:
    """Ground that pretraining must not see.

    Attributes:
        ids: Group ids (patch, scene or raster names) of held-back samples.
        footprints: ``(crs_wkt, (left, bottom, right, top))`` of each held-back sample.
    """

    ids: frozenset
    footprints: Tuple[Tuple[str, Bounds], ...]

    @classmethod
    def from_units(cls, units: Iterable[Any]) -> HeldBack:
        """From :class:`~backend.data.tasks.HoldoutUnit` objects (validation and test)."""
        units = list(units)
        footprints = tuple(f for f in (u.footprint() for u in units) if f is not None)
        return cls(frozenset(u.group for u in units), footprints)

    def __or__(self, other: HeldBack) -> HeldBack:
        return HeldBack(self.ids | other.ids, self.footprints + other.footprints)

    def to_dict(self) -> Dict[str, Any]:
        return {"ids": sorted(self.ids), "footprints": len(self.footprints)}


_GEOGRAPHIC: Dict[Tuple[str, Bounds], Bounds] = {}


def _geographic(crs_wkt: str, bounds: Bounds) -> Bounds:
    from rasterio.crs import CRS
    from rasterio.warp import transform_bounds

    key = (crs_wkt, bounds)
    if key not in _GEOGRAPHIC:
        _GEOGRAPHIC[key] = tuple(
            transform_bounds(CRS.from_wkt(crs_wkt), CRS.from_epsg(4326), *bounds, densify_pts=21)
        )
    return _GEOGRAPHIC[key]


@cache
def _same_crs(first: str, second: str) -> bool:
    if first == second:
        return True
    from rasterio.crs import CRS

    return CRS.from_wkt(first) == CRS.from_wkt(second)


def overlaps(first: Tuple[str, Bounds], second: Tuple[str, Bounds]) -> bool:
    """True when two footprints share ground (touching edges count as sharing)."""
    (crs_a, a), (crs_b, b) = first, second
    if not _same_crs(crs_a, crs_b):
        a, b = _geographic(crs_a, a), _geographic(crs_b, b)
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def scene_footprints(scene: Any) -> List[Tuple[str, Bounds]]:
    """Footprint of every georeferenced file a pretraining scene reads (every band of every
    sensor); files without a CRS (the ``unreferenced`` layout) have none."""
    from ..data.raster import read_grid

    footprints = []
    for path in sorted({source.path for raster in scene.rasters for source in raster.sources}):
        try:
            grid = read_grid(path)
        except Exception:  # no CRS, or not a raster GDAL opens (an array file): not placeable
            continue
        footprints.append((grid.crs_wkt, grid.window_bounds(0, 0, grid.height, grid.width)))
    return footprints


def unplaced_scenes(manifest: Any) -> List[str]:
    """``source/scene`` of scenes with no georeferenced file: checked by id only.

    Their ground is unknown (a scene without coordinates), so a footprint check cannot clear or
    condemn them; the derived manifest lists them so a reader sees what was not checked.
    """
    return [
        f"{source.name}/{scene.name}"
        for source in manifest.sources
        for scene in source.scenes
        if not scene_footprints(scene)
    ]


def scene_leaks(scene: Any, held: HeldBack) -> List[str]:
    """Why a scene may not be pretrained on (empty when it may)."""
    reasons = []
    names = {scene.name} | {Path(s.path).parent.name for r in scene.rasters for s in r.sources}
    for name in sorted(names & held.ids):
        reasons.append(f"scene {scene.name!r} is held-back patch {name!r}")
    for footprint in scene_footprints(scene):
        if any(overlaps(footprint, other) for other in held.footprints):
            reasons.append(f"scene {scene.name!r} covers held-back ground")
            break
    return reasons


def leaks(manifest: Any, held: HeldBack) -> Dict[str, List[str]]:
    """``{source/scene: reasons}`` for every scene of a parsed manifest that touches ``held``."""
    found = {}
    for source in manifest.sources:
        for scene in source.scenes:
            reasons = scene_leaks(scene, held)
            if reasons:
                found[f"{source.name}/{scene.name}"] = reasons
    return found


def leak_free_manifest(
    manifest: str, held: HeldBack, out: Path, data_root: Optional[str] = None
) -> Dict[str, Any]:
    """Write the manifest ``manifest`` without the scenes that touch ``held`` to ``out``.

    Sources keep their settings; a scene to drop is listed in the source's ``exclude_scenes``
    (which :func:`backend.data.manifest.parse_manifest` honours) and a source left without scenes
    is removed. The root is written out, so the file reads the same data wherever it lies.

    Returns:
        ``{"manifest": str(out), "excluded": {source/scene: reasons}, "sources_removed": [...],
        "not_georeferenced_kept": [...], "sensors": [sensors pretraining still sees]}``.
    """
    from ..data.manifest import load_manifest, resolve_manifest_path

    parsed = load_manifest(manifest, data_root)
    document = json.loads(resolve_manifest_path(manifest).read_text(encoding="utf-8"))
    excluded = leaks(parsed, held)
    sources, removed = [], []
    for spec, source in zip(document["sources"], parsed.sources):
        drop = [s.name for s in source.scenes if f"{source.name}/{s.name}" in excluded]
        if len(drop) == len(source.scenes):
            removed.append(source.name)
            continue
        spec = dict(spec)
        if drop:
            spec["exclude_scenes"] = sorted(set(spec.get("exclude_scenes", [])) | set(drop))
        sources.append(spec)
    unplaced = [key for key in unplaced_scenes(parsed) if key not in excluded]
    kept_sensors: List[str] = []
    for source in parsed.sources:
        for scene in source.scenes:
            if f"{source.name}/{scene.name}" not in excluded:
                kept_sensors += [s for s in scene.sensors if s not in kept_sensors]
    if not sources:
        raise ValueError(
            f"every scene of pretraining manifest {manifest!r} touches held-back ground; "
            "nothing is left to pretrain on"
        )
    document.update(
        {
            "name": f"{document.get('name', parsed.name)}-without-held-back",
            "root": str(Path(parsed.root).resolve()),
            "sources": sources,
            "held_back": {
                **held.to_dict(),
                "excluded": excluded,
                "sources_removed": removed,
                "not_georeferenced_kept": unplaced,
                "sensors_left": kept_sensors,
            },
        }
    )
    write_json_atomically(out, document)
    return {
        "manifest": str(out),
        "excluded": excluded,
        "sources_removed": removed,
        "not_georeferenced_kept": unplaced,
        "sensors": kept_sensors,
    }


def held_back_of(
    recipes: Sequence[Any],
    seed: int,
    data_root: Optional[str],
    val_fraction: float,
    test_fraction: float,
) -> HeldBack:
    """Validation and test ground of every task recipe's split at ``seed`` (as finetuning makes it)."""
    from ..data.tasks import split
    from .data_spec import build_dataset, load_data_spec

    held = HeldBack(frozenset(), ())
    for recipe in recipes:
        dataset = build_dataset(load_data_spec(recipe.data), recipe.task, data_root)
        fold = seed + getattr(recipe, "fold_offset", 0) if getattr(recipe, "folds", False) else None
        parts = split(dataset, val_fraction, seed, test_fraction=test_fraction, fold=fold)
        held = held | HeldBack.from_units(parts.held_back())
    return held


def describe(held: HeldBack) -> Mapping[str, Any]:
    """A JSON-friendly summary for results files."""
    return held.to_dict()
