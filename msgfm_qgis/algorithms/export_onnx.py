"""msgfm:exportonnx — a training checkpoint to one self-describing, parity-checked .onnx file."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterString,
)

from ..i18n import tr
from ..output_folders import writable_folder
from .base import decimal_parameter, folder_parameter
from .inference_base import advanced
from .training_base import TrainingAlgorithm

CHECKPOINT_FILES = ("model.safetensors", "meta.json")


def checkpoint_folder(chosen: str) -> Path:
    """The checkpoint meant by ``chosen``: the folder itself or a run folder's checkpoint-last.

    Raises:
        QgsProcessingException: no checkpoint there.
    """
    path = Path(chosen)
    for candidate in (path, path / "checkpoint-best", path / "checkpoint-last"):
        if all((candidate / name).is_file() for name in CHECKPOINT_FILES):
            return candidate
    raise QgsProcessingException(
        tr(
            "'{}' holds no msGFM checkpoint (a folder with model.safetensors and meta.json, "
            "or a training folder with checkpoint-best or checkpoint-last): choose the folder "
            "msgfm:finetune or msgfm:pretrain wrote"
        ).format(chosen)
    )


class ExportOnnxAlgorithm(TrainingAlgorithm):
    NAME = "exportonnx"
    DISPLAY_NAME = "Export model to ONNX"
    JOB = "export"

    CHECKPOINT = "CHECKPOINT"
    SENSORS = "SENSORS"
    TOLERANCE = "TOLERANCE"
    OUTPUT = "OUTPUT"
    MAX_ABS_DIFF = "MAX_ABS_DIFF"
    TASK = "TASK"

    HELP = (
        "Exports an msGFM training checkpoint to one .onnx file that the analysis algorithms and "
        "Model information read: the model with its metadata (task, sensors and bands, "
        "normalisation, tile size, classes, metrics, training data).\n\n"
        "<b>Checkpoint</b>: a checkpoint folder (model.safetensors + meta.json) or a training "
        "folder (its checkpoint-best, else checkpoint-last). A finetuned checkpoint exports its "
        "task model; a pretraining checkpoint exports the encoder as an embedding model.\n"
        "<b>Sensors</b> (pretraining checkpoints with several sensors only): the encoder inputs, "
        "e.g. 's2, sar'.\n"
        "<b>Parity tolerance</b>: ONNX Runtime's output is compared with torch's on test tiles; "
        "a larger difference is an error and writes no file. The difference is in the log.\n\n"
        "Runs in a separate Python process that needs torch (QGIS setting msgfm/worker_python)."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(
            folder_parameter(
                self.CHECKPOINT,
                self.tr("Checkpoint (folder)"),
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.SENSORS,
                self.tr("Sensors of an embedding export (pretraining checkpoints; e.g. 's2, sar')"),
                optional=True,
            )
        )
        self.addParameter(
            advanced(
                decimal_parameter(
                    self.TOLERANCE,
                    self.tr("Parity tolerance (max abs difference ONNX Runtime vs torch)"),
                    1e-4,
                    minimum=0.0,
                )
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT, self.tr("Output model (.onnx)"), fileFilter="ONNX models (*.onnx)"
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.MAX_ABS_DIFF, "Max abs difference"))
        self.addOutput(QgsProcessingOutputString(self.TASK, "Task"))

    def processAlgorithm(self, parameters, context, feedback):
        checkpoint = checkpoint_folder(self.parameterAsFile(parameters, self.CHECKPOINT, context))
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if not out:
            raise QgsProcessingException(self.tr("Choose a file for 'Output model (.onnx)'"))
        if not out.lower().endswith(".onnx"):
            out += ".onnx"
        writable_folder(Path(out).parent, "Output model (.onnx)")
        text = self.parameterAsString(parameters, self.SENSORS, context) or ""
        sensors = [s.strip().lower() for s in text.replace(";", ",").split(",") if s.strip()]
        tolerance = self.parameterAsDouble(parameters, self.TOLERANCE, context)
        params = {"checkpoint": str(checkpoint), "out": out, "tolerance": tolerance}
        if sensors:
            params["sensors"] = sensors
        feedback.pushInfo(f"Exporting {checkpoint} to {out}")
        result = self.run_training_job(params, feedback)
        difference = float(result.get("max_abs_diff", float("nan")))
        task = (result.get("metadata") or {}).get("task", "")
        feedback.pushInfo(
            f"Exported a {task} model; ONNX Runtime matches torch within max abs diff "
            f"{difference:.2e} (tolerance {tolerance:g})"
        )
        feedback.setProgress(100)
        return {self.OUTPUT: out, self.MAX_ABS_DIFF: difference, self.TASK: task}
