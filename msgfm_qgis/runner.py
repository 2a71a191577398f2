"""Running an inference job in QGIS's own Python or in a local worker subprocess.

Both paths run the same engine (:func:`backend.inference.run_inference`) with the same parameters,
stream its progress into the Processing feedback and stop it when the user cancels. A cancelled or
failed run raises :class:`QgsProcessingException` and leaves no output file (the engine writes to a
temporary file and renames it only on success).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from qgis.core import QgsProcessingException, QgsProcessingFeedback

from .i18n import tr
from .progress_bar import move_bar
from .run_estimate import RunEstimate

IN_PROCESS = "in-process"
SUBPROCESS = "subprocess"
BACKENDS = (IN_PROCESS, SUBPROCESS)
CANCELLED = "cancelled"


@dataclass
class InferenceJob:
    """The parameters of one run, as the engine and the worker's ``predict`` job take them.

    Attributes:
        model: the .onnx file.
        inputs: ``{"sensor", "path", "bands"}`` per raster, the reference grid first.
        out: the GeoTIFF for the model's first output (others are written beside it).
        tile_size, overlap: None for the model's defaults.
        scene_grid: a GeoPackage of per-window classes (scene classification only).
        run_anyway: run on inputs out of the model's domain instead of refusing them.
    """

    model: str
    inputs: List[Dict[str, Any]]
    out: str
    tile_size: Optional[int] = None
    overlap: Optional[float] = None
    batch_size: int = 4
    device: str = "auto"
    scene_grid: Optional[str] = None
    run_anyway: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)

    def params(self) -> Dict[str, Any]:
        """The job as JSON-ready parameters of the worker's ``predict`` job."""
        params = asdict(self)
        params.update(params.pop("extra"))
        return {key: value for key, value in params.items() if value is not None}


def run_job(job: InferenceJob, backend: str, feedback: QgsProcessingFeedback) -> Dict[str, Any]:
    """Run ``job`` with ``backend`` (``in-process`` or ``subprocess``); returns the run's summary.

    The summary is :class:`backend.inference.InferenceResult` as a dict (outputs, provider,
    tiles_run, tiles_skipped, seconds, tile_size, overlap, batch_size).
    """
    if feedback.isCanceled():
        raise QgsProcessingException(CANCELLED)
    if backend == SUBPROCESS:
        return _run_in_worker(job, feedback)
    if backend != IN_PROCESS:
        raise QgsProcessingException(
            tr("unknown backend {!r}; use one of {}").format(backend, BACKENDS)
        )
    return _run_in_process(job, feedback)


def _progress(feedback: QgsProcessingFeedback, job: Optional[InferenceJob] = None):
    """The engine's progress callback: the bar follows every whole percent; the text (which the
    Processing dialog also writes to its log) changes at the start, at stage messages and every
    10 %, so a run of hundreds of batches logs about a dozen lines, not one per batch. After the
    first batch, a long run says how long it will take and how much disk it needs."""
    state = {"percent": -1, "tenth": -1}
    estimate = RunEstimate(job)

    def report(fraction: float, message: str) -> None:
        announcement = estimate.observe(fraction, message)
        if announcement:
            feedback.pushInfo(announcement)
        percent = int(100.0 * fraction)
        if percent != state["percent"]:
            state["percent"] = percent
            move_bar(feedback, float(percent))
        tenth = percent // 10
        stage = fraction <= 0.0  # a stage of the start (opening, reading), before any tile
        if message and (stage or tenth != state["tenth"]):
            state["tenth"] = tenth if not stage else state["tenth"]
            feedback.setProgressText(f"{percent}%: {message}" if not stage else message)

    return report


def _run_in_process(job: InferenceJob, feedback: QgsProcessingFeedback) -> Dict[str, Any]:
    feedback.setProgressText("Starting the model run...")
    from backend import inference

    token = inference.CancelToken(poll=feedback.isCanceled)
    # The signal stops a batch already inside ONNX Runtime at once; polling covers the rest.
    feedback.canceled.connect(token.cancel)
    try:
        result = inference.run_inference(
            job.model,
            [
                inference.RasterInput(sensor=item["sensor"], path=item["path"], bands=item["bands"])
                for item in job.inputs
            ],
            job.out,
            tile_size=job.tile_size,
            overlap=job.overlap,
            batch_size=job.batch_size,
            device=job.device,
            progress=_progress(feedback, job),
            cancel=token,
            scene_grid=job.scene_grid,
            run_anyway=job.run_anyway,
            warn=feedback.pushWarning,
            **job.extra,
        )
    except inference.InferenceCancelledError:
        raise QgsProcessingException(CANCELLED) from None
    except inference.InferenceError as exc:
        if feedback.isCanceled():
            raise QgsProcessingException(CANCELLED) from None
        raise QgsProcessingException(str(exc)) from None
    finally:
        feedback.canceled.disconnect(token.cancel)
    return result.to_dict()


def _run_in_worker(job: InferenceJob, feedback: QgsProcessingFeedback) -> Dict[str, Any]:
    from backend.worker import client as client_module

    from .settings import worker_python

    python = worker_python()
    feedback.pushInfo(
        f"Backend: local subprocess ({' '.join(client_module.worker_command(python))})"
    )
    try:
        with client_module.WorkerClient(python) as client:
            summary = client.run(
                "predict",
                job.params(),
                progress=_progress(feedback, job),
                is_cancelled=feedback.isCanceled,
            )
    except client_module.WorkerCancelledError:
        raise QgsProcessingException(CANCELLED) from None
    except client_module.WorkerError as exc:
        if exc.kind == "InferenceCancelledError" or feedback.isCanceled():
            raise QgsProcessingException(CANCELLED) from None
        if exc.kind in ("ModuleNotFoundError", "ImportError"):
            raise QgsProcessingException(
                tr(
                    "The worker Python {} cannot run msGFM ({}): set the QGIS setting "
                    "msgfm/worker_python to a Python with numpy<2, onnxruntime and rasterio, "
                    "or choose the in-process backend"
                ).format(python, exc)
            ) from None
        raise QgsProcessingException(tr("{} (worker Python: {})").format(exc, python)) from None
    for message in summary.get("warnings", []):  # the engine's warnings, told after the run
        feedback.pushWarning(message)
    return summary
