"""Pretraining manifests (GeoPile-2 style): which sources to read, with which sensors, how often.

A manifest is JSON::

    {
      "name": "samples",
      "root": null,                      # data root; null = the sample-data root / --data-root
      "sources": [
        {"name": "bigearthnet_s2_s1", "layout": "bigearthnet",
         "s2_dir": "bigearthnet/S2", "s1_dir": "bigearthnet/S1", "weight": 2},
        {"name": "dem", "layout": "files", "sensors": {"dem": {"path": "dem/dem.tif"}}}
      ]
    }

Paths are relative to the root. A source may list ``exclude_scenes`` (scene names) that are left
out; evaluations write such manifests to keep held-back ground out of pretraining. Each source is read by its layout reader
(:mod:`backend.data.layouts`); a source with two sensors per scene gives paired crops. Sources are
drawn in proportion to ``weight`` (default 1). Manifests shipped with the code live in
``backend/data/manifests/`` and are named without ``.json`` (``samples``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

from .layouts import read_layout
from .scene import Scene

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"


@dataclass
class Source:
    """One manifest source, read into scenes."""

    name: str
    layout: str
    weight: float
    scenes: List[Scene]
    spec: Dict[str, Any] = field(default_factory=dict)

    @property
    def sensors(self) -> List[str]:
        """Sensors this source provides (union over its scenes)."""
        names: List[str] = []
        for scene in self.scenes:
            names += [s for s in scene.sensors if s not in names]
        return names


@dataclass
class Manifest:
    """A parsed manifest: its sources with their scenes, and the root they were read from."""

    name: str
    root: Path
    sources: List[Source]
    path: Optional[Path] = None

    @property
    def sensors(self) -> List[str]:
        """All sensors the manifest provides, in first-seen order."""
        names: List[str] = []
        for source in self.sources:
            names += [s for s in source.sensors if s not in names]
        return names

    def summary(self) -> Dict[str, Any]:
        """JSON-friendly description: sources, scene counts, paired or not."""
        return {
            "name": self.name,
            "root": str(self.root),
            "sources": [
                {
                    "name": s.name,
                    "layout": s.layout,
                    "weight": s.weight,
                    "scenes": len(s.scenes),
                    "sensors": s.sensors,
                    "paired": all(scene.paired for scene in s.scenes),
                }
                for s in self.sources
            ],
        }


def resolve_manifest_path(name_or_path: Union[str, Path]) -> Path:
    """A manifest file from a path or the name of a shipped manifest (``samples``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = MANIFEST_DIR / f"{name_or_path}.json"
    if shipped.is_file():
        return shipped
    known = sorted(p.stem for p in MANIFEST_DIR.glob("*.json"))
    raise FileNotFoundError(
        f"manifest {str(name_or_path)!r} is neither a file nor a shipped manifest "
        f"({', '.join(known)}); pass the path of a manifest JSON file"
    )


def parse_manifest(
    document: Mapping[str, Any], root: Union[str, Path], path: Optional[Path] = None
) -> Manifest:
    """Read every source of a manifest document (a dict) under ``root``."""
    sources_spec = document.get("sources")
    if not isinstance(sources_spec, list) or not sources_spec:
        raise ValueError(
            f"manifest {path or document.get('name')}: 'sources' must be a non-empty list"
        )
    root = Path(root)
    sources = []
    for index, spec in enumerate(sources_spec):
        name = str(spec.get("name", f"source{index}"))
        weight = float(spec.get("weight", 1.0))
        if weight <= 0:
            raise ValueError(f"manifest source {name!r}: weight must be positive, got {weight}")
        scenes = read_layout(root, spec)
        # Scenes an evaluation holds back (backend/train/leakage.py) are never read.
        excluded = set(spec.get("exclude_scenes") or [])
        if excluded:
            scenes = [scene for scene in scenes if scene.name not in excluded]
            if not scenes:
                raise ValueError(f"manifest source {name!r}: exclude_scenes leaves no scene")
        sources.append(Source(name, str(spec.get("layout")), weight, scenes, dict(spec)))
    return Manifest(
        str(document.get("name", path.stem if path else "manifest")), root, sources, path
    )


def load_manifest(
    name_or_path: Union[str, Path], root: Optional[Union[str, Path]] = None
) -> Manifest:
    """Load a manifest file (or shipped manifest by name) and read its sources.

    Args:
        name_or_path: Manifest JSON path or shipped manifest name.
        root: Data root that relative paths start from. Default: the manifest's ``root`` key,
            resolved against the manifest's folder; for shipped manifests without one, the
            sample-data root (fetched on first use).
    """
    path = resolve_manifest_path(name_or_path)
    document = json.loads(path.read_text())
    if root is None:
        if document.get("root"):
            root = (path.parent / str(document["root"])).resolve()
        elif path.parent == MANIFEST_DIR:
            from .fetch import ensure_sample_data

            root = ensure_sample_data()
        else:
            root = path.parent
    return parse_manifest(document, root, path)
