"""Embedding models of several sensors, exported from the shipped pretrained encoder checkpoint.

The encoder ships whatever the acceptance gate decides (it has no acceptance verdict: Finetune
starts from it); the S2 embedding and task models, which the gate may move out, are the tests'
own (tests/bundled_models.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ENCODER = ROOT / "resources" / "models" / "msgfm_lite_encoder"


@pytest.fixture(scope="session")
def embedding_model_folder(tmp_path_factory, owned_bundled_models) -> Path:
    """A models folder like the bundled one: S2, SAR, RGB and DSM embedding models exported from
    the shipped encoder (``msgfm export``), a task model and a file that is no model at all."""
    from backend.export.onnx_export import export_checkpoint

    folder = tmp_path_factory.mktemp("embedding_models")
    for sensor in ("sar", "rgb", "dsm"):
        export_checkpoint(ENCODER, folder / f"{sensor}_embeddings.onnx", sensors=[sensor])
    for name in ("embedding.onnx", "classification.onnx"):
        shutil.copyfile(owned_bundled_models / name, folder / name)
    (folder / "notes.onnx").write_text("not a model")
    return folder
