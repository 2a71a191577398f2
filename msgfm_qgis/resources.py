"""Locations of the plugin's icons and bundled models, in the plugin zip and in a checkout."""

from __future__ import annotations

from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent


def resources_dir() -> Path:
    """``resources/`` inside the installed plugin, or beside ``msgfm_qgis/`` in a source checkout."""
    packaged = PLUGIN_DIR / "resources"
    return packaged if packaged.is_dir() else PLUGIN_DIR.parent / "resources"


def icon_path(name: str = "msgfm") -> str:
    return str(resources_dir() / "icons" / f"{name}.svg")


def models_dir() -> Path:
    return resources_dir() / "models"
