"""Shared shape of the training algorithms: a backend job run in a worker subprocess.

Training needs torch, which QGIS never imports: the job runs in the worker (``python -m
backend.worker``) under the Python of the QGIS setting ``msgfm/worker_python``. Its progress events
drive the Processing progress bar, its log lines (stderr) go to the log panel, and a cancel in QGIS
asks the job to stop; a job that does not stop within a few seconds is terminated, so a cancel never
waits for a long training step.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import time
from typing import Any, Dict, Mapping, Optional, Sequence

from qgis.core import QgsProcessingException, QgsProcessingFeedback

from ..backend_loader import backend_module
from ..settings import WORKER_PYTHON_KEY, worker_python
from .base import GROUP_TRAINING, MsgfmAlgorithm

CANCELLED = "cancelled"
# Seconds a job gets to stop on its own after a cancel before its process is terminated.
CANCEL_GRACE_S = 5.0
# Seconds between two progress lines in the log (the progress bar itself follows every event).
LOG_INTERVAL_S = 2.0
# The pip requirement that installs a module into the worker's Python.
INSTALL_NAMES = {"torch": "torch", "rasterio": "rasterio", "numpy": "numpy<2"}


def missing_modules(python: str, modules: Sequence[str]) -> Sequence[str]:
    """The ``modules`` that ``python`` cannot import (found without importing them: torch is slow).

    Raises:
        QgsProcessingException: ``python`` does not run.
    """
    probe = (
        "import importlib.util, sys\n"
        "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
    )
    try:
        run = subprocess.run(
            [python, "-c", probe, *modules], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise QgsProcessingException(
            f"The msGFM worker Python '{python}' does not run ({exc}): set the QGIS setting "
            f"{WORKER_PYTHON_KEY} to a Python interpreter with torch"
        ) from None
    if run.returncode != 0:
        raise QgsProcessingException(
            f"The msGFM worker Python '{python}' failed to start ({run.stderr.strip()[-300:]}): "
            f"set the QGIS setting {WORKER_PYTHON_KEY} to a working Python interpreter with torch"
        )
    return run.stdout.split()


def require_modules(python: str, modules: Sequence[str]) -> None:
    """Raise a message saying what to install or configure when ``python`` lacks ``modules``."""
    missing = missing_modules(python, modules)
    if missing:
        requirements = " ".join(f'"{INSTALL_NAMES.get(m, m)}"' for m in missing)
        raise QgsProcessingException(
            f"Training runs in a separate Python, and '{python}' has no {', '.join(missing)}. "
            f"Either install it there: {python} -m pip install {requirements} (CPU: "
            '"torch==2.13.0" with --index-url https://download.pytorch.org/whl/cpu), or set the '
            f"QGIS setting {WORKER_PYTHON_KEY} (Settings > Options > Advanced) to the python of "
            "an environment that has torch, numpy<2 and rasterio."
        )


class TrainingAlgorithm(MsgfmAlgorithm):
    """Base class of the training algorithms. Subclasses set ``JOB`` and build its parameters."""

    GROUP = GROUP_TRAINING
    JOB = ""
    REQUIRED_MODULES: Sequence[str] = ("torch", "numpy", "rasterio")

    def run_training_job(
        self, params: Mapping[str, Any], feedback: QgsProcessingFeedback
    ) -> Dict[str, Any]:
        """Run the worker job ``JOB`` with ``params`` to its end; returns the job's result.

        Raises:
            QgsProcessingException: ``cancelled`` when the user cancelled; otherwise the job's error,
                worded for the user (the worker's own log lines are in the Processing log).
        """
        if feedback.isCanceled():
            raise QgsProcessingException(CANCELLED)
        python = worker_python()
        require_modules(python, self.REQUIRED_MODULES)
        client_module = backend_module("inference.worker_client")
        command = " ".join(client_module.worker_command(python))
        client = _logging_client(client_module)(python)
        try:
            try:
                client.start()
            except client_module.WorkerError as exc:
                raise QgsProcessingException(
                    f"The msGFM worker did not start with '{python}' ({exc}); set the QGIS setting "
                    f"{WORKER_PYTHON_KEY} to a Python with torch, numpy<2 and rasterio"
                ) from None
            feedback.pushInfo(f"Backend: local subprocess {client.process.pid} ({command})")
            if self.JOB not in client.ready.get("jobs", []):
                raise QgsProcessingException(
                    f"The msGFM backend run by '{python}' has no '{self.JOB}' job (it offers "
                    f"{', '.join(client.ready.get('jobs', []))}): reinstall the plugin"
                )
            return self._follow(client, client_module, params, feedback)
        finally:
            client.close(timeout=CANCEL_GRACE_S)
            _pass_log(client, feedback)

    def _follow(self, client, client_module, params, feedback) -> Dict[str, Any]:
        cancel_sent_at = [0.0]
        last_log = [0.0]

        def poll() -> None:
            _pass_log(client, feedback)
            if not feedback.isCanceled():
                return
            if not cancel_sent_at[0]:
                cancel_sent_at[0] = time.monotonic()
                feedback.pushInfo("Cancelling: asking the training job to stop")
                with contextlib.suppress(client_module.WorkerError):  # already gone
                    client.cancel()
            elif time.monotonic() - cancel_sent_at[0] > CANCEL_GRACE_S:
                # A job inside a long step does not look at its cancel flag: stop the process.
                _terminate(client.process)

        client.submit(self.JOB, params)
        try:
            for event in client.events(poll):
                poll()
                kind = event.get("type")
                message = str(event.get("message", ""))
                if kind == "progress":
                    feedback.setProgress(100.0 * float(event.get("fraction", 0.0)))
                    if message:
                        feedback.setProgressText(message)
                        if time.monotonic() - last_log[0] >= LOG_INTERVAL_S:
                            last_log[0] = time.monotonic()
                            feedback.pushInfo(message)
                elif kind == "result":
                    return event.get("result") or {}
                elif kind == "cancelled":
                    raise QgsProcessingException(CANCELLED)
                elif kind == "error":
                    raise self._job_error(str(event.get("error")), message, client.python, feedback)
                elif message:
                    feedback.pushInfo(message)
        except client_module.WorkerError as exc:
            if feedback.isCanceled():
                raise QgsProcessingException(CANCELLED) from None
            raise QgsProcessingException(
                f"The msGFM worker stopped during '{self.JOB}': {exc} (worker Python: "
                f"{client.python})"
            ) from None
        raise QgsProcessingException(f"The msGFM worker ended '{self.JOB}' without a result")

    def _job_error(self, kind: str, message: str, python: str, feedback) -> QgsProcessingException:
        if feedback.isCanceled():
            return QgsProcessingException(CANCELLED)
        if kind in ("ModuleNotFoundError", "ImportError"):
            return QgsProcessingException(
                f"The worker Python '{python}' cannot run '{self.JOB}' ({message}): set the QGIS "
                f"setting {WORKER_PYTHON_KEY} to a Python with torch, numpy<2 and rasterio"
            )
        return QgsProcessingException(f"msGFM {self.JOB} failed: {message}")


def _logging_client(client_module):
    """A worker client that also queues the worker's stderr lines (its training log)."""

    class LoggingWorkerClient(client_module.WorkerClient):
        def __init__(self, python: str, env: Optional[Mapping[str, str]] = None):
            super().__init__(python, env)
            self.log_lines: queue.Queue = queue.Queue()

        def _read_stderr(self) -> None:
            assert self.process is not None and self.process.stderr is not None
            for line in self.process.stderr:
                self._stderr.append(line)
                self.log_lines.put(line.rstrip())

    return LoggingWorkerClient


def _pass_log(client, feedback: QgsProcessingFeedback) -> None:
    """Move the worker's queued log lines into the Processing log (from the calling thread)."""
    while True:
        try:
            line = client.log_lines.get_nowait()
        except queue.Empty:
            return
        if line.strip():
            feedback.pushConsoleInfo(line)


def _terminate(process: Optional[subprocess.Popen]) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(2.0)
    except subprocess.TimeoutExpired:
        process.kill()
