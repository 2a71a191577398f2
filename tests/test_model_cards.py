"""scripts/model_cards.py: the committed model cards are generated from the shipped models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "model_cards.py"
MODELS = ROOT / "resources" / "models"
CARDS = ROOT / "docs" / "models"


def run_script(*args: str) -> subprocess.CompletedProcess:
    # From another folder: the script must find the repository from its own location.
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=str(ROOT.parent),
        capture_output=True,
        text=True,
        timeout=120,
    )


def models_with_manifest(tmp_path: Path, manifest: Dict) -> Path:
    """A models folder holding the shipped files (linked, never written) and ``manifest``."""
    folder = tmp_path / "models"
    folder.mkdir()
    for item in MODELS.iterdir():
        if item.name != "MANIFEST.json":
            (folder / item.name).symlink_to(item, target_is_directory=item.is_dir())
    (folder / "MANIFEST.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder


def shipped_manifest() -> Dict:
    return json.loads((MODELS / "MANIFEST.json").read_text(encoding="utf-8"))


def entry(manifest: Dict, file_name: str) -> Dict:
    return next(f for f in manifest["files"] if f["file"] == file_name)


def table_row(card: str, metric: str) -> List[str]:
    line = next(line for line in card.splitlines() if line.startswith(f"| {metric} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_committed_cards_match_the_shipped_models():
    result = run_script("--check")
    assert result.returncode == 0, (
        "docs/models is out of date with resources/models; run `python scripts/model_cards.py`\n"
        + result.stderr
    )
    assert result.stdout == ""  # --check writes nothing


def test_cards_take_their_numbers_from_the_manifest(tmp_path):
    manifest = shipped_manifest()
    classification = entry(manifest, "classification.onnx")
    old_accuracy = classification["evaluation"]["metrics"]["overall_accuracy"]
    classification["evaluation"]["metrics"]["overall_accuracy"] = 0.123456
    classification["n_train"] = 4321
    manifest["timings_s"]["pretrain"] = 987.6
    manifest["command"] = "msgfm train-defaults --budget full --out resources/models"
    models = models_with_manifest(tmp_path, manifest)
    out = tmp_path / "cards"

    result = run_script("--models", str(models), "--out", str(out))
    assert result.returncode == 0, result.stderr
    card = (out / "classification.md").read_text(encoding="utf-8")
    assert table_row(card, "overall_accuracy")[1] == "0.1235"
    assert f"{old_accuracy:.4g}" not in card
    assert "**4321 training and" in card
    assert "pretraining took 988 s" in card
    assert "msgfm train-defaults --budget full --out resources/models\n" in card
    # Cards name repository paths, never the folder they were generated from.
    assert str(tmp_path) not in card and str(Path.home()) not in card


def test_check_lists_only_the_cards_that_differ(tmp_path):
    manifest = shipped_manifest()
    scores = entry(manifest, "segmentation.onnx")["evaluation"]["metrics"]
    scores["mean_iou"] = scores["mean_iou"] + 0.01
    models = models_with_manifest(tmp_path, manifest)
    before = {p.name: p.read_text(encoding="utf-8") for p in CARDS.glob("*.md")}

    check = run_script("--models", str(models), "--out", str(CARDS), "--check")
    assert check.returncode == 1
    assert "docs/models/segmentation.md is out of date" in check.stderr
    assert "classification.md" not in check.stderr  # its numbers did not change
    assert {p.name: p.read_text(encoding="utf-8") for p in CARDS.glob("*.md")} == before


@pytest.mark.parametrize("broken", ["sha256", "missing"])
def test_a_manifest_that_does_not_describe_the_models_is_refused(tmp_path, broken):
    manifest = shipped_manifest()
    if broken == "sha256":
        entry(manifest, "pansharpening.onnx")["sha256"] = "0" * 64
    else:
        manifest["files"] = [f for f in manifest["files"] if f["file"] != "pansharpening.onnx"]
    models = models_with_manifest(tmp_path, manifest)

    result = run_script("--models", str(models), "--out", str(tmp_path / "cards"))
    assert result.returncode == 2
    assert "pansharpening.onnx" in result.stderr
    assert "msgfm train-defaults" in result.stderr  # says what to do
    assert not (tmp_path / "cards").exists()
