"""msGFM backend: sensors, models, training, ONNX export, raster inference and the `msgfm` CLI.

Inside the packaged QGIS plugin this package lives at ``msgfm_qgis.backend``; in a source checkout it
is the top-level ``backend``. Modules of this package therefore import each other relatively only.
"""

from __future__ import annotations

import configparser
from pathlib import Path


def _read_version() -> str:
    # metadata.txt (the QGIS plugin metadata) is the single source of the version. It sits beside
    # this package in a checkout and in the plugin zip alike.
    metadata = Path(__file__).resolve().parent.parent / "metadata.txt"
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(metadata, encoding="utf-8")
    return parser.get("general", "version", fallback="0+unknown")


__version__ = _read_version()
