"""The plugin's user settings (QgsSettings), e.g. which Python runs the subprocess worker."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingException, QgsSettings

from backend.worker import interpreter

from .i18n import tr

WORKER_PYTHON_KEY = "msgfm/worker_python"


def worker_python() -> str:
    """The Python interpreter for the subprocess backend.

    The ``msgfm/worker_python`` setting when set (e.g. an environment with onnxruntime-gpu), else the
    Python of the environment QGIS runs in.

    Raises:
        QgsProcessingException: the configured interpreter does not exist, or none can be found.
    """
    configured = str(QgsSettings().value(WORKER_PYTHON_KEY, "") or "").strip()
    if configured:
        if not Path(configured).is_file():
            raise QgsProcessingException(
                tr(
                    "The msGFM worker Python '{}' (setting {}) does not exist: correct the "
                    "setting, clear it to use QGIS's own Python, or choose the in-process "
                    "backend"
                ).format(configured, WORKER_PYTHON_KEY)
            )
        return configured
    try:
        return interpreter.default_python()
    except interpreter.WorkerError as exc:
        raise QgsProcessingException(
            tr("{} (setting {}), or choose the in-process backend").format(exc, WORKER_PYTHON_KEY)
        ) from None


def set_worker_python(path: str) -> None:
    """Store the worker's Python interpreter; an empty string restores the default."""
    QgsSettings().setValue(WORKER_PYTHON_KEY, path)
