"""The ``msgfm`` Processing provider."""

from __future__ import annotations

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgorithm,
    QgsProcessingModelAlgorithm,
    QgsProcessingProvider,
)
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


class Workflow(QgsProcessingModelAlgorithm):
    """A shipped Graphical Modeler model that runs as a background task, as single algorithms do.

    QGIS 3.22 flags every model ``FlagNoThreading`` whatever its steps (even an empty one), so the
    Processing dialog runs it on the main thread and QGIS freezes between two progress updates
    (up to seconds while a model opens or a batch runs). Every step of these workflows is an msGFM
    algorithm, which runs on a task's thread: the flag is dropped while all steps can run there.
    """

    def flags(self):
        flags = super().flags()
        registry = QgsApplication.processingRegistry()
        # By id from the registry: the children's own algorithm objects belong to the temporary
        # copies childAlgorithms() returns.
        steps = [registry.algorithmById(c.algorithmId()) for c in self.childAlgorithms().values()]
        if steps and all(
            step is not None and not step.flags() & QgsProcessingAlgorithm.FlagNoThreading
            for step in steps
        ):
            flags &= ~QgsProcessingAlgorithm.FlagNoThreading
        return flags

    def createInstance(self):
        # QGIS makes a fresh copy of the algorithm for every run: it must stay a Workflow.
        copy = Workflow()
        copy.loadVariant(self.toVariant())
        copy.setSourceFilePath(self.sourceFilePath())
        return copy


def workflow_models():
    """The Graphical Modeler models shipped in ``resources/models3/``, for the Toolbox."""
    from qgis.core import QgsMessageLog

    models = []
    for path in sorted((resources_dir() / "models3").glob("*.model3")):
        model = Workflow()
        if model.fromFile(str(path)):
            models.append(model)
        else:
            QgsMessageLog.logMessage(f"msGFM: cannot load the model {path}", "msGFM")
    return models
