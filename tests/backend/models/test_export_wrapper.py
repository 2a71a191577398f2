"""The encoder exports to ONNX (legacy exporter) with a dynamic batch axis and MoE blocks intact."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from backend.models.config import ModelConfig, get_config
from backend.models.encoder import MsGFMEncoder
from backend.models.export_wrapper import export_encoder


@pytest.mark.parametrize(
    ("size", "top_k"),
    [
        (96, 1),
        # 80 px: stage maps of 20, 10, 5 and 3 tokens exercise window padding, a window clipped
        # to the map, odd patch merging, and top-2 routing.
        (80, 2),
    ],
)
def test_onnx_runtime_matches_torch_at_another_batch_size(tmp_path, bigearthnet_pairs, size, top_k):
    import onnxruntime

    torch.manual_seed(0)
    encoder = MsGFMEncoder(ModelConfig(**{**get_config("small").to_dict(), "top_k": top_k}))
    path = tmp_path / "encoder.onnx"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = export_encoder(encoder, path, sensors=["s2", "sar"], image_size=size, batch_size=2)
    # The exporter's "may be incorrect" warnings do not apply here (backend/models/onnx_warnings.py).
    assert [str(w.message) for w in caught if "incorrect" in str(w.message)] == []
    assert names == ["stage1", "stage2", "stage3", "stage4"]
    assert not list(tmp_path.glob("*.data"))  # one self-contained file

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["s2", "sar"]
    # Batch 5, exported at 2.
    inputs = {k: np.ascontiguousarray(v[:5, :, :size, :size]) for k, v in bigearthnet_pairs.items()}
    outputs = session.run(None, inputs)
    with torch.no_grad():
        expected = encoder.eval()({k: torch.from_numpy(v) for k, v in inputs.items()})
    assert len(outputs) == 4
    for got, want in zip(outputs, expected.features):
        assert got.shape == tuple(want.shape) and got.shape[0] == 5
        assert np.abs(got - want.numpy()).max() < 1e-4
    # The MoE blocks really routed tokens (not a constant graph): experts differ per token.
    assert (expected.expert_load > 0).sum() > 2
