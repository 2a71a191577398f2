"""The msGFM encoder: per-sensor patch embeddings into one token space, then a shared Swin encoder
whose MLPs are mixtures of experts in the configured blocks.

Several sensors on one grid (S2 + SAR, RGB + DSM at finetune time) are fused by summing their
patch embeddings token-wise. Masked tokens (SimMIM pretraining) are replaced by a learned token.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Dict, List, Optional, Union

import torch
from torch import Tensor, nn

from ..sensors import Sensor, get_sensor
from .config import ModelConfig
from .embedding import SensorPatchEmbedding, init_from_nearest_bands
from .moe import MoEMlp
from .swin import Mlp, PatchMerging, SwinBlock


@dataclass
class EncoderOutput:
    """What the encoder returns.

    Attributes:
        features: One map per stage, ``(B, C_i, H_i, W_i)``, each layer-normed.
        aux_loss: MoE load-balancing loss summed over the MoE blocks, as Swin-MoE sums the
            ``l_aux`` of its MoE layers (0 without MoE).
        expert_load: ``(n_moe_blocks, num_experts)`` fraction of routing assignments per expert.
    """

    features: List[Tensor]
    aux_loss: Tensor
    expert_load: Tensor


class SwinStage(nn.Module):
    """The blocks of one stage, then (except for the last stage) patch merging."""

    def __init__(self, blocks: List[SwinBlock], downsample: Optional[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample


class MsGFMEncoder(nn.Module):
    """Sensor embeddings + shared Swin-MoE encoder.

    Args:
        config: Model sizes; ``config.sensors`` lists the sensors that get an embedding.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = copy.deepcopy(config)
        D = config.embed_dim
        self.embeddings = nn.ModuleDict(
            {
                name: SensorPatchEmbedding(get_sensor(name), D, config.patch_size)
                for name in config.sensors
            }
        )
        self.mask_token = nn.Parameter(torch.zeros(D))
        truncated_normal_(self.mask_token)

        total_blocks = sum(config.depths)
        drop_rates = [
            config.drop_path_rate * i / max(total_blocks - 1, 1) for i in range(total_blocks)
        ]
        stages = []
        for stage, (depth, heads, dim) in enumerate(
            zip(config.depths, config.num_heads, config.stage_dims)
        ):
            blocks = []
            for block in range(depth):
                hidden = int(dim * config.mlp_ratio)
                if config.is_moe_block(stage, block):
                    mlp: nn.Module = MoEMlp(
                        dim,
                        hidden,
                        config.num_experts,
                        config.top_k,
                        config.capacity_factor,
                        gate_noise=config.gate_noise,
                    )
                else:
                    mlp = Mlp(dim, hidden)
                blocks.append(
                    SwinBlock(
                        dim,
                        heads,
                        config.window_size,
                        shifted=block % 2 == 1,
                        mlp=mlp,
                        drop_path=drop_rates[sum(config.depths[:stage]) + block],
                    )
                )
            last = stage == config.num_stages - 1
            stages.append(SwinStage(blocks, None if last else PatchMerging(dim)))
        self.stages = nn.ModuleList(stages)
        self.out_norms = nn.ModuleList([nn.LayerNorm(dim) for dim in config.stage_dims])
        self.apply(_init_weights)

    @property
    def sensors(self) -> List[str]:
        """Sensors this encoder has an embedding for."""
        return list(self.embeddings.keys())

    def drop_fractions(self) -> List[float]:
        """Per MoE block, the share of routing assignments dropped at capacity in the last
        training forward pass."""
        return [
            float(b.mlp.drop_fraction)
            for s in self.stages
            for b in s.blocks
            if isinstance(b.mlp, MoEMlp)
        ]

    @property
    def num_moe_blocks(self) -> int:
        """Number of MoE blocks."""
        return sum(isinstance(b.mlp, MoEMlp) for s in self.stages for b in s.blocks)

    def embed(self, inputs: Dict[str, Tensor]) -> Tensor:
        """Patch-embed each sensor and sum them token-wise: ``(B, H/p, W/p, D)``."""
        if not inputs:
            raise ValueError("the encoder needs at least one sensor image")
        tokens = None
        shape = None
        for name, image in inputs.items():
            if name not in self.embeddings:
                raise KeyError(
                    f"sensor {name!r} has no patch embedding in this model; it has "
                    f"{self.sensors}. Add it with add_sensor()."
                )
            p = self.config.patch_size
            if image.ndim == 4 and (image.shape[-2] % p or image.shape[-1] % p):
                raise ValueError(
                    f"sensor {name!r} image size {tuple(image.shape[-2:])} must be a multiple of "
                    f"the patch size {p}"
                )
            if shape is not None and tuple(image.shape[-2:]) != shape:
                raise ValueError(
                    f"sensor images fused by the encoder must share one grid; {name!r} is "
                    f"{tuple(image.shape[-2:])}, expected {shape}"
                )
            shape = tuple(image.shape[-2:])
            embedded = self.embeddings[name](image)
            tokens = embedded if tokens is None else tokens + embedded
        return tokens

    def apply_mask(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """Replace masked tokens (``mask`` ``(B, H/p, W/p)`` True) by the learned mask token."""
        if mask.shape != tokens.shape[:3]:
            raise ValueError(
                f"mask shape {tuple(mask.shape)} must be (B, H/patch, W/patch) = "
                f"{tuple(tokens.shape[:3])}"
            )
        weight = mask.unsqueeze(-1).to(tokens.dtype)
        return tokens * (1.0 - weight) + self.mask_token.to(tokens.dtype) * weight

    def encode_tokens(self, tokens: Tensor) -> EncoderOutput:
        """Run the Swin stages on embedded tokens ``(B, H, W, D)``."""
        x = tokens
        features: List[Tensor] = []
        aux_losses: List[Tensor] = []
        loads: List[Tensor] = []
        for stage, out_norm in zip(self.stages, self.out_norms):
            for block in stage.blocks:
                x, aux, load = block(x)
                if aux is not None:
                    aux_losses.append(aux)
                    loads.append(load)
            features.append(out_norm(x).permute(0, 3, 1, 2).contiguous())
            if stage.downsample is not None:
                x = stage.downsample(x)
        if aux_losses:
            aux_loss = torch.stack(aux_losses).sum()
            expert_load = torch.stack(loads)
        else:
            aux_loss = tokens.new_zeros(())
            expert_load = tokens.new_zeros((0, self.config.num_experts))
        return EncoderOutput(features=features, aux_loss=aux_loss, expert_load=expert_load)

    def forward(self, inputs: Dict[str, Tensor], mask: Optional[Tensor] = None) -> EncoderOutput:
        """Encode normalised sensor images.

        Args:
            inputs: Sensor name -> ``(B, C_sensor, H, W)`` normalised images on one grid.
            mask: Optional ``(B, H/patch, W/patch)`` bool, True where the token is masked.
        """
        tokens = self.embed(inputs)
        if mask is not None:
            tokens = self.apply_mask(tokens, mask)
        return self.encode_tokens(tokens)

    def add_sensor(
        self, sensor: Union[Sensor, str], init_from: Optional[str] = None
    ) -> SensorPatchEmbedding:
        """Add a patch embedding for a new sensor.

        Args:
            sensor: Registry entry or name of the new sensor.
            init_from: Name of a sensor of this encoder whose weights initialise the new
                embedding, band by band from the same-named or nearest-wavelength band.

        Returns:
            The new embedding module.
        """
        if isinstance(sensor, str):
            sensor = get_sensor(sensor)
        if sensor.name in self.embeddings:
            raise ValueError(f"sensor {sensor.name!r} already has a patch embedding")
        reference = next(iter(self.embeddings.values()))
        embedding = SensorPatchEmbedding(sensor, self.config.embed_dim, self.config.patch_size)
        embedding.apply(_init_weights)
        embedding.to(device=reference.proj.weight.device, dtype=reference.proj.weight.dtype)
        if init_from is not None:
            if init_from not in self.embeddings:
                raise KeyError(f"init_from sensor {init_from!r} is not one of {self.sensors}")
            init_from_nearest_bands(
                embedding, sensor, self.embeddings[init_from], get_sensor(init_from)
            )
        self.embeddings[sensor.name] = embedding
        self.config.sensors.append(sensor.name)
        return embedding


@torch.no_grad()
def truncated_normal_(tensor: Tensor, std: float = 0.02) -> Tensor:
    """Normal init clipped at two standard deviations.

    Swin and SimMIM use ``trunc_normal_(std=0.02)``; clipping a normal draw gives the same spread
    and is many times faster than the inverse-CDF sampler on the 300 M parameters of ``base``.
    """
    return tensor.normal_(0.0, std).clamp_(-2.0 * std, 2.0 * std)


def _init_weights(module: nn.Module) -> None:
    # Swin/SimMIM initialisation: truncated normal linear layers, unit LayerNorms.
    if isinstance(module, nn.Linear):
        truncated_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
