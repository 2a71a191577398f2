"""Whether a bundled model may run without one of its optional inputs, by its acceptance record.

A model trained with samples that lacked an input (the cloud-removal model's S2 patches without a
Sentinel-1 partner) marks that input optional, and a run may leave it out. For a model of a
bundled folder, the acceptance suite also scores that mode on scenes the model never saw
(``msgfm accept``: the rows run ``without`` the input), and ``msgfm accept --gate`` records the
mode's verdict in the folder's ``MANIFEST.json`` (``acceptance.<file>.modes``). A mode that failed
there, or was never measured, is refused for that file before any work: right or refused. A model
file outside such a folder (a user's own) is run as its metadata says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

MANIFEST_FILE = "MANIFEST.json"


def mode_name(sensor: str) -> str:
    """The acceptance mode of a run without ``sensor`` (``"without sar"``)."""
    return f"without {sensor}"


def refused_without(model_path: Union[str, Path], sensor: str) -> Optional[str]:
    """Why the model at ``model_path`` may not run without ``sensor``, or None when it may.

    Only the acceptance record of the model's own folder counts (``MANIFEST.json`` beside it,
    listing the file under ``acceptance`` with a verdict for the mode).
    """
    path = Path(model_path)
    manifest = path.parent / MANIFEST_FILE
    if not manifest.is_file():
        return None
    try:
        record = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    modes = (record.get("acceptance", {}).get(path.name) or {}).get("modes") or {}
    mode = mode_name(sensor)
    if mode not in modes or modes[mode] is True:
        return None
    verdict = "failed its acceptance checks" if modes[mode] is False else "was not measured"
    return (
        f"the model {path.name} runs without {sensor} only where that mode passed acceptance on "
        f"scenes it never saw, and run {mode} it {verdict} (docs/acceptance.md). Give a "
        f"{sensor} raster, or choose a model file trained without {sensor} that you trust"
    )
