"""The figures in README.md and the user guide are those their data give (scripts/doc_figures.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .script_modules import load_file

ROOT = Path(__file__).resolve().parent.parent
doc_figures = load_file(ROOT / "scripts" / "doc_figures.py", "doc_figures")


@pytest.mark.parametrize("doc", doc_figures.DOCS, ids=lambda doc: doc.name)
def test_the_doc_is_its_render(doc):
    text = doc.read_text(encoding="utf-8")
    assert doc_figures.SPAN.search(text), f"{doc.name} has no generated figure"
    assert doc_figures.render(text) == text, "run `python scripts/doc_figures.py`"


def test_every_figure_is_used():
    used = {
        match.group(1)
        for doc in doc_figures.DOCS
        for match in doc_figures.SPAN.finditer(doc.read_text(encoding="utf-8"))
    }
    assert used == set(doc_figures.FIGURES)


def test_figures_follow_the_manifest(tmp_path):
    models = tmp_path / "models"  # the shipped models (linked) beside a changed manifest
    models.mkdir()
    for item in (ROOT / "resources" / "models").iterdir():
        if item.name != "MANIFEST.json":
            (models / item.name).symlink_to(item, target_is_directory=item.is_dir())
    manifest = json.loads((ROOT / "resources" / "models" / "MANIFEST.json").read_text())
    manifest["pretrain"] = {"steps": 1234, "reused": None}
    manifest["timings_s"] = {"pretrain": 600.0, "finetune segmentation": 600.0, "total": 1500.0}
    (models / "MANIFEST.json").write_text(json.dumps(manifest))
    text = "<!-- figure: pretraining-steps -->800<!-- /figure --> and " + (
        "<!-- figure: train-defaults-time -->?<!-- /figure -->"
    )
    assert doc_figures.render(text, models) == (
        "<!-- figure: pretraining-steps -->1234<!-- /figure --> and "
        "<!-- figure: train-defaults-time -->25 minutes for the bundled models, finetuning 1 "
        "tasks, export and scoring on the CPU that trained them; including its 1234-step "
        "pretraining<!-- /figure -->"
    )
    with pytest.raises(KeyError, match="unknown figure 'steps'"):
        doc_figures.render("<!-- figure: steps -->1<!-- /figure -->", models)
