"""msGFM for QGIS: the multisensor geospatial foundation model in the Processing Toolbox.

This module is imported by QGIS at start-up, so it imports nothing heavy: no qgis, torch or
onnxruntime at module level.

The plugin runs the msGFM backend, the top-level package ``backend``, and imports it by name
(``from backend.files import ...``) like any other package. In the plugin zip the backend ships in
the plugin's ``lib/`` folder, which importing this package puts on ``sys.path``; in a source checkout
``backend/`` sits beside ``msgfm_qgis/``. Both ways one import path serves, and one copy of each
backend module is loaded.
"""

import sys
from pathlib import Path


def _backend_folder() -> Path:
    """The folder holding the ``backend`` package: the plugin's ``lib/``, else the checkout's root."""
    plugin = Path(__file__).resolve().parent
    for folder in (plugin / "lib", plugin.parent):
        if (folder / "backend" / "__init__.py").is_file():
            return folder
    raise ImportError(
        f"msGFM: the backend package is missing from {plugin / 'lib'}; reinstall the plugin"
    )


def _expose_backend() -> None:
    folder = _backend_folder()
    loaded = sys.modules.get("backend")
    if loaded is not None:
        where = Path(getattr(loaded, "__file__", None) or ".").resolve().parent.parent
        if where != folder:
            raise ImportError(
                f"msGFM: another Python package named 'backend' is already loaded "
                f"({getattr(loaded, '__file__', loaded)}); msGFM needs its own ({folder / 'backend'})"
            )
        return
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


_expose_backend()


def classFactory(iface):
    """Entry point called by QGIS; ``iface`` is None under qgis_process."""
    from .plugin import MsgfmPlugin

    return MsgfmPlugin(iface)
