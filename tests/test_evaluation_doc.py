"""docs/evaluation.md is what scripts/evaluation_doc.py makes of the committed ablation results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "evaluation_doc.py"
RESULTS = ROOT / "docs" / "evaluation-results.json"


def _run(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd="/"
    )


def test_committed_page_is_what_the_committed_results_give():
    done = _run("--check")
    assert done.returncode == 0, done.stderr


def test_every_score_in_the_results_is_on_the_page_with_its_command(tmp_path):
    document = json.loads(RESULTS.read_text())
    results = document["results"]
    assert {r["variant"] for r in results} >= {"msgfm", "random-init"}
    # Change one score: the page follows the results, and --check notices the old page.
    results[0]["metrics"]["overall_accuracy"] = 0.123456
    results[0]["task"] = "classification"
    changed = tmp_path / "results.json"
    changed.write_text(json.dumps(document))
    page = tmp_path / "evaluation.md"
    assert _run("--results", changed, "--out", page).returncode == 0
    text = page.read_text()
    assert "| 0.1235 |" in text
    for row in results:
        assert f"`{row['command']}`" in text
    stale = _run("--results", RESULTS, "--out", page, "--check")
    assert stale.returncode == 1 and "make evaluation" in stale.stderr
