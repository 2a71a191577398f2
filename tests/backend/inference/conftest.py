"""Tiny real ONNX models for the inference tests, exported from torch modules with msGFM metadata.

Each model is a fixed (not trained) torch module whose output is known in closed form, exported with
the legacy exporter and a dynamic batch axis, so a test can compute the exact expected raster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
import pytest

from backend.export.schema import ClassInfo, InputSpec, OutputSpec

from ...onnx_models import export_with_metadata, input_spec, reflectance_output

# Tests import the exporter from here under this name.
export_model = export_with_metadata


def numbered_bands(n: int) -> List[str]:
    """Band names B1 ... Bn, for inputs that stand for no particular sensor's bands."""
    return [f"B{i + 1}" for i in range(n)]


def band_spec(name: str, sensor: str, n: int, mean: float, std: float, **kwargs) -> InputSpec:
    """An input of ``n`` bands named B1 ... Bn, all normalised by ``mean`` and ``std``."""
    return input_spec(name, sensor, numbered_bands(n), mean, std, **kwargs)


@pytest.fixture(scope="session")
def model_factory(tmp_path_factory) -> Callable[..., Path]:
    """Build (and cache per session) the test models by name."""
    import torch
    from torch import nn

    root = tmp_path_factory.mktemp("models")
    cache = {}

    class Identity(nn.Module):
        def forward(self, x):
            return x * 1.0

    class BoxMean(nn.Module):
        """A fixed 5 x 5 mean filter (zero padding): a 2-pixel receptive field at each side."""

        def __init__(self, bands: int):
            super().__init__()
            self.conv = nn.Conv2d(bands, bands, 5, padding=2, bias=False, groups=bands)
            with torch.no_grad():
                self.conv.weight.fill_(1.0 / 25.0)

        def forward(self, x):
            return self.conv(x)

    class Threshold(nn.Module):
        """Class scores [-x, x] of the first band: class 'above' where the value is above the mean."""

        def forward(self, x):
            first = x[:, :1]
            return torch.cat([-first, first], dim=1)

    class SceneMean(nn.Module):
        """Per-window probabilities: softmax of [-m, m], m = the window's mean normalised value."""

        def forward(self, x):
            m = x[:, :1].mean(dim=(2, 3))
            return torch.softmax(torch.cat([-m, m], dim=1), dim=1)

    class PooledEmbedding(nn.Module):
        """A stride-4 embedding: 4 x 4 average of each band and of its square."""

        def __init__(self):
            super().__init__()
            self.pool = nn.AvgPool2d(4)

        def forward(self, x):
            return torch.cat([self.pool(x), self.pool(x * x)], dim=1)

    class SumSensors(nn.Module):
        def forward(self, a, b):
            return a + b

    classes = [
        ClassInfo(value=1, name="below mean", color="#2b83ba"),
        ClassInfo(value=7, name="above mean", color="#d7191c"),
    ]

    def build(
        name: str, bands: int = 1, tile: int = 32, mean: float = 100.0, std: float = 50.0, **kwargs
    ) -> Path:
        key = (name, bands, tile, mean, std, tuple(sorted(kwargs.items())))  # hashable values
        if key in cache:
            return cache[key]
        path = root / f"{name}_{bands}b_{tile}px_{len(cache)}.onnx"
        band_names = numbered_bands(bands)
        spec = band_spec(
            "image",
            kwargs.pop("sensor", "s2"),
            bands,
            mean,
            std,
            normalization=kwargs.pop("normalization", "mean_std"),
        )
        inputs = [spec]
        valid_range = kwargs.pop("valid_range", None)  # a (low, high) tuple
        valid_range = list(valid_range) if valid_range is not None else None
        if name == "identity":
            module = Identity()
            # output_sensor: the sensor whose units the output is in (None: no sensor's).
            output_sensor = kwargs.pop("output_sensor", None)
            outputs = [
                reflectance_output(
                    band_names, mean, std, valid_range=valid_range, sensor=output_sensor
                )
            ]
        elif name == "boxmean":
            module, outputs = BoxMean(bands), [reflectance_output(band_names, mean, std)]
        elif name == "threshold":
            module = Threshold()
            outputs = [OutputSpec(name="landcover", kind="class", bands=["class"], classes=classes)]
        elif name == "scene":
            module = SceneMean()
            outputs = [
                OutputSpec(
                    name="scene",
                    kind="probability",
                    bands=["below mean", "above mean"],
                    classes=classes,
                    stride=tile,
                )
            ]
        elif name == "embedding":
            module = PooledEmbedding()
            outputs = [
                OutputSpec(
                    name="embedding",
                    kind="embedding",
                    bands=[f"f{i}" for i in range(2 * bands)],
                    stride=4,
                )
            ]
        elif name == "two_sensors":
            second = band_spec("dem", "dsm", bands, mean, std)
            output = reflectance_output(
                band_names, 2 * mean, std, sensor=kwargs.pop("output_sensor", None)
            )
            module, outputs, inputs = SumSensors(), [output], [spec, second]
        else:
            raise KeyError(name)
        cache[key] = export_model(module, path, inputs, outputs, tile, **kwargs)
        return cache[key]

    return build


def read_raster(path: Path, band: Optional[int] = None) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.read(band) if band else dataset.read()


def s2_band_and_its_vv(sample_data: Path) -> Tuple[Path, Path]:
    """A BigEarthNet Sentinel-2 B04 file and the VV file of its Sentinel-1 partner: two real
    rasters on one 120 x 120 grid (uint16 reflectance x 10000 and float32 dB)."""
    import json

    s2_band = next((sample_data / "bigearthnet/S2").glob("*/*_B04.tif"))
    partners = {
        json.loads(p.read_text())["corresponding_s2_patch"]: p.parent
        for p in (sample_data / "bigearthnet/S1").glob("*/*_labels_metadata.json")
    }
    assert s2_band.parent.name in partners
    return s2_band, next(partners[s2_band.parent.name].glob("*_VV.tif"))
