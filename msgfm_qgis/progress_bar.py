"""The progress bar of a running algorithm, kept off the log where it would break its lines."""

from __future__ import annotations

from qgis.core import QgsApplication, QgsProcessingFeedback


def draws_bar_in_log() -> bool:
    """Whether this QGIS draws the progress bar into the log itself: qgis_process prints it as
    dots and tens (``0...10...20``) on the current line of its output."""
    app = QgsApplication.instance()
    return app is not None and app.platform() == "qgis_process"


def move_bar(feedback: QgsProcessingFeedback, percent: float) -> None:
    """Move the progress bar to ``percent`` while a run reports progress texts.

    In qgis_process the bar's dots have no line of their own: each progress text printed after
    them would start mid-line (``...1011%: 20/169 tiles``). There the texts, which carry the
    percentage, are the progress; the algorithm's final ``setProgress(100)`` still prints the
    whole bar on one line.
    """
    if not draws_bar_in_log():
        feedback.setProgress(percent)
