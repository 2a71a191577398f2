"""A tensor-in, tensors-out view of the encoder for ``torch.onnx.export(..., dynamo=False)``.

ONNX graphs take positional tensors and return tuples; the encoder takes a dict of sensor images
and returns a dataclass. :class:`EncoderExportWrapper` fixes the sensor order and returns the
stage features, so the exported graph has one input per sensor and one output per stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..sensors import get_sensor
from .embedding_head import embedding_stages, pooled_stage_features
from .encoder import MsGFMEncoder
from .onnx_warnings import export_warnings_that_do_not_apply_ignored


class EncoderExportWrapper(nn.Module):
    """Encoder with positional sensor inputs (fused by summing) and tuple outputs.

    Args:
        encoder: The encoder (exported in eval mode: capacity-free MoE dispatch).
        sensors: Sensor names in input order.
        stages: Zero-based stages whose features are returned (default: all).
    """

    def __init__(self, encoder: MsGFMEncoder, sensors: Sequence[str], stages: Sequence[int] = ()):
        super().__init__()
        missing = [s for s in sensors if s not in encoder.embeddings]
        if missing:
            raise KeyError(
                f"sensors {missing} have no embedding in this encoder ({encoder.sensors})"
            )
        self.encoder = encoder
        self.sensors = list(sensors)
        self.stages = list(stages) or list(range(encoder.config.num_stages))

    def forward(self, *images: Tensor) -> Tuple[Tensor, ...]:
        output = self.encoder(dict(zip(self.sensors, images)))
        return tuple(output.features[i] for i in self.stages)


class EmbeddingExportWrapper(EncoderExportWrapper):
    """The encoder as an embedding model: the config's embedding stages pooled onto the last
    stage's grid and concatenated (see :mod:`.embedding_head`), one output."""

    def __init__(self, encoder: MsGFMEncoder, sensors: Sequence[str]):
        super().__init__(encoder, sensors)
        self.embedding_stages = embedding_stages(encoder.config)

    def forward(self, *images: Tensor) -> Tuple[Tensor]:
        output = self.encoder(dict(zip(self.sensors, images)))
        return (pooled_stage_features(output.features, self.embedding_stages),)


def export_encoder(
    encoder: MsGFMEncoder,
    path: Union[str, Path],
    sensors: Sequence[str],
    image_size: int,
    batch_size: int = 2,
    opset: int = 17,
) -> List[str]:
    """Export the encoder to a single ONNX file with a dynamic batch axis.

    Args:
        encoder: The encoder; it is put in eval mode.
        path: Output ``.onnx`` file.
        sensors: Sensor inputs in order (input names are the sensor names).
        image_size: Height and width of the exported inputs in pixels.
        batch_size: Batch size of the example inputs used for tracing.
        opset: ONNX opset.

    Returns:
        Output names (``stage1`` ... ``stageN``).
    """
    encoder.eval()
    wrapper = EncoderExportWrapper(encoder, sensors).eval()
    examples = tuple(
        torch.randn(batch_size, get_sensor(s).num_bands, image_size, image_size) for s in sensors
    )
    output_names = [f"stage{i + 1}" for i in wrapper.stages]
    dynamic_axes = {name: {0: "batch"} for name in list(sensors) + output_names}
    with torch.no_grad(), export_warnings_that_do_not_apply_ignored():
        torch.onnx.export(
            wrapper,
            examples,
            str(path),
            input_names=list(sensors),
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False,
        )
    return output_names
