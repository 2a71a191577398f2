"""The QGIS plugin object: registers the msGFM Processing provider."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import MsgfmProvider


class MsgfmPlugin:
    """Registers the provider at start-up (desktop and qgis_process alike) and removes it on unload."""

    def __init__(self, iface):
        self.iface = iface  # None under qgis_process
        self.provider = None
        self.dependency_offer = None

    def initProcessing(self):
        if self.provider is None:
            self.provider = MsgfmProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()
        from . import run_warnings

        # Runs that end with warnings say so in the message bar, not only in the dialog's log.
        run_warnings.install(self.iface)
        from .dependency_bar import offer_missing_dependencies

        # Say at start-up, not at the first Run, that models cannot run yet, and offer the fix.
        self.dependency_offer = offer_missing_dependencies(self.iface)

    def unload(self):
        from . import run_warnings

        run_warnings.uninstall()
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
