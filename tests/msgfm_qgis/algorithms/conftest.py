"""Small exported models with fixed weights for the analysis algorithms, and real input rasters.

Every model's output is known in closed form, so a test computes the expected raster by hand in
numpy from the real input. Inputs are the real samples (``sample_data``), re-arranged where a
sensor's bands come as one file each (BigEarthNet): a VRT stacks them without copying pixels.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List

import numpy as np
import pytest
from qgis.core import QgsProcessingFeedback

# Tests (test_modeler) import the exporter and the input helper from here under these names.
from ...onnx_models import export_with_metadata as export
from ...onnx_models import input_spec as spec
from ...onnx_models import reflectance_output

S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
S2_MEAN, S2_STD = 1000.0, 1000.0
SAR_MEAN, SAR_STD = -15.0, 5.0
PAN_MEAN, PAN_STD = 300.0, 100.0
MS_MEAN, MS_STD = 400.0, 150.0
DEM_MEAN, DEM_STD = 300.0, 20.0
BIGEARTHNET_PATCH = "87_48"  # S2A_MSIL2A_20170613T101031_87_48 and its S1 pair (33UUP)
OTHER_PATCH = "36_85"  # a patch elsewhere in Europe (29UPU)


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("analysis_models")


@pytest.fixture(scope="session")
def scene_model(models_root) -> Path:
    """Scene classification, one prediction per 40 px window of RGB.

    Class probabilities are softmax([m_R - m_G, m_G - m_B, m_B - m_R]) of the window means of the
    normalised bands (RGB mean 120, std 50).
    """
    import torch

    from backend.export.schema import ClassInfo, OutputSpec

    class SceneMeans(torch.nn.Module):
        def forward(self, rgb):
            m = rgb.mean(dim=(2, 3))
            r, g, b = m[:, 0:1], m[:, 1:2], m[:, 2:3]
            return torch.softmax(torch.cat([r - g, g - b, b - r], dim=1), dim=1)

    names = ["reddish", "greenish", "bluish"]
    colors = ["#d7191c", "#1a9641", "#2b83ba"]
    output = OutputSpec(
        name="scene",
        kind="probability",
        bands=names,
        classes=[
            ClassInfo(value=k + 1, name=n, color=c) for k, (n, c) in enumerate(zip(names, colors))
        ],
        stride=40,
    )
    inputs = [spec("rgb", "rgb", ["R", "G", "B"], 120.0, 50.0)]
    return export(SceneMeans(), models_root / "scenes.onnx", inputs, [output], 40, "classification")


@pytest.fixture(scope="session")
def cloud_removal_model(models_root) -> Path:
    """S2 (12 bands) + SAR (VV, VH) -> S2 reflectance: raw S2 + 100 x mean of the normalised SAR."""
    import torch

    class SarNudge(torch.nn.Module):
        def forward(self, s2, sar):
            return s2 + 0.1 * sar.mean(dim=1, keepdim=True)

    inputs = [
        spec("s2", "s2", S2_BANDS, S2_MEAN, S2_STD),
        spec("sar", "sar", ["VV", "VH"], SAR_MEAN, SAR_STD),
    ]
    output = reflectance_output(S2_BANDS, S2_MEAN, S2_STD, sensor="s2")
    return export(SarNudge(), models_root / "clouds.onnx", inputs, [output], 32, "cloud-removal")


@pytest.fixture(scope="session")
def s2_only_cloud_removal_model(models_root) -> Path:
    """:func:`cloud_removal_model` whose metadata marks SAR optional (as export does for a model
    trained with S2 patches without SAR): fed as training fed those, SAR is 0 after normalisation,
    so its output is the S2 input itself, and any other SAR feed moves it."""
    import torch

    class SarNudge(torch.nn.Module):
        def forward(self, s2, sar):
            return s2 + 0.1 * sar.mean(dim=1, keepdim=True)

    inputs = [
        spec("s2", "s2", S2_BANDS, S2_MEAN, S2_STD),
        spec("sar", "sar", ["VV", "VH"], SAR_MEAN, SAR_STD, optional=True),
    ]
    output = reflectance_output(S2_BANDS, S2_MEAN, S2_STD, sensor="s2")
    path = models_root / "clouds_s2_only.onnx"
    return export(SarNudge(), path, inputs, [output], 32, "cloud-removal")


@pytest.fixture(scope="session")
def s2_only_patch(sample_data, tmp_path_factory) -> Path:
    """A real BigEarthNet S2 patch without an S1 partner (bigearthnet_extra 32_39, Serbia) as
    one 12-band raster."""
    folder = next((sample_data / "bigearthnet_extra" / "S2").glob("*_32_39"))
    files = [next(folder.glob(f"*_{band}.tif")) for band in S2_BANDS]
    return stack(files, tmp_path_factory.mktemp("s2_only") / "s2_32_39.vrt", S2_BANDS)


@pytest.fixture(scope="session")
def pansharpening_model(models_root) -> Path:
    """PAN + 4-band MS -> MS at PAN resolution: normalised MS + normalised PAN, in MS units."""
    import torch

    class AddPan(torch.nn.Module):
        def forward(self, ms, pan):
            return ms + pan

    bands = ["B1", "B2", "B3", "B4"]
    inputs = [
        spec("ms", "ms", bands, MS_MEAN, MS_STD),
        spec("pan", "pan", ["PAN"], PAN_MEAN, PAN_STD),
    ]
    output = reflectance_output(bands, MS_MEAN, MS_STD, name="sharpened")
    return export(AddPan(), models_root / "pansharpen.onnx", inputs, [output], 64, "pansharpening")


@pytest.fixture(scope="session")
def embedding_model(models_root) -> Path:
    """Elevation -> stride-4 embedding: 4 x 4 means of the normalised DEM and of its square."""
    import torch

    from backend.export.schema import OutputSpec

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = torch.nn.AvgPool2d(4)

        def forward(self, dsm):
            return torch.cat([self.pool(dsm), self.pool(dsm * dsm)], dim=1)

    output = OutputSpec(name="embedding", kind="embedding", bands=["f0", "f1"], stride=4)
    inputs = [spec("dsm", "dsm", ["elevation"], DEM_MEAN, DEM_STD)]
    return export(Pooled(), models_root / "embedding.onnx", inputs, [output], 32, "embedding")


def stack(paths: List[Path], out: Path, descriptions: List[str]) -> Path:
    """A VRT stacking single-band files on the finest grid (nearest), bands described by name."""
    from osgeo import gdal

    dataset = gdal.BuildVRT(str(out), [str(p) for p in paths], separate=True, resolution="highest")
    for index, text in enumerate(descriptions, start=1):
        dataset.GetRasterBand(index).SetDescription(text)
    dataset = None  # closing writes the VRT
    return out


def bigearthnet_folder(sample_data: Path, sensor: str, patch: str) -> Path:
    return next((sample_data / "bigearthnet" / sensor).glob(f"*_{patch}"))


@pytest.fixture(scope="session")
def s2_stack(sample_data, tmp_path_factory) -> Path:
    """The real BigEarthNet S2 patch 87_48 as one 12-band raster (B01...B12, 120 x 120 at 10 m)."""
    folder = bigearthnet_folder(sample_data, "S2", BIGEARTHNET_PATCH)
    files = [next(folder.glob(f"*_{band}.tif")) for band in S2_BANDS]
    return stack(files, tmp_path_factory.mktemp("s2") / "s2_87_48.vrt", S2_BANDS)


def sar_stack(sample_data: Path, folder: Path, patch: str) -> Path:
    s1 = bigearthnet_folder(sample_data, "S1", patch)
    files = [next(s1.glob("*_VV.tif")), next(s1.glob("*_VH.tif"))]
    return stack(files, folder / f"s1_{patch}.vrt", ["VV", "VH"])


@pytest.fixture(scope="session")
def s1_stack(sample_data, tmp_path_factory) -> Path:
    """The S1 pair of :func:`s2_stack` (VV, VH in dB, same grid)."""
    return sar_stack(sample_data, tmp_path_factory.mktemp("s1"), BIGEARTHNET_PATCH)


@pytest.fixture(scope="session")
def s1_elsewhere(sample_data, tmp_path_factory) -> Path:
    """A real S1 patch of another place: it does not overlap :func:`s2_stack`."""
    return sar_stack(sample_data, tmp_path_factory.mktemp("s1_other"), OTHER_PATCH)


def read(path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.read()


def grid(path) -> dict:
    """What must be equal between an output and its reference: CRS, transform, size (and nodata).

    The CRS is compared as parsed from WKT: a WKT round trip may print the same numbers differently.
    """
    import rasterio

    with rasterio.open(path) as dataset:
        return {
            "crs": rasterio.crs.CRS.from_wkt(dataset.crs.to_wkt()) if dataset.crs else None,
            "transform": tuple(dataset.transform)[:6],
            "size": (dataset.width, dataset.height),
            "nodata": dataset.nodata,
            "count": dataset.count,
        }


class RecordingFeedback(QgsProcessingFeedback):
    """Feedback that keeps what the algorithm reported (Python-side calls land here)."""

    def __init__(self, cancel_at_step=None):
        super().__init__()
        self.progress, self.texts, self.infos, self.console = [], [], [], []
        self.cancel_at_step = cancel_at_step
        self.cancelled_at = None
        self.progressChanged.connect(self.progress.append)

    def setProgressText(self, text):
        # QgsFeedback emits progressChanged only for changes of 0.1 %: steps are seen here.
        self.texts.append(text)
        if self.cancel_at_step and text.startswith(f"step {self.cancel_at_step}/"):
            self.cancelled_at = time.monotonic()
            self.cancel()

    def pushInfo(self, info):
        self.infos.append(info)

    def pushConsoleInfo(self, info):
        self.console.append(info)


@pytest.fixture
def no_encoder(monkeypatch):
    """Fail the test if anything opens an ONNX model or starts an engine run."""
    import onnxruntime

    from msgfm_qgis.algorithms import embeddings_base

    def refuse(*args, **kwargs):
        raise AssertionError("the encoder ran")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    monkeypatch.setattr(embeddings_base, "run_job", refuse)
