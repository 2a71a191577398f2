"""None shipped that fails: move the models that failed acceptance out of the bundled folder.

A model with a failed gating check leaves ``resources/models`` (so it is not in the plugin zip)
for ``rejected_dir``; its MANIFEST.json entry moves from ``files`` to ``rejected`` with the checks
it failed, so the model cards and the algorithms' help say there is no bundled model for the task
and how to get one. A model the results list as not measured (no labelled scene it never saw, e.g.
the embedding models of sensors without one) has passed nothing, so it leaves too, saying so.
Files the results do not list (the encoder checkpoint Finetune starts from) stay.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict, List, Mapping

from ..files import write_json_atomically
from .run import MANIFEST_FILE

FAILED = (
    "failed its acceptance checks on real scenes it never saw (docs/acceptance.md): not bundled"
)
NOT_MEASURED = {  # why a model has no verdict, by task
    "embedding": "not measured: no labelled held-out scene for this sensor",
}
NOT_MEASURED_OTHER = "not measured: no acceptance scene for this model"


def rejection_reason(task: str, passed: Any) -> str:
    """Why a model with verdict ``passed`` (False: failed, None: not measured) is not bundled."""
    if passed is False:
        return FAILED
    return f"{NOT_MEASURED.get(task, NOT_MEASURED_OTHER)} (docs/acceptance.md): not bundled"


def failed_checks(entry: Mapping[str, Any], thresholds: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The gating checks a model failed, with the scene, value and threshold."""
    failed = []
    for scene in entry["scenes"]:
        if scene.get("without"):  # a mode without some inputs: its own verdict, not the model's
            continue
        for check in scene["checks"]:
            rule = thresholds[check["check"]]
            if check["passed"] is False and rule["gates"]:
                failed.append(
                    {
                        "scene": scene["scene"],
                        "check": check["check"],
                        "value": check["value"],
                        "passes_when": f"{rule['op']} {rule['threshold']:g}",
                    }
                )
    return failed


def apply_gate(results: Mapping[str, Any], models_dir: Path, rejected_dir: Path) -> List[str]:
    """Move every model whose verdict is a fail, or that was not measured, out of
    ``models_dir``; return the files moved."""
    manifest_path = models_dir / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    moved = []
    kept_files = []
    rejected = list(manifest.get("rejected", []))
    for entry in manifest.get("files", []):
        verdict = results["models"].get(entry["file"])
        if verdict is None or verdict["passed"] is True:
            kept_files.append(entry)
            continue
        source = models_dir / entry["file"]
        rejected_dir.mkdir(parents=True, exist_ok=True)
        if source.exists():
            shutil.move(str(source), str(rejected_dir / entry["file"]))
        # A rejection of an earlier build of this file is superseded by this one.
        rejected = [r for r in rejected if r["file"] != entry["file"]]
        rejected.append(
            {
                "file": entry["file"],
                "task": entry["task"],
                "sha256": entry.get("sha256"),
                "reason": rejection_reason(entry["task"], verdict["passed"]),
                "failed_checks": failed_checks(verdict, results["thresholds"]),
            }
        )
        moved.append(entry["file"])
    manifest["files"] = kept_files
    # A file bundled again (rebuilt, and it passed) is no longer the one rejected before.
    bundled = {entry["file"] for entry in kept_files}
    manifest["rejected"] = [entry for entry in rejected if entry["file"] not in bundled]
    # A run of some models only (``--only``) keeps the other models' verdicts.
    manifest["acceptance"] = {
        **manifest.get("acceptance", {}),
        **{
            # A mode run without some inputs (``modes``) is refused for the file unless it passed
            # (backend/inference/accepted_modes.py).
            file: {
                "task": entry["task"],
                "passed": entry["passed"],
                **({"modes": dict(entry["modes"])} if entry.get("modes") else {}),
            }
            for file, entry in results["models"].items()
            if entry.get("kind") != "tool"  # tools ship no model file: nothing to gate
        },
    }
    write_json_atomically(manifest_path, manifest)
    return moved
