"""Parameter counts per model part and FLOPs per image, for ``msgfm model-summary``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..sensors import get_sensor
from .config import ModelConfig
from .cross_sensor_mim import MsGFMPretrainModel
from .moe import MoEMlp


@dataclass
class ModelSummary:
    """Sizes of a pretraining model.

    Attributes:
        config_name: Configuration name.
        parameters: (part, parameter count) rows in model order; MoE expert rows are the part of
            their stage's count held in experts.
        total_parameters: All parameters (encoder, embeddings, decoders).
        encoder_flops: Sensor -> FLOPs of one encoder forward pass on one image at image_size
            (multiply-add = 2 FLOPs; MoE tokens count their top-k experts only).
        decoder_flops: Sensor -> FLOPs of its SimMIM decoder for one image.
        image_size: Image side in pixels the FLOPs are counted at.
    """

    config_name: str
    parameters: List[Tuple[str, int]] = field(default_factory=list)
    total_parameters: int = 0
    encoder_flops: Dict[str, int] = field(default_factory=dict)
    decoder_flops: Dict[str, int] = field(default_factory=dict)
    image_size: int = 0

    def to_dict(self) -> Dict[str, object]:
        """JSON-ready dictionary."""
        return {
            "config": self.config_name,
            "image_size": self.image_size,
            "parameters": dict(self.parameters),
            "total_parameters": self.total_parameters,
            "encoder_flops_per_image": self.encoder_flops,
            "decoder_flops_per_image": self.decoder_flops,
        }

    def to_text(self) -> str:
        """Human-readable table."""
        lines = [f"msGFM model {self.config_name!r}", "", f"{'part':<34}{'parameters':>16}"]
        lines += [f"{part:<34}{count:>16,}" for part, count in self.parameters]
        lines += [f"{'total':<34}{self.total_parameters:>16,}", ""]
        lines.append(f"FLOPs per {self.image_size}x{self.image_size} image (forward)")
        for sensor, flops in self.encoder_flops.items():
            lines.append(f"  encoder on {sensor:<22}{flops / 1e9:>14.3f} G")
        for sensor, flops in self.decoder_flops.items():
            lines.append(f"  decoder {sensor:<25}{flops / 1e9:>14.3f} G")
        return "\n".join(lines)


def _count(module: Optional[nn.Module]) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def count_flops(module: nn.Module, *args) -> int:
    """FLOPs of one forward call, counted by ``torch.utils.flop_counter``."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*args)
    return int(counter.get_total_flops())


def summarize(config: ModelConfig, flops: bool = True) -> ModelSummary:
    """Build the model of ``config`` and measure it.

    Args:
        config: Model configuration.
        flops: Also count FLOPs per image (one forward pass per sensor).
    """
    model = MsGFMPretrainModel(config).eval()
    encoder = model.encoder
    summary = ModelSummary(config_name=config.name, image_size=config.image_size)
    rows = summary.parameters
    for name, embedding in encoder.embeddings.items():
        rows.append((f"embedding {name}", _count(embedding)))
    rows.append(("mask token", encoder.mask_token.numel()))
    for i, (stage, out_norm) in enumerate(zip(encoder.stages, encoder.out_norms)):
        rows.append((f"stage {i + 1}", _count(stage) + _count(out_norm)))
        experts = sum(
            _count(block.mlp.experts) for block in stage.blocks if isinstance(block.mlp, MoEMlp)
        )
        if experts:
            rows.append((f"  of which MoE experts (stage {i + 1})", experts))
    for name, decoder in model.decoders.items():
        rows.append((f"decoder {name}", _count(decoder)))
    summary.total_parameters = _count(model)

    if flops:
        size = config.image_size
        last = torch.zeros(1, config.stage_dims[-1], *(2 * [size // config.encoder_stride]))
        for name in config.sensors:
            image = torch.zeros(1, get_sensor(name).num_bands, size, size)
            summary.encoder_flops[name] = count_flops(encoder, {name: image})
            summary.decoder_flops[name] = count_flops(model.decoders[name], last)
    return summary
