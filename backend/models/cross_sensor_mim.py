"""Cross-sensor masked image modelling: the msGFM pretraining model and objective.

A step takes per-sensor sub-batches (heterogeneous batches). Each image is block-masked, encoded by
the shared encoder (all sub-batches of one image size in a single pass, so the MoE routes them
together) and reconstructed from the last stage by a per-sensor SimMIM decoder; the loss is L1 on
the masked pixels. A paired sample (co-registered with a partner sensor) is decoded with
probability ``p_cross`` by the partner's decoder against the partner's image (cross-sensor
reconstruction), otherwise by its own; unpaired samples always reconstruct themselves. Only pixels with data are scored: each image
carries a valid map, and a sample with no valid masked pixel adds nothing to the loss.

With ``align_weight > 0`` each sample also has a second view of its ground window — its partner
sensor when paired, a shifted and flipped crop of the same scene otherwise — which is masked,
encoded and reconstructed the same way; the pooled embeddings of the two views (the stages an
exported embedding carries, mean over the window) go through a small projector and an InfoNCE
loss pulls each sample's two views together and pushes the other samples of the step away. This
is the "align the pooled features of the two sensors of a paired crop" term: masked
reconstruction alone left the pooled embeddings of a small corpus nearly one-dimensional.

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
from .embedding_head import embedding_stages, embedding_width, pooled_stage_features
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
        valid: ``(B, H, W)`` bool, True where ``image`` has data (None: everywhere).
        partner_valid: The same for ``partner_image``.
        view_image: ``(B, C_sensor, H, W)`` a second crop of each (unpaired) sample's scene.
        view_valid: The same as ``valid`` for ``view_image``.
    """

    sensor: str
    image: Tensor
    partner_sensor: Optional[str] = None
    partner_image: Optional[Tensor] = None
    valid: Optional[Tensor] = None
    partner_valid: Optional[Tensor] = None
    view_image: Optional[Tensor] = None
    view_valid: Optional[Tensor] = None

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
        align_loss: InfoNCE loss between the two views (0 when alignment is off).
        align_accuracy: Share of samples whose nearest other-view embedding is their own.
        variance_loss, covariance_loss: VICReg's terms on the pooled embedding (0 when off).
        drop_fraction: Per MoE block, the share of routing assignments dropped at capacity.
    """

    loss: Tensor
    l1: Tensor
    aux_loss: Tensor
    per_sensor_loss: Dict[str, float] = field(default_factory=dict)
    expert_load: List[List[float]] = field(default_factory=list)
    cross_fraction: float = 0.0
    num_paired: int = 0
    align_loss: float = 0.0
    align_accuracy: float = 0.0
    variance_loss: float = 0.0
    covariance_loss: float = 0.0
    drop_fraction: List[float] = field(default_factory=list)


def masked_l1_per_sample(
    prediction: Tensor, target: Tensor, pixel_mask: Tensor, valid: Optional[Tensor] = None
) -> Tensor:
    """Mean absolute error over the masked pixels with data and all bands, one value per sample.

    Args:
        prediction: ``(B, C, H, W)``.
        target: ``(B, C, H, W)``.
        pixel_mask: ``(B, H, W)``, 1 where masked.
        valid: ``(B, H, W)``, 1 where the target has data (None: everywhere). A sample without
            any masked pixel with data scores 0 (see :func:`scored_samples`).
    """
    mask = pixel_mask if valid is None else pixel_mask & valid.to(torch.bool)
    mask = mask.unsqueeze(1).to(prediction.dtype)
    error = ((prediction - target).abs() * mask).sum(dim=(1, 2, 3))
    return error / (mask.sum(dim=(1, 2, 3)) * prediction.shape[1]).clamp_min(1.0)


def scored_samples(pixel_mask: Tensor, valid: Optional[Tensor]) -> Tensor:
    """``(B,)`` bool: samples with at least one masked pixel that has data."""
    mask = pixel_mask if valid is None else pixel_mask & valid.to(torch.bool)
    return mask.flatten(1).any(dim=1)


def info_nce(first: Tensor, second: Tensor, temperature: float) -> Tuple[Tensor, float]:
    """Symmetric InfoNCE between two views: row ``i`` of each is the same ground window.

    Returns:
        ``(loss, accuracy)``: accuracy is the share of rows whose most similar row of the other
        view is their own.
    """
    first = nn.functional.normalize(first.float(), dim=1)
    second = nn.functional.normalize(second.float(), dim=1)
    logits = first @ second.T / temperature
    target = torch.arange(len(first), device=first.device)
    loss = 0.5 * (
        nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target)
    )
    accuracy = float((logits.argmax(dim=1) == target).float().mean())
    return loss, accuracy


def variance_covariance(embeddings: Tensor, target_std: float = 1.0) -> Tuple[Tensor, Tensor]:
    """VICReg's anti-collapse terms of a batch of embeddings ``(N, D)``.

    Returns:
        ``(variance, covariance)``: the mean over features of ``relu(target_std - std)`` (each
        feature keeps a spread across the batch) and the sum of squared off-diagonal covariances
        divided by ``D`` (features do not all say the same thing). Both are 0 for a batch of
        fewer than two rows (no spread to measure).
    """
    z = embeddings.float()
    if len(z) < 2:
        zero = z.sum() * 0.0
        return zero, zero
    z = z - z.mean(dim=0)
    std = torch.sqrt(z.var(dim=0) + 1e-4)
    variance = torch.relu(target_std - std).mean()
    cov = (z.T @ z) / (len(z) - 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    covariance = off_diagonal.pow(2).sum() / z.shape[1]
    return variance, covariance


class AlignmentProjector(nn.Module):
    """The small MLP between the pooled embedding and the alignment loss (SimCLR's projector:
    the loss shapes the projection, the embedding before it keeps more of the image)."""

    def __init__(self, in_dim: int, hidden: int = 256, out_dim: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, out_dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


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
        self.projector = (
            AlignmentProjector(embedding_width(self.config))
            if self.config.align_weight > 0
            else None
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
        """Masked reconstruction (and, when enabled, alignment) loss of one heterogeneous step.

        Args:
            sub_batches: Per-sensor sub-batches; any subset of the model's sensors.
        """
        if not sub_batches:
            raise ValueError("a pretraining step needs at least one sub-batch")
        for sub_batch in sub_batches:
            self._check(sub_batch)
        align = self.projector is not None

        # Views to encode: each sub-batch's images (mask, then cross/self draws, in sub-batch
        # order), then with alignment each one's second view (its mask drawn after all of them).
        views: List[Dict] = []
        for index, sub_batch in enumerate(sub_batches):
            B, _, H, W = sub_batch.image.shape
            block_mask = self.mask_generator(B, H, W, device=sub_batch.image.device)
            if sub_batch.paired:
                cross = torch.rand(B) < self.config.p_cross
            else:
                cross = torch.zeros(B, dtype=torch.bool)
            views.append(
                dict(
                    owner=index,
                    sensor=sub_batch.sensor,
                    image=sub_batch.image,
                    valid=sub_batch.valid,
                    cross=cross.to(sub_batch.image.device),
                    block_mask=block_mask,
                )
            )
        if align:
            for index, sub_batch in enumerate(sub_batches):
                if sub_batch.paired:
                    sensor, image, valid = (
                        sub_batch.partner_sensor,
                        sub_batch.partner_image,
                        sub_batch.partner_valid,
                    )
                elif sub_batch.view_image is not None:
                    sensor, image, valid = (
                        sub_batch.sensor,
                        sub_batch.view_image,
                        sub_batch.view_valid,
                    )
                else:
                    continue
                views.append(
                    dict(
                        owner=index,
                        sensor=sensor,
                        image=image,
                        valid=valid,
                        cross=torch.zeros(image.shape[0], dtype=torch.bool, device=image.device),
                        second=True,
                    )
                )
        tokens: List[Tensor] = []
        for view in views:
            if "block_mask" not in view:
                B, _, H, W = view["image"].shape
                view["block_mask"] = self.mask_generator(B, H, W, device=view["image"].device)
            embedded = self.encoder.embed({view["sensor"]: view["image"]})
            tokens.append(
                self.encoder.apply_mask(embedded, self.mask_generator.to_tokens(view["block_mask"]))
            )

        all_features, aux_loss, expert_load = self._encode_grouped(tokens)

        sample_losses: List[Tensor] = []
        sample_scored: List[Tensor] = []
        per_sensor: Dict[str, List[float]] = {}
        num_paired = num_cross = 0
        for view, features in zip(views, all_features):
            sub_batch = sub_batches[view["owner"]]
            last = features[-1]
            pixel_mask = self.mask_generator.to_pixels(view["block_mask"])
            cross = view["cross"]
            losses = torch.zeros(len(cross), device=last.device, dtype=torch.float32)
            scored = torch.zeros(len(cross), device=last.device, dtype=torch.bool)
            self_rows = ~cross
            if bool(self_rows.any()):
                valid = None if view["valid"] is None else view["valid"][self_rows]
                prediction = self.decoders[view["sensor"]](last[self_rows])
                losses[self_rows] = masked_l1_per_sample(
                    prediction, view["image"][self_rows], pixel_mask[self_rows], valid
                ).float()
                scored[self_rows] = scored_samples(pixel_mask[self_rows], valid)
            if bool(cross.any()):
                valid = None if sub_batch.partner_valid is None else sub_batch.partner_valid[cross]
                prediction = self.decoders[sub_batch.partner_sensor](last[cross])
                losses[cross] = masked_l1_per_sample(
                    prediction, sub_batch.partner_image[cross], pixel_mask[cross], valid
                ).float()
                scored[cross] = scored_samples(pixel_mask[cross], valid)
            sample_losses.append(losses)
            sample_scored.append(scored)
            if bool(scored.any()):
                per_sensor.setdefault(view["sensor"], []).append(
                    float(losses[scored].detach().mean())
                )
            if sub_batch.paired and not view.get("second"):
                num_paired += int(cross.numel())
                num_cross += int(cross.sum())

        losses = torch.cat(sample_losses)
        scored = torch.cat(sample_scored)
        # Samples without a masked pixel with data (a crop of no-data collar) add nothing.
        l1 = losses[scored].mean() if bool(scored.any()) else losses.sum() * 0.0
        loss = l1 + self.config.aux_loss_weight * aux_loss
        align_loss = align_accuracy = 0.0
        variance = covariance = 0.0
        if self.config.variance_weight > 0 or self.config.covariance_weight > 0:
            # Anti-collapse on the embedding users get (pooled over the exported stages) of
            # every first view: the masked modelling alone lets its effective rank collapse.
            stages = embedding_stages(self.config)
            pooled = torch.cat(
                [
                    pooled_stage_features(features, stages).mean(dim=(2, 3))
                    for view, features in zip(views, all_features)
                    if not view.get("second")
                ]
            )
            var_term, cov_term = variance_covariance(pooled)
            loss = (
                loss
                + self.config.variance_weight * var_term
                + self.config.covariance_weight * cov_term
            )
            variance, covariance = float(var_term.detach()), float(cov_term.detach())
        if align:
            first, second = self._view_embeddings(views, all_features)
            if first is not None and len(first) >= 2:
                term, align_accuracy = info_nce(
                    self.projector(first), self.projector(second), self.config.align_temperature
                )
                loss = loss + self.config.align_weight * term
                align_loss = float(term.detach())
        return PretrainOutput(
            loss=loss,
            l1=l1,
            aux_loss=aux_loss,
            per_sensor_loss={k: sum(v) / len(v) for k, v in per_sensor.items()},
            expert_load=expert_load.detach().cpu().tolist(),
            cross_fraction=num_cross / num_paired if num_paired else 0.0,
            num_paired=num_paired,
            align_loss=align_loss,
            align_accuracy=align_accuracy,
            variance_loss=variance,
            covariance_loss=covariance,
            drop_fraction=self.encoder.drop_fractions() if self.training else [],
        )

    def _view_embeddings(
        self, views: List[Dict], all_features: List[List[Tensor]]
    ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        # Pooled embeddings of first and second views, rows matched by sample.
        stages = embedding_stages(self.config)
        firsts: Dict[int, Tensor] = {}
        pairs_first, pairs_second = [], []
        for view, features in zip(views, all_features):
            pooled = pooled_stage_features(features, stages).mean(dim=(2, 3))
            if view.get("second"):
                pairs_first.append(firsts[view["owner"]])
                pairs_second.append(pooled)
            else:
                firsts[view["owner"]] = pooled
        if not pairs_first:
            return None, None
        return torch.cat(pairs_first), torch.cat(pairs_second)

    def _encode_grouped(self, tokens: List[Tensor]) -> Tuple[List[List[Tensor]], Tensor, Tensor]:
        # Views with the same token grid run through the encoder as one batch: fewer, larger
        # matrix products, and the MoE balances its load over the whole step.
        groups: Dict[Tuple[int, int], List[int]] = {}
        for i, t in enumerate(tokens):
            groups.setdefault((t.shape[1], t.shape[2]), []).append(i)
        features: List[Optional[List[Tensor]]] = [None] * len(tokens)
        aux_terms, load_terms, weights = [], [], []
        for members in groups.values():
            output = self.encoder.encode_tokens(torch.cat([tokens[i] for i in members]))
            sizes = [tokens[i].shape[0] for i in members]
            per_stage = [stage.split(sizes) for stage in output.features]
            for position, i in enumerate(members):
                features[i] = [stage[position] for stage in per_stage]
            aux_terms.append(output.aux_loss)
            load_terms.append(output.expert_load)
            weights.append(float(sum(sizes)))
        total = sum(weights)
        aux_loss = sum(a * (w / total) for a, w in zip(aux_terms, weights))
        expert_load = sum(lo * (w / total) for lo, w in zip(load_terms, weights))
        return features, aux_loss, expert_load
