"""The ``msgfm`` Processing provider."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

import backend

from .algorithms import ALGORITHMS
from .algorithms.embedding_tools import EMBEDDING_ALGORITHMS
from .resources import icon_path, resources_dir


class MsgfmProvider(QgsProcessingProvider):
    def id(self):
        return "msgfm"

    def name(self):
        return "msGFM"

    def longName(self):
        return f"msGFM multisensor geospatial foundation model {backend.__version__}"

    def icon(self):
        return QIcon(icon_path())

    def svgIconPath(self):
        return icon_path()

    def loadAlgorithms(self):
        for algorithm in (*ALGORITHMS, *EMBEDDING_ALGORITHMS):
            self.addAlgorithm(algorithm())
        for model in workflow_models():
            self.addAlgorithm(model)


def workflow_models():
    """The Graphical Modeler models shipped in ``resources/models3/``, for the Toolbox."""
    from qgis.core import QgsMessageLog, QgsProcessingModelAlgorithm

    models = []
    for path in sorted((resources_dir() / "models3").glob("*.model3")):
        model = QgsProcessingModelAlgorithm()
        if model.fromFile(str(path)):
            models.append(model)
        else:
            QgsMessageLog.logMessage(f"msGFM: cannot load the model {path}", "msGFM")
    return models
