"""docs/pretraining.md is generated from docs/pretraining-results.json and kept in step with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "pretraining_doc.py"
RESULTS = ROOT / "docs" / "pretraining-results.json"


def run(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd="/"
    )


def test_page_is_what_the_results_give():
    result = run(
        "render", "--results", RESULTS, "--out", ROOT / "docs" / "pretraining.md", "--check"
    )
    assert result.returncode == 0, result.stderr


def test_page_shows_every_variant_and_the_shipped_seeds_against_random_init(tmp_path):
    results = json.loads(RESULTS.read_text())
    out = tmp_path / "page.md"
    assert run("render", "--results", RESULTS, "--out", out).returncode == 0
    page = out.read_text()
    for variant in results["variants"]:
        assert f"## {variant['name']}" in page and variant["command"] in page
    shipped = [v for v in results["variants"] if v.get("shipped")]
    assert len(shipped) == 1
    for run_result in shipped[0]["runs"]:
        probe = run_result["probe"]
        assert f"{probe['margin_over_random']:+.3f}" in page
    # A changed figure makes --check fail.
    results["variants"][0]["runs"][0]["curve"][0]["linear_map_micro"] += 0.1
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(results))
    assert run("render", "--results", changed, "--out", out, "--check").returncode == 1
