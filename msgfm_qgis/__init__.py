"""msGFM for QGIS: the multisensor geospatial foundation model in the Processing Toolbox.

This module is imported by QGIS at start-up (and by ``python -m msgfm_qgis.backend.worker`` inside
the packaged plugin), so it imports nothing heavy: no qgis, torch or onnxruntime at module level.
"""


def classFactory(iface):
    """Entry point called by QGIS; ``iface`` is None under qgis_process."""
    from .plugin import MsgfmPlugin

    return MsgfmPlugin(iface)
