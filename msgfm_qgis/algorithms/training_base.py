"""Shared shape of the training algorithms: a backend job run in a worker subprocess.

Training needs torch, which QGIS never imports: the job runs in the worker (``python -m
backend.worker``) under the Python of the QGIS setting ``msgfm/worker_python``. Its progress events
drive the Processing progress bar, its log lines (stderr) go to the log panel, and a cancel in QGIS
asks the job to stop; a job that does not stop within a few seconds is terminated, so a cancel never
waits for a long training step.
"""

from __future__ import annotations

import queue
import subprocess
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from qgis.core import (
    QgsProcessingException,
    QgsProcessingFeedback,
)

from backend.sensors import SENSORS, get_sensor

from ..i18n import tr
from ..progress_bar import move_bar
from ..runner import CANCELLED
from ..settings import WORKER_PYTHON_KEY, worker_python
from .base import GROUP_TRAINING, MsgfmAlgorithm, integer_parameter
from .inference_base import advanced, device_parameter

# Seconds a job gets to stop on its own after a cancel before its process is terminated.
CANCEL_GRACE_S = 5.0
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
            tr(
                "The msGFM worker Python '{}' does not run ({}): set the QGIS setting {} to a "
                "Python interpreter with torch"
            ).format(python, exc, WORKER_PYTHON_KEY)
        ) from None
    if run.returncode != 0:
        raise QgsProcessingException(
            tr(
                "The msGFM worker Python '{}' failed to start ({}): set the QGIS setting {} "
                "to a working Python interpreter with torch"
            ).format(python, run.stderr.strip()[-300:], WORKER_PYTHON_KEY)
        )
    return run.stdout.split()


def require_modules(python: str, modules: Sequence[str]) -> None:
    """Raise a message saying what to install or configure when ``python`` lacks ``modules``."""
    missing = missing_modules(python, modules)
    if missing:
        requirements = " ".join(f'"{INSTALL_NAMES.get(m, m)}"' for m in missing)
        raise QgsProcessingException(
            tr(
                "Training runs in a separate Python, and '{}' has no {}. Either install it "
                'there: {} -m pip install {} (CPU: "torch==2.13.0" with --index-url '
                "https://download.pytorch.org/whl/cpu), or set the QGIS setting {} (Settings "
                "> Options > Advanced) to the python of an environment that has torch, "
                "numpy<2 and rasterio."
            ).format(python, ", ".join(missing), python, requirements, WORKER_PYTHON_KEY)
        )


CONFIGS = ("small", "base")
CONFIG_LABELS = (
    "small (CPU-sized: trains here in minutes)",
    "base (the paper's Swin-B; needs a GPU)",
)


class TrainingAlgorithm(MsgfmAlgorithm):
    """Base class of the training algorithms. Subclasses set ``JOB`` and build its parameters."""

    GROUP = GROUP_TRAINING
    JOB = ""
    REQUIRED_MODULES: Sequence[str] = ("torch", "numpy", "rasterio")

    def add_seed_and_device_parameters(self) -> None:
        """The advanced Random seed and Device parameters every training algorithm has."""
        self.addParameter(
            advanced(
                integer_parameter(
                    self.SEED,
                    self.tr("Random seed"),
                    0,
                    minimum=0,
                )
            )
        )
        self.addParameter(device_parameter(self, self.DEVICE))

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
        from backend.worker import client as client_module

        command = " ".join(client_module.worker_command(python))
        client = client_module.WorkerClient(python)
        try:
            try:
                client.start()
            except client_module.WorkerError as exc:
                raise QgsProcessingException(
                    self.tr(
                        "The msGFM worker did not start with '{}' ({}); set the QGIS "
                        "setting {} to a Python with torch, numpy<2 and rasterio"
                    ).format(python, exc, WORKER_PYTHON_KEY)
                ) from None
            feedback.pushInfo(f"Backend: local subprocess {client.process.pid} ({command})")
            if self.JOB not in client.ready.get("jobs", []):
                raise QgsProcessingException(
                    self.tr(
                        "The msGFM backend run by '{}' has no '{}' job (it offers {}): "
                        "reinstall the plugin"
                    ).format(python, self.JOB, ", ".join(client.ready.get("jobs", [])))
                )
            return self._follow(client, client_module, params, feedback)
        finally:
            client.close(timeout=CANCEL_GRACE_S)
            _pass_log(client, feedback)

    def _follow(self, client, client_module, params, feedback) -> Dict[str, Any]:
        """Run the job through the client's loop, with the worker's log and progress in QGIS."""
        cancelling = [False]

        def progress(fraction: float, message: str) -> None:
            move_bar(feedback, 100.0 * fraction)
            if message:  # the Processing log (dialog and qgis_process) writes the text once
                feedback.setProgressText(message)

        def is_cancelled() -> bool:
            if feedback.isCanceled() and not cancelling[0]:
                cancelling[0] = True
                feedback.pushInfo("Cancelling: asking the training job to stop")
            return feedback.isCanceled()

        try:
            return client.run(
                self.JOB,
                params,
                progress=progress,
                is_cancelled=is_cancelled,
                on_poll=lambda: _pass_log(client, feedback),
                on_message=feedback.pushInfo,
                terminate_after=CANCEL_GRACE_S,
            )
        except client_module.WorkerCancelledError:
            raise QgsProcessingException(CANCELLED) from None
        except client_module.WorkerJobError as exc:
            raise self._job_error(exc.kind, str(exc), client.python, feedback) from None
        except client_module.WorkerError as exc:
            if feedback.isCanceled():
                raise QgsProcessingException(CANCELLED) from None
            raise QgsProcessingException(
                self.tr("The msGFM worker stopped during '{}': {} (worker Python: {})").format(
                    self.JOB, exc, client.python
                )
            ) from None

    def _job_error(self, kind: str, message: str, python: str, feedback) -> QgsProcessingException:
        if feedback.isCanceled():
            return QgsProcessingException(CANCELLED)
        if kind in ("ModuleNotFoundError", "ImportError"):
            return QgsProcessingException(
                self.tr(
                    "The worker Python '{}' cannot run '{}' ({}): set the QGIS setting "
                    "{} to a Python with torch, numpy<2 and rasterio"
                ).format(python, self.JOB, message, WORKER_PYTHON_KEY)
            )
        return QgsProcessingException(self.tr("msGFM {} failed: {}").format(self.JOB, message))


