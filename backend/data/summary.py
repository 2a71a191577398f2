"""What a pretraining manifest holds: scenes, pixels and paired pixels per source and per sensor.

Pixels are counted on each scene's reference grid (the grid crops are cut from), so a pair's
second sensor counts the pixels it is read onto. ``paired`` pixels are those of scenes seen by two
sensors (the cross-sensor part of the corpus). Area is pixels times the pixel area; for scenes
without georeferencing the pixel size is the one the manifest states. Nothing is read but the
grids (and the arrays of unreferenced scenes, which define theirs).
"""

from __future__ import annotations

from typing import Any, Dict, List

from .manifest import Manifest

SUMMARY_FORMAT = "msgfm-corpus-summary/1"


def _scene_row(scene) -> Dict[str, Any]:
    grid = scene.reference_grid()
    pixels = grid.width * grid.height
    x, y = grid.resolution
    return {"pixels": pixels, "area_km2": pixels * x * y / 1e6, "paired": scene.paired}


def _totals(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {
        "scenes": len(rows),
        "pixels": sum(r["pixels"] for r in rows),
        "paired_pixels": sum(r["pixels"] for r in rows if r["paired"]),
        "area_km2": round(sum(r["area_km2"] for r in rows), 4),
    }


def summarize_manifest(manifest: Manifest) -> Dict[str, Any]:
    """Per-source, per-sensor and total counts of a parsed manifest (JSON-serialisable).

    Returns:
        ``{"format", "manifest", "root", "sources": [...], "sensors": {...}, "total": {...}}``;
        each source and sensor entry has ``scenes``, ``pixels``, ``paired_pixels`` and
        ``area_km2``; sources also ``layout``, ``weight`` and ``sensors``; sensors also
        ``sources`` and ``partners`` (the sensors they are paired with).
    """
    sources = []
    per_sensor: Dict[str, List[Dict[str, Any]]] = {}
    sensor_sources: Dict[str, List[str]] = {}
    partners: Dict[str, List[str]] = {}
    every_row: List[Dict[str, Any]] = []
    for source in manifest.sources:
        rows = []
        for scene in source.scenes:
            row = _scene_row(scene)
            rows.append(row)
            for sensor in scene.sensors:
                per_sensor.setdefault(sensor, []).append(row)
                names = sensor_sources.setdefault(sensor, [])
                if source.name not in names:
                    names.append(source.name)
                for other in scene.sensors:
                    if other != sensor and other not in partners.setdefault(sensor, []):
                        partners[sensor].append(other)
        every_row += rows
        sources.append(
            {
                "name": source.name,
                "layout": source.layout,
                "weight": source.weight,
                "sensors": source.sensors,
                **_totals(rows),
            }
        )
    sensors = {
        name: {
            **_totals(rows),
            "sources": sensor_sources[name],
            "partners": partners.get(name, []),
        }
        for name, rows in per_sensor.items()
    }
    return {
        "format": SUMMARY_FORMAT,
        "manifest": manifest.name,
        "root": str(manifest.root),
        "sources": sources,
        "sensors": sensors,
        "total": _totals(every_row),
    }


def _table(header: List[str], rows: List[List[str]], numeric: range) -> List[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]

    def line(cells: List[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i in numeric else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return [line(header), "  ".join("-" * w for w in widths)] + [line(row) for row in rows]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def format_summary(summary: Dict[str, Any]) -> str:
    """The summary as two plain-text tables (per source, per sensor) and a total line."""

    def counts(entry: Dict[str, Any]) -> List[str]:
        return [
            f"{entry['scenes']:,}",
            f"{entry['pixels']:,}",
            f"{entry['paired_pixels']:,}",
            f"{entry['area_km2']:,.2f}",
        ]

    numbers = ["scenes", "pixels", "paired pixels", "area km2"]
    lines = [f"manifest {summary['manifest']} ({summary['root']})", ""]
    lines += _table(
        ["source", "sensors", *numbers, "weight"],
        [
            [s["name"], " + ".join(s["sensors"]), *counts(s), f"{s['weight']:g}"]
            for s in summary["sources"]
        ],
        range(2, 7),
    )
    lines.append("")
    lines += _table(
        ["sensor", *numbers, "paired with", "sources"],
        [
            [name, *counts(s), ", ".join(s["partners"]) or "-", str(len(s["sources"]))]
            for name, s in summary["sensors"].items()
        ],
        range(1, 5),
    )
    total = summary["total"]
    lines += [
        "",
        f"total: {total['scenes']:,} scenes, {total['pixels']:,} pixels, "
        f"{total['paired_pixels']:,} paired pixels, {total['area_km2']:,.2f} km2 "
        f"({_plural(len(summary['sources']), 'source')}, "
        f"{_plural(len(summary['sensors']), 'sensor')})",
    ]
    return "\n".join(lines)
