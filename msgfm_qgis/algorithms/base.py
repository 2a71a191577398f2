"""Shared behaviour of the msGFM Processing algorithms."""

from __future__ import annotations

import functools
from typing import Any, Callable, List, Optional

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingOutputString,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..help_urls import help_url
from ..input_sidecars import no_sidecars_beside_inputs
from ..resources import icon_path
from ..run_warnings import WARNINGS, WarningCollector, announce, warnings_output
from ..styling import finish_run_layers

GROUP_ANALYSIS = ("analysis", "Analysis")
GROUP_TRAINING = ("training", "Model training")


class MsgfmAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set ``NAME``, ``DISPLAY_NAME``, ``GROUP`` and ``HELP``.

    Every subclass's run collects its warnings (see :mod:`..run_warnings`): its ``initAlgorithm``
    also declares the ``WARNINGS`` output and its ``processAlgorithm`` runs with a
    :class:`WarningCollector` and returns them. This is done here, when the subclass is defined, so
    that no algorithm can forget it.
    """

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = GROUP_ANALYSIS
    HELP = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "initAlgorithm" in cls.__dict__:
            cls.initAlgorithm = _declaring_warnings(cls.__dict__["initAlgorithm"])
        if "processAlgorithm" in cls.__dict__:
            cls.processAlgorithm = _collecting_warnings(cls.__dict__["processAlgorithm"])

    def tr(self, text: str) -> str:
        """``text`` in the user's language (the algorithm's class is the translation context)."""
        return QCoreApplication.translate(type(self).__name__, text)

    def name(self):
        return self.NAME

    def displayName(self):
        return self.tr(self.DISPLAY_NAME)

    def group(self):
        return self.tr(self.GROUP[1])

    def groupId(self):
        return self.GROUP[0]

    def shortHelpString(self):
        return self.tr(self.HELP)

    def helpUrl(self):
        return help_url(self.DISPLAY_NAME, self.NAME)

    def icon(self):
        return QIcon(icon_path())

    def createInstance(self):
        return type(self)()

    # Input layers that Processing opens from a file name write no .aux.xml beside the file. The
    # check of the parameters opens them first (they are kept for the run), the run's accessors
    # open those it did not.
    def checkParameterValues(self, parameters, context):
        with no_sidecars_beside_inputs():
            return super().checkParameterValues(parameters, context)

    def parameterAsRasterLayer(self, parameters, name, context):
        with no_sidecars_beside_inputs():
            return super().parameterAsRasterLayer(parameters, name, context)

    def parameterAsLayer(self, parameters, name, context, *args):
        with no_sidecars_beside_inputs():
            return super().parameterAsLayer(parameters, name, context, *args)

    def parameterAsLayerList(self, parameters, name, context, *args):
        with no_sidecars_beside_inputs():
            return super().parameterAsLayerList(parameters, name, context, *args)

    def input_layer_name(self, parameters, context) -> str:
        """The name of the run's first raster input (its outputs are named after it), or ""."""
        for definition in self.parameterDefinitions():
            if definition.type() != "raster" or not parameters.get(definition.name()):
                continue
            layer = self.parameterAsRasterLayer(parameters, definition.name(), context)
            if layer is not None:
                return layer.name()
        return ""

    def point_layers_in_project(self, parameters, context) -> List[str]:
        """Ids of the run's point inputs that are layers of the project (reference places,
        examples): they stay above the rasters made from them."""
        project = context.project()
        if project is None:
            return []
        found = []
        for definition in self.parameterDefinitions():
            if definition.type() not in ("source", "vector") or not parameters.get(
                definition.name()
            ):
                continue
            layer = self.parameterAsVectorLayer(parameters, definition.name(), context)
            if (
                layer is not None
                and project.mapLayer(layer.id()) is not None
                and layer.geometryType() == QgsWkbTypes.PointGeometry
            ):
                found.append(layer.id())
        return found


def _declaring_warnings(init: Callable) -> Callable:
    @functools.wraps(init)
    def initAlgorithm(self, config=None):
        init(self, config)
        if self.outputDefinition(WARNINGS) is None:
            self.addOutput(
                QgsProcessingOutputString(
                    WARNINGS, self.tr("Warnings of the run (a JSON list of texts)")
                )
            )

    return initAlgorithm


def _collecting_warnings(process: Callable) -> Callable:
    @functools.wraps(process)
    def processAlgorithm(self, parameters, context, feedback):
        if feedback is None or isinstance(feedback, WarningCollector):
            return process(self, parameters, context, feedback)  # a subclass's super() call
        collector = WarningCollector(feedback)
        try:
            results = process(self, parameters, context, collector)
        finally:
            collector.detach()
        results = dict(results or {})
        finish_run_layers(
            context,
            results,
            self.input_layer_name(parameters, context),
            self.displayName(),
            self.point_layers_in_project(parameters, context),
        )
        results[WARNINGS] = warnings_output(collector.warnings)
        announce(self.displayName(), collector.warnings)
        return results

    return processAlgorithm


def optional_output(kind: type, name: str, description: str, **options: Any) -> Any:
    """An output of class ``kind`` that is written only when the user asks for it."""
    return kind(name, description, optional=True, createByDefault=False, **options)


def file_parameter(
    name: str,
    description: str,
    extension: str = "",
    optional: bool = False,
    default: Optional[str] = None,
) -> QgsProcessingParameterFile:
    """A file input (``extension`` without the dot filters the file dialog)."""
    return QgsProcessingParameterFile(
        name,
        description,
        behavior=QgsProcessingParameterFile.File,
        extension=extension,
        defaultValue=default,
        optional=optional,
    )


def folder_parameter(
    name: str, description: str, optional: bool = False, default: Optional[str] = None
) -> QgsProcessingParameterFile:
    """A folder input (a checkpoint, say)."""
    return QgsProcessingParameterFile(
        name,
        description,
        behavior=QgsProcessingParameterFile.Folder,
        defaultValue=default,
        optional=optional,
    )


def integer_parameter(
    name: str,
    description: str,
    default: int,
    minimum: Optional[int] = None,
    maximum: Optional[int] = None,
) -> QgsProcessingParameterNumber:
    """A whole-number input with its default and bounds."""
    return _number(
        name, description, QgsProcessingParameterNumber.Integer, default, minimum, maximum
    )


def decimal_parameter(
    name: str,
    description: str,
    default: float,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
) -> QgsProcessingParameterNumber:
    """A decimal input with its default and bounds."""
    return _number(
        name, description, QgsProcessingParameterNumber.Double, default, minimum, maximum
    )


def _number(name, description, kind, default, minimum, maximum) -> QgsProcessingParameterNumber:
    parameter = QgsProcessingParameterNumber(name, description, type=kind, defaultValue=default)
    if minimum is not None:
        parameter.setMinimum(minimum)
    if maximum is not None:
        parameter.setMaximum(maximum)
    return parameter
