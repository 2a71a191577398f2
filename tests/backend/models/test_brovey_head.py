"""The pan-sharpening head on real SpaceNet-6 WorldView-2 tiles: before finetuning the model *is*
the Brovey transform (the acceptance suite's classical method), in torch and in the exported ONNX
graph, whatever statistics the inputs are normalised with; after any finetuning its spectral
angles are still Brovey's; the spectral angle loss is the angle."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch

from backend.accept.metrics import brovey, match_pan
from backend.models.config import get_config
from backend.models.heads import BroveyResidualImageHead
from backend.models.tasks import TaskSpec, build_task_model, spectral_angle_loss

TILE = 64
# Statistics other than the registry's (a run's own), so a head that ignored them would fail.
NORMALIZATION = {
    "pan": {"mean": [420.0], "std": [160.0]},
    "ms": {"mean": [300.0, 330.0, 280.0, 450.0], "std": [90.0, 110.0, 120.0, 200.0]},
}


@pytest.fixture(scope="module")
def raw_tiles(sample_data: Path) -> Dict[str, np.ndarray]:
    """Raw DN of reduced-resolution pan + upsampled MS tiles of pair 1 (fully imaged)."""
    from backend.data.tasks import PanSharpeningDataset

    pairs = [(sample_data / "pan_ms/pan1.tif", sample_data / "pan_ms/ms1.tif")]
    dataset = PanSharpeningDataset(pairs, mode="reduced", tile_size=TILE)
    samples = [dataset[i] for i in range(3)]
    return {
        "pan": np.stack([s["inputs"]["pan"] for s in samples]).astype(np.float32),
        "ms": np.stack([s["inputs"]["ms"] for s in samples]).astype(np.float32),
        "target": np.stack([s["target"] for s in samples]).astype(np.float32),
    }


def _normalised(raw: np.ndarray, sensor: str) -> np.ndarray:
    mean = np.asarray(NORMALIZATION[sensor]["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(NORMALIZATION[sensor]["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    return ((raw - mean) / std).astype(np.float32)


def _in_dn(normalised: np.ndarray) -> np.ndarray:
    mean = np.asarray(NORMALIZATION["ms"]["mean"]).reshape(1, -1, 1, 1)
    std = np.asarray(NORMALIZATION["ms"]["std"]).reshape(1, -1, 1, 1)
    return normalised.astype(np.float64) * std + mean


def _classical(raw: Dict[str, np.ndarray]) -> np.ndarray:
    """The acceptance suite's Brovey, tile by tile."""
    return np.stack(
        [brovey(ms, match_pan(pan[0], ms.mean(axis=0))) for pan, ms in zip(raw["pan"], raw["ms"])]
    )


def _untrained_model():
    torch.manual_seed(0)
    spec = TaskSpec("pansharpening", ["pan", "ms"], image_size=TILE)
    model = build_task_model(get_config("lite"), spec).eval()
    model.set_normalization(NORMALIZATION)
    return model


def test_untrained_model_is_the_brovey_transform(raw_tiles):
    model = _untrained_model()
    assert isinstance(model.head, BroveyResidualImageHead)
    inputs = {s: torch.from_numpy(_normalised(raw_tiles[s], s)) for s in ("pan", "ms")}
    with torch.no_grad():
        output = model(inputs).numpy()
    expected = _classical(raw_tiles)
    np.testing.assert_allclose(_in_dn(output), expected, rtol=1e-4, atol=0.05)
    # Brovey differs from the upsampled MS by far more than the tolerance (pan detail).
    assert np.abs(expected - raw_tiles["ms"]).mean() > 20.0


def test_any_correction_keeps_the_spectral_angles_of_brovey(raw_tiles):
    model = _untrained_model()
    with torch.no_grad():  # a trained-looking, non-zero correction
        model.head.out.weight.normal_(0.0, 0.05)
        model.head.out.bias.fill_(0.2)
        inputs = {s: torch.from_numpy(_normalised(raw_tiles[s], s)) for s in ("pan", "ms")}
        output = _in_dn(model(inputs).numpy())
    expected = _classical(raw_tiles)
    assert np.abs(output - expected).mean() > 20.0  # the correction changes the image ...
    cosine = (output * expected).sum(axis=1) / (
        np.linalg.norm(output, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))).max() < 0.01  # ... not a spectrum
    gain = output / expected
    assert gain.min() >= math.exp(-1.0) - 1e-4 and gain.max() <= math.exp(1.0) + 1e-4


def test_statistics_travel_with_the_weights(raw_tiles):
    model = _untrained_model()
    state = model.state_dict()
    assert state["head.pan_mean"].tolist() == NORMALIZATION["pan"]["mean"]
    assert state["head.ms_std"].tolist() == NORMALIZATION["ms"]["std"]
    with pytest.raises(ValueError, match="ms_std must be positive"):
        model.head.set_statistics([1.0], [1.0], [0.0] * 4, [1.0, 0.0, 1.0, 1.0])


def test_exported_untrained_model_is_brovey_in_onnx_runtime(raw_tiles, tmp_path):
    """Export parity on real tiles, and the ONNX graph's output is the classical method."""
    from backend.checkpoints import save_checkpoint
    from backend.export.onnx_export import export_checkpoint

    model = _untrained_model()
    meta = {
        "task": "pansharpening",
        "model_config": model.config.to_dict(),
        "task_spec": model.spec.to_dict(),
        "normalization": NORMALIZATION,
        "metrics": {},
        "trained_on": "test: untrained pan-sharpening head",
        "init": "none",
    }
    checkpoint = save_checkpoint(tmp_path / "checkpoint-last", model, {}, meta)
    feeds = {s: _normalised(raw_tiles[s], s) for s in ("pan", "ms")}
    report = export_checkpoint(checkpoint, tmp_path / "pansharpening.onnx", sample_inputs=feeds)
    assert report.parity_inputs == "real tiles"
    assert report.max_abs_diff < 1e-4

    import onnxruntime

    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, feeds)
    np.testing.assert_allclose(_in_dn(output), _classical(raw_tiles), rtol=1e-4, atol=0.05)


def test_spectral_angle_loss_is_the_mean_angle(raw_tiles):
    target = _normalised(raw_tiles["target"], "ms")
    stats = NORMALIZATION["ms"]
    same = spectral_angle_loss(torch.from_numpy(target), torch.from_numpy(target), **stats)
    assert float(same) < 2e-3  # acos near 1 is steep: float32 rounding, not an angle
    # Every band scaled alike keeps every angle; one band scaled turns the spectra.
    scaled = _normalised(raw_tiles["target"] * 1.7, "ms")
    turned = raw_tiles["target"].copy()
    turned[:, 3] *= 1.5
    kept = spectral_angle_loss(torch.from_numpy(scaled), torch.from_numpy(target), **stats)
    moved = spectral_angle_loss(
        torch.from_numpy(_normalised(turned, "ms")), torch.from_numpy(target), **stats
    )
    assert float(kept) < 2e-3
    a, b = turned.astype(np.float64), raw_tiles["target"].astype(np.float64)
    cosine = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    expected = float(np.arccos(np.clip(cosine, -1.0, 1.0)).mean())
    assert expected > math.radians(2.0)
    assert float(moved) == pytest.approx(expected, rel=1e-3)
