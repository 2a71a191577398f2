"""At plugin load in the desktop: a message-bar offer to install ONNX Runtime when it is missing.

The button runs :func:`.dependencies.install_command` in a background ``QProcess`` (QGIS stays
responsive), then says in the message bar whether it worked and writes the exact command and pip's
output to the msGFM tab of the log panel.
"""

from __future__ import annotations

from typing import Any, List, Optional

from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt.QtCore import QProcess
from qgis.PyQt.QtWidgets import QPushButton

from .dependencies import ONNXRUNTIME, command_text, install_command, onnxruntime_missing

LOG_TAG = "msGFM"


class DependencyOffer:
    """Shows the offer on ``message_bar`` and runs the install when asked."""

    def __init__(self, message_bar: Any, command: Optional[List[str]] = None):
        self.message_bar = message_bar
        self.command = command or install_command(ONNXRUNTIME)
        self.process: Optional[QProcess] = None
        self.item = None
        self.output = ""

    def show(self) -> None:
        self.item = self.message_bar.createMessage(
            "msGFM",
            "ONNX Runtime is missing: models cannot run.",
        )
        button = QPushButton("Install ONNX Runtime")
        button.setToolTip(command_text(self.command))
        button.clicked.connect(self.install)
        self.item.layout().addWidget(button)
        self.message_bar.pushWidget(self.item, Qgis.Warning)

    def install(self) -> None:
        if self.process is not None:
            return
        text = command_text(self.command)
        QgsMessageLog.logMessage(f"Running: {text}", LOG_TAG, Qgis.Info)
        if self.item is not None:
            self.message_bar.popWidget(self.item)
        self.message_bar.pushMessage("msGFM", f"Installing ONNX Runtime: {text}", Qgis.Info, 0)
        self.process = QProcess()
        self.process.setProcessChannelMode(QProcess.MergedChannels)
        self.process.readyRead.connect(self._read)
        self.process.finished.connect(self._finished)
        self.process.start(self.command[0], self.command[1:])

    def _read(self) -> None:
        self.output += bytes(self.process.readAll()).decode(errors="replace")

    def _finished(self, code: int, status: Any = None) -> None:
        self._read()
        text = command_text(self.command)
        QgsMessageLog.logMessage(
            f"{text} ended with exit code {code}:\n{self.output[-4000:]}", LOG_TAG, Qgis.Info
        )
        self.message_bar.clearWidgets()
        if code == 0:
            self.message_bar.pushMessage(
                "msGFM",
                f"ONNX Runtime is installed (ran: {text}). Restart QGIS to use it.",
                Qgis.Success,
                0,
            )
        else:
            last = self.output.strip().splitlines()[-1:] or ["no output"]
            self.message_bar.pushMessage(
                "msGFM",
                f"Installing ONNX Runtime failed ({last[0]}); ran: {text}. See the msGFM tab of "
                "the log panel.",
                Qgis.Critical,
                0,
            )


def offer_missing_dependencies(iface: Any) -> Optional[DependencyOffer]:
    """Show the offer when ONNX Runtime is missing (desktop only); returns it, or None."""
    if iface is None or not onnxruntime_missing():
        return None
    offer = DependencyOffer(iface.messageBar())
    offer.show()
    return offer
