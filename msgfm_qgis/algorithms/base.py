"""Shared behaviour of the msGFM Processing algorithms."""

from __future__ import annotations

from qgis.core import QgsProcessingAlgorithm
from qgis.PyQt.QtGui import QIcon

from ..help_urls import help_url
from ..resources import icon_path

GROUP_ANALYSIS = ("analysis", "Analysis")
GROUP_TRAINING = ("training", "Model training")


class MsgfmAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set ``NAME``, ``DISPLAY_NAME``, ``GROUP`` and ``HELP``."""

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = GROUP_ANALYSIS
    HELP = ""

    def name(self):
        return self.NAME

    def displayName(self):
        return self.DISPLAY_NAME

    def group(self):
        return self.GROUP[1]

    def groupId(self):
        return self.GROUP[0]

    def shortHelpString(self):
        return self.HELP

    def helpUrl(self):
        return help_url(self.DISPLAY_NAME, self.NAME)

    def icon(self):
        return QIcon(icon_path())

    def createInstance(self):
        return type(self)()
