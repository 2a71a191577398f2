"""Cross-sensor masked image modelling: the msGFM pretraining model and objective.

A step takes per-sensor sub-batches (heterogeneous batches). Each image is block-masked, encoded by
the shared encoder (all sub-batches of one image size in a single pass, so the MoE routes them
together) and reconstructed from the last stage by a per-sensor SimMIM decoder; the loss is L1 on
the masked pixels. A paired sample (co-registered with a partner sensor) is decoded with
probability ``p_cross`` by the partner's decoder against the partner's image (cross-sensor
reconstruction), otherwise by its own; unpaired samples always reconstruct themselves.

Masks and the cross/self draws use torch's default generator, in sub-batch order, so seeding it and
checkpointing ``torch.get_rng_state()`` makes a resumed run draw exactly what the original would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from ..sensors import Sensor, get_sensor
from .config import ModelConfig
from .decoder import SimMIMDecoder
from .encoder import MsGFMEncoder
from .masking import BlockMaskGenerator


@dataclass
class SubBatch:
    """One sensor's sub-batch of normalised images, optionally paired with a partner sensor.

    Attributes:
        sensor: Sensor of ``image``.
        image: ``(B, C_sensor, H, W)`` normalised images.
        partner_sensor: Sensor of the co-registered partner images, if paired.
        partner_image: ``(B, C_partner, H, W)`` partner images on the same grid.
    """

    sensor: str
    image: Tensor
    partner_sensor: Optional[str] = None
    partner_image: Optional[Tensor] = None

    @property
    def paired(self) -> bool:
        """Whether the sub-batch has partner images."""
        return self.partner_sensor is not None


@dataclass
class PretrainOutput:
    """Result of one pretraining forward pass.

    Attributes:
        loss: ``l1 + aux_loss_weight * aux_loss`` (the tensor to backpropagate).
        l1: Masked-pixel L1, averaged over sub-batches.
        aux_loss: MoE load-balancing loss.
        per_sensor_loss: Masked L1 per input sensor.
        expert_load: Per MoE block, the fraction of routing assignments per expert.
        cross_fraction: Fraction of paired samples decoded cross-sensor in this step (0 when no
            sample was paired).
        num_paired: Paired samples in this step.
    """

    loss: Tensor
    l1: Tensor
    aux_loss: Tensor
    per_sensor_loss: Dict[str, float] = field(default_factory=dict)
    expert_load: List[List[float]] = field(default_factory=list)
    cross_fraction: float = 0.0
    num_paired: int = 0


def masked_l1_per_sample(prediction: Tensor, target: Tensor, pixel_mask: Tensor) -> Tensor:
    """Mean absolute error over the masked pixels and all bands, one value per sample.

    Args:
        prediction: ``(B, C, H, W)``.
        target: ``(B, C, H, W)``.
        pixel_mask: ``(B, H, W)``, 1 where masked.
    """
    mask = pixel_mask.unsqueeze(1).to(prediction.dtype)
    error = ((prediction - target).abs() * mask).sum(dim=(1, 2, 3))
    return error / (mask.sum(dim=(1, 2, 3)) * prediction.shape[1]).clamp_min(1.0)


class MsGFMPretrainModel(nn.Module):
    """Encoder, per-sensor SimMIM decoders and the block mask generator.

    Args:
        config: Model and objective settings.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.encoder = MsGFMEncoder(config)
        self.config = self.encoder.config
        in_dim = self.config.stage_dims[-1]
        stride = self.config.encoder_stride
        self.decoders = nn.ModuleDict(
            {
                name: SimMIMDecoder(in_dim, get_sensor(name).num_bands, stride)
                for name in self.config.sensors
            }
        )
        self.mask_generator = BlockMaskGenerator(
            self.config.mask_patch_size, self.config.patch_size, self.config.mask_ratio
        )

    def add_sensor(self, sensor: Union[Sensor, str], init_from: Optional[str] = None) -> None:
        """Add a sensor: a patch embedding (see :meth:`MsGFMEncoder.add_sensor`) and a decoder."""
        if isinstance(sensor, str):
            sensor = get_sensor(sensor)
        self.encoder.add_sensor(sensor, init_from=init_from)
        reference = next(iter(self.decoders.values())).proj.weight
        decoder = SimMIMDecoder(
            self.config.stage_dims[-1], sensor.num_bands, self.config.encoder_stride
        )
        self.decoders[sensor.name] = decoder.to(device=reference.device, dtype=reference.dtype)

    def _check(self, sub_batch: SubBatch) -> None:
        name = sub_batch.sensor
        if name not in self.decoders:
            raise KeyError(
                f"sub-batch sensor {name!r} is not a sensor of this model {list(self.decoders)}"
            )
        if sub_batch.image.ndim != 4:
            raise ValueError(
                f"sub-batch {name!r}: image must be (B, C, H, W), got {tuple(sub_batch.image.shape)}"
            )
        if sub_batch.paired:
            partner = sub_batch.partner_sensor
            if partner not in self.decoders:
                raise KeyError(
                    f"sub-batch {name!r}: partner sensor {partner!r} is not a sensor of this "
                    f"model {list(self.decoders)}"
                )
            image, other = sub_batch.image, sub_batch.partner_image
            if other is None or other.ndim != 4 or other.shape[0] != image.shape[0]:
                raise ValueError(
                    f"sub-batch {name!r}: partner_image must be (B, C, H, W) with the same B as "
                    f"the image; got {None if other is None else tuple(other.shape)}"
                )
            if other.shape[-2:] != image.shape[-2:]:
                raise ValueError(
                    f"sub-batch {name!r}: partner {partner!r} images {tuple(other.shape[-2:])} "
                    f"must be co-registered on the same grid as {tuple(image.shape[-2:])}"
                )

    def forward(self, sub_batches: List[SubBatch]) -> PretrainOutput:
        """Masked reconstruction loss of one heterogeneous step.

        Args:
            sub_batches: Per-sensor sub-batches; any subset of the model's sensors.
        """
        if not sub_batches:
            raise ValueError("a pretraining step needs at least one sub-batch")
        for sub_batch in sub_batches:
            self._check(sub_batch)

        # Draw every mask and cross/self choice first, in sub-batch order (reproducible RNG use).
        block_masks: List[Tensor] = []
        cross_choices: List[Tensor] = []
        tokens: List[Tensor] = []
        for sub_batch in sub_batches:
            B, _, H, W = sub_batch.image.shape
            block_mask = self.mask_generator(B, H, W, device=sub_batch.image.device)
            if sub_batch.paired:
                cross = torch.rand(B) < self.config.p_cross
            else:
                cross = torch.zeros(B, dtype=torch.bool)
            block_masks.append(block_mask)
            cross_choices.append(cross.to(sub_batch.image.device))
            embedded = self.encoder.embed({sub_batch.sensor: sub_batch.image})
            tokens.append(
                self.encoder.apply_mask(embedded, self.mask_generator.to_tokens(block_mask))
            )

        last_features, aux_loss, expert_load = self._encode_grouped(tokens)

        sub_losses: List[Tensor] = []
        per_sensor: Dict[str, List[float]] = {}
        num_paired = num_cross = 0
        for sub_batch, features, block_mask, cross in zip(
            sub_batches, last_features, block_masks, cross_choices
        ):
            pixel_mask = self.mask_generator.to_pixels(block_mask)
            losses = []
            self_rows = ~cross
            if bool(self_rows.any()):
                prediction = self.decoders[sub_batch.sensor](features[self_rows])
                losses.append(
                    masked_l1_per_sample(
                        prediction, sub_batch.image[self_rows], pixel_mask[self_rows]
                    )
                )
            if bool(cross.any()):
                prediction = self.decoders[sub_batch.partner_sensor](features[cross])
                losses.append(
                    masked_l1_per_sample(
                        prediction, sub_batch.partner_image[cross], pixel_mask[cross]
                    )
                )
            sub_loss = torch.cat(losses).mean()
            sub_losses.append(sub_loss)
            per_sensor.setdefault(sub_batch.sensor, []).append(float(sub_loss.detach()))
            if sub_batch.paired:
                num_paired += int(cross.numel())
                num_cross += int(cross.sum())

        l1 = torch.stack(sub_losses).mean()
        loss = l1 + self.config.aux_loss_weight * aux_loss
        return PretrainOutput(
            loss=loss,
            l1=l1,
            aux_loss=aux_loss,
            per_sensor_loss={k: sum(v) / len(v) for k, v in per_sensor.items()},
            expert_load=expert_load.detach().cpu().tolist(),
            cross_fraction=num_cross / num_paired if num_paired else 0.0,
            num_paired=num_paired,
        )

    def _encode_grouped(self, tokens: List[Tensor]) -> Tuple[List[Tensor], Tensor, Tensor]:
        # Sub-batches with the same token grid run through the encoder as one batch: fewer, larger
        # matrix products, and the MoE balances its load over the whole step.
        groups: Dict[Tuple[int, int], List[int]] = {}
        for i, t in enumerate(tokens):
            groups.setdefault((t.shape[1], t.shape[2]), []).append(i)
        last: List[Optional[Tensor]] = [None] * len(tokens)
        aux_terms, load_terms, weights = [], [], []
        for members in groups.values():
            output = self.encoder.encode_tokens(torch.cat([tokens[i] for i in members]))
            sizes = [tokens[i].shape[0] for i in members]
            for i, features in zip(members, output.features[-1].split(sizes)):
                last[i] = features
            aux_terms.append(output.aux_loss)
            load_terms.append(output.expert_load)
            weights.append(float(sum(sizes)))
        total = sum(weights)
        aux_loss = sum(a * (w / total) for a, w in zip(aux_terms, weights))
        expert_load = sum(lo * (w / total) for lo, w in zip(load_terms, weights))
        return last, aux_loss, expert_load
