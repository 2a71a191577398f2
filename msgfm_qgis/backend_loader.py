"""Import the msGFM backend from wherever this plugin was installed from.

In the plugin zip the backend ships inside the plugin (``msgfm_qgis.backend``); in a source checkout
it is the top-level ``backend`` package beside ``msgfm_qgis``. The backend imports itself relatively,
so both locations run the same code.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def backend_module(name: str = "") -> ModuleType:
    """Return the backend module ``name`` (e.g. ``"export.schema"``; empty for the package)."""
    suffix = f".{name}" if name else ""
    try:
        importlib.import_module(f"{__package__}.backend")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.backend":
            raise
        return importlib.import_module(f"backend{suffix}")
    return importlib.import_module(f"{__package__}.backend{suffix}")
