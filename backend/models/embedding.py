"""Sensor patch embeddings and their initialisation from another sensor's nearest bands.

Each sensor has its own ``Conv2d(C_sensor, D, patch, stride=patch) + LayerNorm`` that maps its
bands into the token space all sensors share.
"""

from __future__ import annotations

from typing import List

import torch
from torch import Tensor, nn

from ..sensors import Sensor


class SensorPatchEmbedding(nn.Module):
    """Patch embedding of one sensor: ``(B, C, H, W)`` to tokens ``(B, H/p, W/p, D)``."""

    def __init__(self, sensor: Sensor, embed_dim: int, patch_size: int):
        super().__init__()
        self.sensor_name = sensor.name
        self.in_chans = sensor.num_bands
        self.patch_size = patch_size
        self.proj = nn.Conv2d(sensor.num_bands, embed_dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, image: Tensor) -> Tensor:
        if image.ndim != 4 or image.shape[1] != self.in_chans:
            raise ValueError(
                f"sensor {self.sensor_name!r} expects images (B, {self.in_chans}, H, W); "
                f"got shape {tuple(image.shape)}"
            )
        return self.norm(self.proj(image).permute(0, 2, 3, 1))


def nearest_band_sources(target: Sensor, source: Sensor) -> List[int]:
    """For each band of ``target``, the index of the ``source`` band to copy weights from.

    A band with the same canonical name is used first; otherwise the source band with the nearest
    central wavelength.

    Raises:
        ValueError: A target band has no same-named source band and one of the sensors has no
            wavelengths (SAR, elevation), so there is no sensible nearest band.
    """
    indexes = []
    for i, band in enumerate(target.bands):
        if band in source.bands:
            indexes.append(source.bands.index(band))
            continue
        if target.wavelengths_nm is None or source.wavelengths_nm is None:
            raise ValueError(
                f"cannot initialise sensor {target.name!r} band {band} from sensor "
                f"{source.name!r}: no band of that name and no wavelengths to match; "
                f"add the sensor without init_from"
            )
        wavelength = target.wavelengths_nm[i]
        distances = [abs(w - wavelength) for w in source.wavelengths_nm]
        indexes.append(min(range(len(distances)), key=distances.__getitem__))
    return indexes


@torch.no_grad()
def init_from_nearest_bands(
    target: SensorPatchEmbedding,
    target_sensor: Sensor,
    source: SensorPatchEmbedding,
    source_sensor: Sensor,
) -> List[int]:
    """Copy the input-channel weights of the nearest source bands into a new embedding.

    Bias and LayerNorm are copied as they are: they act on the shared token space.

    Returns:
        The source band index used for each target band.
    """
    indexes = nearest_band_sources(target_sensor, source_sensor)
    target.proj.weight.copy_(source.proj.weight[:, indexes])
    if source.proj.bias is not None and target.proj.bias is not None:
        target.proj.bias.copy_(source.proj.bias)
    target.norm.load_state_dict(source.norm.state_dict())
    return indexes
