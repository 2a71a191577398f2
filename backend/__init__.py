"""msGFM backend: sensors, models, training, ONNX export, raster inference and the `msgfm` CLI.

It is the top-level package ``backend`` everywhere: in a source checkout it sits beside ``msgfm_qgis/``;
in the packaged QGIS plugin it ships in ``msgfm_qgis/lib/``, which the plugin puts on ``sys.path``.
Its modules import each other relatively.
"""

from __future__ import annotations

import configparser
from pathlib import Path


def _read_version() -> str:
    # metadata.txt (the QGIS plugin metadata) is the single source of the version. It sits beside
    # this package in a checkout, one folder further up in the plugin zip (msgfm_qgis/lib/backend).
    here = Path(__file__).resolve().parent
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(
        [here.parent / "metadata.txt", here.parent.parent / "metadata.txt"], encoding="utf-8"
    )
    return parser.get("general", "version", fallback="0+unknown")


__version__ = _read_version()
