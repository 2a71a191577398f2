"""Every warning of a run, collected and told again when the run ends.

Warnings pushed during a run (the engine's ``warn``, the algorithms' ``pushWarning``) scroll away in
the dialog's log. :class:`WarningCollector` stands in for the run's feedback and keeps them; the
algorithm returns them as its ``WARNINGS`` output (a JSON list, so ``qgis_process --json`` and
``processing.run`` show them), and in the desktop :func:`announce` puts a message-bar item
"msGFM: <algorithm> finished with N warnings" with a button that lists them.

The collector is a feedback of its own, not a patched method of the run's feedback: a feedback made
in C++ (the dialog's, qgis_process's) calls no Python method, and the algorithms wrap the feedback in
``QgsProcessingMultiStepFeedback``, which forwards warnings through C++ virtual calls.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

from qgis.core import Qgis, QgsProcessingFeedback
from qgis.PyQt.QtCore import QObject, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QMessageBox, QPushButton

from .i18n import tr

WARNINGS = "WARNINGS"
TITLE = "msGFM"


class WarningCollector(QgsProcessingFeedback):
    """A feedback that passes everything on to ``feedback`` and keeps the warnings.

    Progress and cancellation follow ``feedback`` through direct connections: the run's thread has
    no event loop to deliver queued signals to.
    """

    def __init__(self, feedback: QgsProcessingFeedback):
        super().__init__()
        self.feedback = feedback
        self.warnings: List[str] = []
        self.progressChanged.connect(feedback.setProgress, Qt.DirectConnection)
        feedback.canceled.connect(self.cancel, Qt.DirectConnection)
        if feedback.isCanceled():
            self.cancel()

    def detach(self) -> None:
        """Stop following the run's feedback (the run is over)."""
        self.progressChanged.disconnect(self.feedback.setProgress)
        self.feedback.canceled.disconnect(self.cancel)

    def pushWarning(self, warning):
        self.warnings.append(str(warning))
        self.feedback.pushWarning(warning)

    def setProgressText(self, text):
        self.feedback.setProgressText(text)

    def reportError(self, error, fatalError=False):
        self.feedback.reportError(error, fatalError)

    def pushInfo(self, info):
        self.feedback.pushInfo(info)

    def pushCommandInfo(self, info):
        self.feedback.pushCommandInfo(info)

    def pushDebugInfo(self, info):
        self.feedback.pushDebugInfo(info)

    def pushConsoleInfo(self, info):
        self.feedback.pushConsoleInfo(info)


def warnings_output(warnings: List[str]) -> str:
    """The ``WARNINGS`` output's value: the warnings as a JSON list (``[]`` for none)."""
    return json.dumps(list(warnings), ensure_ascii=False)


def summary(algorithm_name: str, count: int) -> str:
    """The message-bar text of a run that ended with ``count`` warnings."""
    if count == 1:
        return tr("{} finished with 1 warning").format(algorithm_name)
    return tr("{} finished with {} warnings").format(algorithm_name, count)


def show_warnings_bar(message_bar: Any, algorithm_name: str, warnings: List[str]) -> Any:
    """Push the item "msGFM: <algorithm> finished with N warnings" with a button that lists them."""
    item = message_bar.createMessage(TITLE, summary(algorithm_name, len(warnings)))
    button = QPushButton(tr("Show warnings"))
    parent = message_bar.parentWidget() if hasattr(message_bar, "parentWidget") else None

    def show() -> None:
        box = QMessageBox(
            QMessageBox.Warning,
            f"{TITLE}: {algorithm_name}",
            summary(algorithm_name, len(warnings)),
            QMessageBox.Close,
            parent,
        )
        box.setInformativeText("\n\n".join(f"• {w}" for w in warnings))
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.show()  # not exec_(): the map stays usable while the list is open
        button.box = box  # kept for the tests (and alive while the item is)

    button.clicked.connect(show)
    item.layout().addWidget(button)
    message_bar.pushWidget(item, Qgis.Warning)
    return item


class _Announcer(QObject):
    """Lives on the main thread: runs end on Processing's task threads, widgets live here."""

    finished = pyqtSignal(str, list)

    def __init__(self, message_bar: Any):
        super().__init__()
        self.message_bar = message_bar
        self.finished.connect(self.show)  # queued when emitted from a task's thread

    def show(self, algorithm_name: str, warnings: list) -> None:
        show_warnings_bar(self.message_bar, algorithm_name, warnings)


_ANNOUNCER: Optional[_Announcer] = None


def install(iface: Any) -> None:
    """Announce runs with warnings in ``iface``'s message bar (desktop only; call on the main
    thread, at plugin start)."""
    global _ANNOUNCER
    _ANNOUNCER = _Announcer(iface.messageBar()) if iface is not None else None


def uninstall() -> None:
    global _ANNOUNCER
    _ANNOUNCER = None


def announce(algorithm_name: str, warnings: List[str]) -> None:
    """Tell the desktop that a run of ``algorithm_name`` ended with ``warnings`` (none: nothing)."""
    if warnings and _ANNOUNCER is not None:
        _ANNOUNCER.finished.emit(algorithm_name, list(warnings))
