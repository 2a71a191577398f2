"""Tiny real ONNX models for the inference tests, exported from torch modules with msGFM metadata.

Each model is a fixed (not trained) torch module whose output is known in closed form, exported with
the legacy exporter and a dynamic batch axis, so a test can compute the exact expected raster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import pytest

from backend.export.schema import ClassInfo, InputSpec, ModelMetadata, OutputSpec, embed_metadata


def export_model(
    module,
    path: Path,
    inputs: List[InputSpec],
    outputs: List[OutputSpec],
    tile_size: int,
    default_overlap: float = 0.25,
    task: str = "segmentation",
    dynamic_space: bool = True,
) -> Path:
    """Export ``module`` (taking one tensor per input) to ``path`` with msGFM metadata."""
    import onnx
    import torch

    module.eval()
    examples = tuple(torch.zeros(1, len(spec.bands), tile_size, tile_size) for spec in inputs)
    axes = {}
    for spec in inputs:
        axes[spec.name] = {0: "batch", 2: "height", 3: "width"} if dynamic_space else {0: "batch"}
    for spec in outputs:
        axes[spec.name] = {0: "batch"}
    torch.onnx.export(
        module,
        examples,
        str(path),
        input_names=[spec.name for spec in inputs],
        output_names=[spec.name for spec in outputs],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load(str(path))
    metadata = ModelMetadata(
        task=task,
        inputs=inputs,
        outputs=outputs,
        tile_size=tile_size,
        default_overlap=default_overlap,
        model_name=path.stem,
        model_version="0.0.1-test",
        trained_on="not trained: fixed weights for tests",
    )
    embed_metadata(proto, metadata)
    onnx.save(proto, str(path))
    return path


def band_spec(name: str, sensor: str, n: int, mean: float, std: float, **kwargs) -> InputSpec:
    return InputSpec(
        name=name,
        sensor=sensor,
        bands=[f"B{i + 1}" for i in range(n)],
        mean=[mean] * n,
        std=[std] * n,
        **kwargs,
    )


def reflectance_output(n: int, mean: float, std: float, name: str = "reflectance") -> OutputSpec:
    """An output that undoes the input normalisation: raw * std + mean."""
    return OutputSpec(
        name=name,
        kind="reflectance",
        bands=[f"B{i + 1}" for i in range(n)],
        scale=[std] * n,
        offset=[mean] * n,
    )


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
        key = (name, bands, tile, mean, std, tuple(sorted(kwargs.items())))
        if key in cache:
            return cache[key]
        path = root / f"{name}_{bands}b_{tile}px_{len(cache)}.onnx"
        spec = band_spec(
            "image",
            kwargs.pop("sensor", "s2"),
            bands,
            mean,
            std,
            normalization=kwargs.pop("normalization", "mean_std"),
        )
        if name == "identity":
            module, outputs = Identity(), [reflectance_output(bands, mean, std)]
        elif name == "boxmean":
            module, outputs = BoxMean(bands), [reflectance_output(bands, mean, std)]
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
            module, outputs = SumSensors(), [reflectance_output(bands, 2 * mean, std)]
            path = export_model(module, path, [spec, second], outputs, tile, **kwargs)
            cache[key] = path
            return path
        else:
            raise KeyError(name)
        cache[key] = export_model(module, path, [spec], outputs, tile, **kwargs)
        return cache[key]

    return build


def read_raster(path: Path, band: Optional[int] = None) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.read(band) if band else dataset.read()
