"""The smallest model config the tests train: every part of msGFM, a step in a fraction of a second.

4 stages, MoE blocks (stage 3 block 1 and stage 4 block 0), every sensor, on 2 CPU cores.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_CONFIG = {
    "name": "tiny",
    "embed_dim": 8,
    "depths": [1, 1, 2, 1],
    "num_heads": [1, 2, 2, 4],
    "window_size": 4,
    "image_size": 64,
    "patch_size": 4,
    "num_experts": 2,
    "drop_path_rate": 0.1,
}


def write_tiny_config(folder: Path, image_size: int = 64) -> Path:
    """``folder/tiny.json``: the tiny config for tiles of ``image_size`` pixels."""
    path = Path(folder) / "tiny.json"
    path.write_text(json.dumps({**TINY_CONFIG, "image_size": image_size}))
    return path
