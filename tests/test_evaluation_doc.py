"""docs/evaluation.md is what scripts/evaluation_doc.py makes of the committed ablation results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "evaluation_doc.py"
RESULTS = ROOT / "docs" / "evaluation-results.json"
NOT_RUN = "The new-protocol ablation has not been run yet."


def _run(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd="/"
    )


def _render(tmp_path, document):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(document))
    page = tmp_path / "evaluation.md"
    done = _run("--results", results, "--out", page)
    assert done.returncode == 0, done.stderr
    return page.read_text()


def test_committed_page_is_what_the_committed_results_give():
    done = _run("--check")
    assert done.returncode == 0, done.stderr


def test_results_of_the_old_protocol_are_not_shown(tmp_path):
    document = json.loads(RESULTS.read_text())
    text = _render(tmp_path, document)
    if document.get("protocol") is None:
        assert NOT_RUN in text and "predate" in text
        for row in document["results"]:
            assert row["command"] not in text


def _row(variant, seed, task, value, n_test=12, per_sample=False):
    row = {
        "variant": variant, "seed": seed, "task": task, "n_train": 40, "n_val": 10,
        "n_test": n_test, "sensors": ["s2", "sar"],
        "metrics": {"psnr": value, "mae": 100.0},
        "baseline": {"name": "the cloudy input itself", "metrics": {"psnr": 20.0, "mae": 300.0}},
        "command": f"msgfm evaluate --model runs/{variant}/seed-{seed}/{task} --json",
    }  # fmt: skip
    if per_sample:
        # Per-tile PSNR whose mean is the score, with noise of its own per arm and seed.
        import numpy as np

        from backend.train.paired import per_sample_record

        noise = np.random.default_rng(len(variant) * 10 + seed).standard_normal(n_test)
        tiles = value + (noise - noise.mean())
        row["per_sample"] = per_sample_record(
            "tile", [{"psnr": v} for v in tiles], [{"psnr": 20.0}] * n_test,
            range(n_test), [str(i) for i in range(n_test)],
        )  # fmt: skip
    return row


def test_new_protocol_results_with_intervals_and_test_counts(tmp_path):
    from backend.train.ablation import PROTOCOL

    rows = []
    for seed, (msgfm, random, no_moe) in enumerate(
        [(30.0, 28.0, 29.5), (31.0, 28.5, 31.2), (29.0, 27.0, 28.6)]
    ):
        rows += [
            _row(name, seed, "cloud-removal", value, n_test=10 + seed, per_sample=True)
            for name, value in (("msgfm", msgfm), ("random-init", random), ("no-moe", no_moe))
        ]
    document = {"protocol": PROTOCOL, "budget": "quick", "config": "lite", "results": rows}
    text = _render(tmp_path, document)
    assert NOT_RUN not in text
    for row in rows:
        assert f"`{row['command']}`" in text
    # Test samples per seed beside every figure.
    assert "| 10, 11, 12 |" in text
    # The paired bootstrap over test samples, and how many comparisons the page makes.
    assert "2 comparisons; 2 have a 95 % interval from a paired bootstrap over test samples" in text
    assert "come from a run before the paired bootstrap" not in text
    # Random init is behind by 2 dB with 1 dB of tile noise: pretraining helps. MoE: 0.23 dB.
    assert "| cloud-removal | random-init | 3 | +2.17 PSNR (dB) | [" in text
    line = next(s for s in text.splitlines() if s.startswith("| cloud-removal | random-init |"))
    assert line.endswith("| helps |")
    line = next(s for s in text.splitlines() if s.startswith("| cloud-removal | no-moe |"))
    assert line.endswith("| no detectable effect |")
    # A changed score changes the page, and --check notices the stale page.
    rows[0]["metrics"]["psnr"] = 12.345678
    changed = tmp_path / "changed"
    changed.mkdir()
    assert "| 12.3457 |" in _render(changed, document)
    stale = _run("--results", changed / "results.json", "--out", tmp_path / "evaluation.md")
    assert stale.returncode == 0
    check = _run("--results", RESULTS, "--out", tmp_path / "evaluation.md", "--check")
    assert check.returncode == 1 and "make evaluation" in check.stderr


def test_results_without_per_sample_scores_give_sign_agreement_and_say_so(tmp_path):
    """The committed run predates per-sample scores: no interval, no verdict, and the page says
    that its paired table is seed sign agreement of an old run and the bootstrap comes next run."""
    document = json.loads(RESULTS.read_text())
    text = _render(tmp_path, document)
    if document.get("protocol") is None or any(r.get("per_sample") for r in document["results"]):
        return
    assert "come from a run before the paired bootstrap" in text
    assert "seed sign agreement" in text and "applies from the next `make ablation`" in text
    paired = [s for s in text.splitlines() if "(sign agreement)" in s]
    assert paired and all(s.endswith("| no verdict (no interval) |") for s in paired)
    assert "| helps |" not in text and "| hurts |" not in text
    assert f"{len(paired)} comparisons; {len(paired)} rest on results without per-sample" in text


def test_a_run_with_fewer_than_three_seeds_is_marked_partial(tmp_path):
    from backend.train.ablation import PROTOCOL

    rows = [
        _row(variant, seed, "cloud-removal", 28.0 + seed + (variant == "msgfm"))
        for seed in (0, 1)
        for variant in ("msgfm", "random-init")
    ]
    document = {"protocol": PROTOCOL, "budget": "quick", "config": "lite", "results": rows}
    assert "**Partial run.**" in _render(tmp_path, document)
    rows += [_row(v, 2, "cloud-removal", 29.0) for v in ("msgfm", "random-init")]
    assert "**Partial run.**" not in _render(tmp_path, document)
