"""``tr()`` for user strings outside an algorithm class (algorithms use their own ``self.tr``).

Messages are translated before their figures are filled in, as Qt expects:
``tr("Layer '{}' has no CRS").format(name)``.
"""

from __future__ import annotations

from qgis.PyQt.QtCore import QCoreApplication

CONTEXT = "msgfm"


def tr(text: str) -> str:
    """``text`` in the user's language (translation context ``msgfm``)."""
    return QCoreApplication.translate(CONTEXT, text)