def _pass_log(client, feedback: QgsProcessingFeedback) -> None:
    """Move the worker's queued log lines into the Processing log (from the calling thread)."""
    while True:
        try:
            line = client.log_lines.get_nowait()
        except queue.Empty:
            return
        if line.strip():
            feedback.pushConsoleInfo(line)


def layer_sensors(
    text: str,
    layers: Sequence[Any],
    guess: Optional[Callable[[Any], Optional[str]]] = None,
    bands_ok: Optional[Callable[[Any, str], bool]] = None,
) -> List[str]:
    """The sensor of each layer from the text of 'Sensor of each layer', checked.

    Args:
        text: sensor names separated by commas or semicolons: one per layer in layer order, or
            one for all layers.
        layers: the raster layers.
        guess: the sensor of a layer when ``text`` is empty (None when there is no guess); without
            it an empty ``text`` is an error.
        bands_ok: layers it accepts skip the band check (e.g. a 13-band Sentinel-2 L1C stack).

    Raises:
        QgsProcessingException: no sensors named, a count that fits neither way, an unknown
            sensor, or a layer whose bands cannot be the sensor's.
    """
    names = [n.strip().lower() for n in text.replace(";", ",").split(",") if n.strip()]
    known = ", ".join(sorted(SENSORS))
    if not names and guess is None:
        raise QgsProcessingException(
            tr("Name the sensor of each layer in 'Sensor of each layer' (one of {})").format(known)
        )
    if not names:
        for layer in layers:
            name = guess(layer)
            if name is None:
                raise QgsProcessingException(
                    tr(
                        "Layer '{}' has {} bands, which fit no sensor by count: name its "
                        "sensor in 'Sensor of each layer' (one of {})"
                    ).format(layer.name(), layer.bandCount(), known)
                )
            names.append(name)
    elif len(names) == 1:
        names = names * len(layers)
    if len(names) != len(layers):
        raise QgsProcessingException(
            tr(
                "{} layers are chosen but {} sensors are named in 'Sensor of each layer': "
                "name one per layer, in layer order, or one for all"
            ).format(len(layers), len(names))
        )
    for layer, name in zip(layers, names):
        if name not in SENSORS:
            raise QgsProcessingException(
                tr("Unknown sensor '{}' for layer '{}': use one of {}").format(
                    name, layer.name(), known
                )
            )
        if bands_ok is None or not bands_ok(layer, name):
            check_layer_bands(layer, get_sensor(name))
    return names


def check_layer_bands(layer, sensor) -> None:
    """Refuse a layer that is not the named sensor (by :mod:`backend.sensor_resolver`: its band
    names and wavelengths say another sensor, a band is missing, or the count does not fit)."""
    from backend.sensor_resolver import BandMatchError, BandOrderError, bands_for

    from ..model_checks import layer_facts

    try:
        bands_for(layer_facts(layer), sensor.name, sensor.bands)
    except BandOrderError:
        return  # training reads the bands by name or in file order; the order is the user's
    except BandMatchError as exc:
        raise QgsProcessingException(
            tr(
                "{}. For training, save a copy with exactly the sensor's bands (Raster > "
                "Conversion > Translate, or Build Virtual Raster) or name the layer's bands, "
                "or name another sensor in 'Sensor of each layer'"
            ).format(exc)
        ) from None
