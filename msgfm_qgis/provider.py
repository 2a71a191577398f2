"""The ``msgfm`` Processing provider."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHMS
from .algorithms.embedding_tools import EMBEDDING_ALGORITHMS
from .resources import icon_path


class MsgfmProvider(QgsProcessingProvider):
    def id(self):
        return "msgfm"

    def name(self):
        return "msGFM"

    def longName(self):
        from .backend_loader import backend_module

        return f"msGFM multisensor geospatial foundation model {backend_module().__version__}"

    def icon(self):
        return QIcon(icon_path())

    def svgIconPath(self):
        return icon_path()

    def loadAlgorithms(self):
        for algorithm in (*ALGORITHMS, *EMBEDDING_ALGORITHMS):
            self.addAlgorithm(algorithm())
