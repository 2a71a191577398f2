"""backend.train.long_runs: kept checkpoints scored on the validation probe and the held-out check,
selection on those figures alone, the final probe once, and a bootstrap paired over patches."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from backend.train import long_runs

from .conftest import pretrain_args

# One random-init arm and few bootstrap draws: the figures are not the point here.
FAST = {"draws": 100, "random_seeds": 1}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_config, band_stats, sample_data):
    """A tiny real run that keeps checkpoints at steps 1 and 2, and a "second seed" of it."""
    from backend.cli import main

    out = tmp_path_factory.mktemp("long")
    run = out / "tiny-seed0"
    args = pretrain_args(run, tiny_config, band_stats, sample_data)
    assert (
        main(
            ["pretrain", *args, "--max-steps", "2", "--checkpoint-every", "1", "--keep-every", "1"]
        )
        == 0
    )
    # "Seed 1" is a copy that kept only its last checkpoint (another real run would only cost
    # time: the figures are not what this test checks).
    shutil.copytree(run, out / "tiny-seed1", ignore=shutil.ignore_patterns("checkpoint-0000001"))
    return out


def test_kept_checkpoints_are_scored_once_and_selection_reads_validation_only(
    two_runs, sample_data, tmp_path
):
    results_path = tmp_path / "evaluation.json"
    said = []
    results = long_runs.evaluate_runs(two_runs, results_path, sample_data, say=said.append, **FAST)
    assert sorted(results["runs"]) == ["tiny-seed0", "tiny-seed1"]
    assert sorted(results["runs"]["tiny-seed0"]["checkpoints"]) == ["1", "2"]
    assert list(results["runs"]["tiny-seed1"]["checkpoints"]) == ["2"]
    assert results["runs"]["tiny-seed1"]["seed"] == 1
    scored = results["runs"]["tiny-seed0"]["checkpoints"]["2"]
    validation = scored["sets"]["bigearthnet-s2-validation"]
    assert validation["n_patches"] >= 5 and 0 < validation["encoder"]["linear_map_micro"] <= 1
    assert validation["margin_over_random_se"] > 0
    check = scored["heldout"]["bigearthnet-s2-validation"]
    assert check["masked_l1"] > 0 and check["visible_mean_l1"] > 0
    assert check["l1_over_visible_mean"] == pytest.approx(
        check["masked_l1"] / check["visible_mean_l1"], rel=1e-6
    )
    # The same check on crops of the run's own corpus (its seen scenes).
    seen = scored["seen"]["s2"]
    assert seen["crops"] == 24 and seen["masked_l1"] > 0 and seen["visible_mean_l1"] > 0
    assert len(said) == 3
    # A second call scores nothing again.
    again = long_runs.evaluate_runs(two_runs, results_path, sample_data, say=said.append, **FAST)
    assert len(said) == 3 and again == json.loads(results_path.read_text())

    selection = long_runs.select(results)
    best = max(
        (c["sets"]["bigearthnet-s2-validation"]["encoder"]["linear_map_micro"], -int(step))
        for step, c in results["runs"]["tiny-seed0"]["checkpoints"].items()
    )
    assert selection["runs"]["tiny-seed0"]["step"] == -best[1]
    assert selection["winner"] == "tiny"

    with pytest.raises(ValueError, match="tiny-seed0, tiny-seed1 have no scored checkpoint at"):
        long_runs.score_final(two_runs, results_path, sample_data, required_steps=3)
    final = long_runs.score_final(
        two_runs, results_path, sample_data, say=said.append, permutations=0, **FAST
    )
    assert set(final["final"]) == {"tiny-seed0", "tiny-seed1"}
    entry = final["final"]["tiny-seed0"]["sets"]["bigearthnet-s2-final"]
    validation_patches = set(validation_patches_of(results))
    assert validation_patches.isdisjoint(entry["patches"])
    summary = final["final_summary"]["tiny"]
    assert summary["encoders"] == 2 and summary["patches"] == entry["n_patches"]
    low, high = summary["interval"]
    assert low <= summary["margin"] <= high


def validation_patches_of(results):
    from backend.data.fetch import sample_data_root
    from backend.train import probe

    sets = probe.bigearthnet_probe_sets(sample_data_root())
    return probe.split_probe_set(
        next(s for s in sets if s.name == "bigearthnet-s2"), "validation"
    ).patches


def test_paired_margin_on_the_same_patches():
    """Encoders identical to their random arms have a margin of exactly 0; a better encoder on
    every patch has an interval above 0; encoders probed on other patches are refused."""
    rng = np.random.default_rng(0)
    targets = (rng.random((12, 5)) < 0.3).astype(int)
    targets[0] = 1
    noise = rng.random((12, 5))

    def entry(encoder):
        return {
            "targets": targets.tolist(),
            "predictions": {
                "encoder": encoder.tolist(),
                "random_init_0": noise.tolist(),
                "random_init_1": noise.tolist(),
            },
        }

    same = long_runs.paired_margin([entry(noise), entry(noise)], draws=300)
    assert same["margin"] == 0 and same["interval"] == [0.0, 0.0]
    better = long_runs.paired_margin([entry(targets + 0.1 * noise)] * 3, draws=300)
    assert better["interval"][0] > 0 and better["encoders"] == 3
    other = entry(noise)
    other["targets"] = np.roll(targets, 1, axis=0).tolist()
    with pytest.raises(ValueError, match="different patches"):
        long_runs.paired_margin([entry(noise), other])
