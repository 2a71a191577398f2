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


def test_long_runs_section_says_what_is_finished_and_what_the_final_half_shows(tmp_path):
    """The long runs' section lists every scored checkpoint; until the final half is scored it
    says so, and a verdict is given only where the interval excludes zero."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import pretraining_doc
    finally:
        sys.path.pop(0)
    scored = {
        "sets": {
            "bigearthnet-s2-validation": {
                "encoder": {"linear_map_micro": 0.41, "knn_map_micro": 0.4, "effective_rank": 6.1},
                "encoder_se": 0.09,
                "margin_over_random": 0.021,
                "margin_over_random_se": 0.05,
            }
        },
        "heldout": {
            "bigearthnet-s2-validation": {
                "masked_l1": 0.7,
                "visible_mean_l1": 0.55,
                "l1_over_visible_mean": 1.27,
                "effective_rank": 3.9,
            }
        },
    }
    long = {
        "runs": {"align-seed0": {"recipe": "align", "seed": 0, "checkpoints": {"4000": scored}}}
    }
    text = "\n".join(pretraining_doc.render_long_runs(long))
    assert "| 4000 | 0.410 ± 0.090 | +0.021 ± 0.050 |" in text
    assert "0.700 / 0.550 (1.27)" in text and "not finished" in text
    long["selection"] = {
        "runs": {"align-seed0": {"recipe": "align", "seed": 0, "step": 4000, "score": 0.41}},
        "recipe_means": {"align": 0.41},
        "winner": "align",
    }
    summary = {"margin": 0.03, "interval": [-0.01, 0.07], "encoders": 3, "patches": 7}
    long["final_summary"] = {"align": summary}
    assert "no difference shown" in "\n".join(pretraining_doc.render_long_runs(long))
    summary["interval"] = [0.01, 0.07]
    assert "beats random init" in "\n".join(pretraining_doc.render_long_runs(long))
