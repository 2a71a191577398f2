"""scripts/model_cards.py: the committed model cards are generated from the shipped models.

How a card follows its manifest is checked on the tests' own bundled models (tests/bundled_models.py:
every task, made by the same recipe), so it holds whichever models the acceptance gate left.
"""

from __future__ import annotations

import json
import os
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


def models_with_manifest(tmp_path: Path, manifest: Dict, source: Path = MODELS) -> Path:
    """A models folder holding the files of ``source`` (linked, never written) and ``manifest``."""
    folder = tmp_path / "models"
    folder.mkdir()
    for item in source.iterdir():
        if item.name != "MANIFEST.json":
            (folder / item.name).symlink_to(item, target_is_directory=item.is_dir())
    (folder / "MANIFEST.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder


def shipped_manifest(source: Path = MODELS) -> Dict:
    return json.loads((source / "MANIFEST.json").read_text(encoding="utf-8"))


def evaluated_shipped_tasks() -> List[str]:
    """The tasks whose shipped model has test scores (those the acceptance gate left)."""
    return [
        f["file"][: -len(".onnx")]
        for f in shipped_manifest()["files"]
        if "evaluation" in f and (MODELS / f["file"]).is_file()
    ]


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


def test_cards_take_their_numbers_from_the_manifest(owned_bundled_models, tmp_path):
    manifest = shipped_manifest(owned_bundled_models)
    classification = entry(manifest, "classification.onnx")
    old_accuracy = classification["evaluation"]["metrics"]["overall_accuracy"]
    classification["evaluation"]["metrics"]["overall_accuracy"] = 0.123456
    classification["n_train"] = 4321
    # A recipe run that pretrained itself (not `--pretrained RUN`): the card quotes its timing.
    manifest["pretrain"] = {"steps": 5, "final_loss": 0.25}
    manifest["timings_s"]["pretrain"] = 987.6
    manifest["command"] = "msgfm train-defaults --budget full --out resources/models"
    models = models_with_manifest(tmp_path, manifest, owned_bundled_models)
    out = tmp_path / "cards"

    result = run_script("--models", str(models), "--out", str(out))
    assert result.returncode == 0, result.stderr
    card = (out / "classification.md").read_text(encoding="utf-8")
    assert table_row(card, "overall_accuracy")[1] == "0.1235"
    assert f"{old_accuracy:.4g}" not in card
    assert "**4321 training" in card
    assert "Pretraining: 5 AdamW steps" in card and "final loss 0.250" in card
    assert "pretraining took 988 s" in card
    assert "msgfm train-defaults --budget full --out resources/models\n" in card
    # Cards name repository paths, never the folder they were generated from.
    assert str(tmp_path) not in card and str(Path.home()) not in card


def test_check_lists_only_the_cards_that_differ(tmp_path):
    # Against the committed cards: a shipped model with test scores is needed (the rendering
    # itself is checked on the tests' own models above).
    tasks = evaluated_shipped_tasks()
    if not tasks:
        pytest.skip("no shipped model has test scores: the acceptance gate moved them all out")
    manifest = shipped_manifest()
    scores = entry(manifest, f"{tasks[0]}.onnx")["evaluation"]["metrics"]
    first = next(key for key, value in scores.items() if isinstance(value, float))
    # A change the card's 4 significant digits show (MAE 445.1 + 0.01 would print the same).
    scores[first] = scores[first] * 1.1 + 0.01
    models = models_with_manifest(tmp_path, manifest)
    before = {p.name: p.read_text(encoding="utf-8") for p in CARDS.glob("*.md")}

    check = run_script("--models", str(models), "--out", str(CARDS), "--check")
    assert check.returncode == 1
    assert f"docs/models/{tasks[0]}.md is out of date" in check.stderr
    for other in ("classification", "segmentation", "cloud-removal", "pansharpening"):
        if other != tasks[0]:  # their numbers did not change
            assert f"{other}.md" not in check.stderr
    assert {p.name: p.read_text(encoding="utf-8") for p in CARDS.glob("*.md")} == before


@pytest.mark.parametrize("broken", ["sha256", "missing"])
def test_a_manifest_that_does_not_describe_the_models_is_refused(
    owned_bundled_models, tmp_path, broken
):
    manifest = shipped_manifest(owned_bundled_models)
    if broken == "sha256":
        entry(manifest, "pansharpening.onnx")["sha256"] = "0" * 64
    else:
        manifest["files"] = [f for f in manifest["files"] if f["file"] != "pansharpening.onnx"]
    models = models_with_manifest(tmp_path, manifest, owned_bundled_models)

    result = run_script("--models", str(models), "--out", str(tmp_path / "cards"))
    assert result.returncode == 2
    assert "pansharpening.onnx" in result.stderr
    assert "msgfm train-defaults" in result.stderr  # says what to do
    assert not (tmp_path / "cards").exists()


def test_cards_state_the_test_split_and_the_command_that_reprints_it(
    owned_bundled_models, tmp_path
):
    # The three-way protocol of msgfm train-defaults: validation chose the checkpoint, the scores
    # are on the test split; cloud removal is leave-one-patch-out (fold = seed).
    manifest = shipped_manifest(owned_bundled_models)
    clouds = entry(manifest, "cloud-removal.onnx")
    clouds["evaluation"]["split"] = {
        "part": "test",
        "val_fraction": 0.2,
        "test_fraction": 0.2,
        "seed": 3,
        "fold": 3,
    }
    clouds["evaluation"]["n_samples"] = 1
    clouds.update({"n_train": 4, "n_val": 1, "n_test": 1})
    manifest["pretrain"] = {"steps": 800, "reused": "runs/somewhere/p_seed3", "seed": 3}
    models = models_with_manifest(tmp_path, manifest, owned_bundled_models)
    out = tmp_path / "cards"

    result = run_script("--models", str(models), "--out", str(out))
    assert result.returncode == 0, result.stderr
    card = (out / "cloud-removal.md").read_text(encoding="utf-8")
    command = next(line for line in card.splitlines() if line.startswith("msgfm evaluate"))
    assert command == (
        "msgfm evaluate --model resources/models/cloud-removal.onnx --data finetune_cloud-removal "
        "--val-fraction 0.2 --test-fraction 0.2 --split-seed 3 --split-fold 3 --json"
    )
    assert "On the **1 test sample**" in card
    assert "**4 training, 1 validation and 1 test sample**" in card
    assert "leave-one-patch-out, fold 3" in card
    # A reused pretraining run has no timing or loss of its own in this run.
    assert "reused with `--pretrained`" in card and "pretraining took" not in card
    assert "800 AdamW steps" in card


def test_embedding_card_lists_every_embedding_model_and_the_shipped_probe(
    owned_bundled_models, tmp_path
):
    manifest = shipped_manifest(owned_bundled_models)
    manifest["pretrain"] = {"steps": 800, "reused": "runs/search/p_seed0", "seed": 0}
    models = models_with_manifest(tmp_path, manifest, owned_bundled_models)
    probe = {
        "n_patches": 14,
        "encoder": {"linear_map_micro": 0.4567, "knn_map_micro": 0.4, "effective_rank": 7.0},
        "random_init_mean": {
            "linear_map_micro": 0.4012,
            "knn_map_micro": 0.39,
            "effective_rank": 17,
        },
        "band_statistics": {"linear_map_micro": 0.4352, "knn_map_micro": 0.38, "effective_rank": 4},
        "margin_over_random": 0.0555,
    }
    results = tmp_path / "pretraining-results.json"
    results.write_text(
        json.dumps(
            {
                "variants": [
                    {"name": "old", "description": "", "command": "x", "shipped": False,
                     "runs": []},
                    {"name": "Z. the recipe", "description": "", "shipped": True,
                     "command": "msgfm pretrain --out runs/search/p_seed0",
                     "runs": [{"run": "p_seed0", "seed": 0, "steps": 800, "probe": probe}]},
                ]
            }
        )
    )  # fmt: skip
    out = tmp_path / "cards"

    result = run_script(
        "--models", str(models), "--out", str(out), "--pretraining-results", str(results)
    )
    assert result.returncode == 0, result.stderr
    card = (out / "embedding.md").read_text(encoding="utf-8")
    for item in manifest["files"]:
        if item["task"] != "embedding":
            continue
        row = next(line for line in card.splitlines() if line.startswith(f"| `{item['file']}` |"))
        if "int8_mean_cosine" in item:
            assert f"mean cosine {item['int8_mean_cosine']:.4f}" in row
        else:
            assert "float32" in row
    assert "| p_seed0 | 0 | 800 | 0.457 / 0.400 / 7.0 | 0.401 / 0.390 / 17.0 |" in card
    assert "+0.056" in card
    assert "The shipped encoder is run `p_seed0`." in card
    assert '("Z. the recipe": `msgfm pretrain --out runs/search/p_seed0`)' in card

    # Without a shipped variant the card says where the probe is instead of quoting figures.
    results.write_text(json.dumps({"variants": []}))
    result = run_script(
        "--models", str(models), "--out", str(out), "--pretraining-results", str(results)
    )
    assert result.returncode == 0, result.stderr
    card = (out / "embedding.md").read_text(encoding="utf-8")
    assert "No probe of the shipped encoder is recorded yet" in card
    assert "docs/pretraining.md" in card


def test_the_cards_evaluate_command_reprints_the_cards_scores(tmp_path, sample_data):
    # Run the command a card prints (cloud removal: the smallest test split, else another shipped
    # model's) and compare.
    tasks = sorted(evaluated_shipped_tasks(), key=lambda task: task != "cloud-removal")
    if not tasks:
        pytest.skip("no shipped model has test scores: the acceptance gate moved them all out")
    card = (CARDS / f"{tasks[0]}.md").read_text(encoding="utf-8")
    command = next(line for line in card.splitlines() if line.startswith("msgfm evaluate"))
    args = command.split()[1:]
    result = subprocess.run(
        [sys.executable, "-m", "backend.cli", *args, "--data-root", str(sample_data)],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    scores = entry(shipped_manifest(), f"{tasks[0]}.onnx")["evaluation"]["metrics"]
    assert report["metrics"].keys() == scores.keys()
    for key, value in scores.items():
        assert report["metrics"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_every_prose_block_is_used_and_every_used_block_exists():
    # scripts/model_card_text.md holds the run-independent paragraphs by name.
    import re

    text = (ROOT / "scripts" / "model_card_text.md").read_text(encoding="utf-8")
    blocks = set(re.findall(r"^<!-- block: ([a-z_]+) -->$", text, flags=re.M))
    used = set(re.findall(r'prose\(\s*"([a-z_]+)"', SCRIPT.read_text(encoding="utf-8")))
    assert blocks and blocks == used
