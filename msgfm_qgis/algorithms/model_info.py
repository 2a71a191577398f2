"""msgfm:modelinfo — report what an msGFM ONNX model expects and produces."""

from __future__ import annotations

import json
from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputString,
    QgsProcessingParameterFileDestination,
)

from backend.conventions import json_safe
from backend.files import write_text_atomically

from ..dependencies import require_onnxruntime
from ..output_folders import writable_folder
from .base import GROUP_ANALYSIS, MsgfmAlgorithm, file_parameter, optional_output


class ModelInfoAlgorithm(MsgfmAlgorithm):
    NAME = "modelinfo"
    DISPLAY_NAME = "Model information"
    GROUP = GROUP_ANALYSIS
    HELP = (
        "Shows what an msGFM model (.onnx) was trained for and what it needs: its task, the sensors "
        "and bands of each input (in order), the tile size, the output classes or bands, the data "
        "it was trained on and its evaluation metrics.\n\n"
        "Use it before running a model you received, to see which layers and bands to give it. "
        "Optionally writes the full metadata to a JSON file."
    )

    MODEL = "MODEL"
    OUTPUT = "OUTPUT"
    METADATA = "METADATA"
    TASK = "TASK"
    MODEL_NAME = "MODEL_NAME"

    def initAlgorithm(self, config=None):
        self.addParameter(
            file_parameter(
                self.MODEL,
                self.tr("msGFM model (.onnx)"),
                extension="onnx",
            )
        )
        self.addParameter(
            optional_output(
                QgsProcessingParameterFileDestination,
                self.OUTPUT,
                self.tr("Model metadata (JSON)"),
                fileFilter="JSON files (*.json)",
            )
        )
        self.addOutput(QgsProcessingOutputString(self.METADATA, "Model metadata (JSON text)"))
        self.addOutput(QgsProcessingOutputString(self.TASK, "Task"))
        self.addOutput(QgsProcessingOutputString(self.MODEL_NAME, "Model name"))

    def processAlgorithm(self, parameters, context, feedback):
        model_path = self.parameterAsFile(parameters, self.MODEL, context)
        if not model_path:
            raise QgsProcessingException(
                self.tr("Choose an msGFM model file (.onnx) for 'msGFM model'.")
            )
        require_onnxruntime()
        from backend.export import schema

        try:
            metadata = schema.read_model_metadata(model_path)
        except (schema.ModelFileError, schema.ModelMetadataError) as exc:
            raise QgsProcessingException(
                self.tr("Cannot use '{}': {}").format(model_path, exc)
            ) from None

        for line in describe(metadata):
            feedback.pushInfo(line)
        text = json.dumps(json_safe(metadata.to_dict()), indent=2, allow_nan=False)
        results = {
            self.METADATA: text,
            self.TASK: metadata.task,
            self.MODEL_NAME: metadata.model_name,
        }
        destination = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if destination:
            writable_folder(Path(destination).parent, "Model metadata (JSON)")
            write_text_atomically(Path(destination), text + "\n")
            results[self.OUTPUT] = destination
        return results


def describe(metadata) -> list:
    """Human-readable lines about a model, for the Processing log (those of ``msgfm info``)."""
    from backend.export.model_summary import summary_lines

    return summary_lines(metadata)
