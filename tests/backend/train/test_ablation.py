"""``msgfm ablate``: pretraining variants x seeds x tasks, each score reproducible by its command."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from backend.models.config import get_config
from backend.train.ablation import (
    NORMALIZATION_RULE,
    PROTOCOL,
    VARIANTS,
    AblationStudy,
    merge_results,
    variant_config,
)
from backend.train.ablation_report import (
    markdown_tables,
    paired_differences,
    summarize,
    verdict,
)
from backend.train.paired import ScoreOfSamples, paired_bootstrap


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ablation")


def _study(study_dir, sample_data, config, variants):
    return AblationStudy(
        str(study_dir / "work"),
        budget="tiny",
        seeds=[0],
        variants=variants,
        tasks=["classification"],
        config=str(config),  # the tiny config of conftest.py: the study is the same at any width
        data_root=str(sample_data),
        device="cpu",
        log=io.StringIO(),
    )


@pytest.fixture(scope="module")
def first_run(study_dir, sample_data, tiny_config):
    return _study(study_dir, sample_data, tiny_config, ["random-init", "no-moe"]).run()


def test_variant_configs_change_only_their_field(tmp_path):
    base = get_config("lite").to_dict()
    assert variant_config(VARIANTS["msgfm"], "lite", tmp_path) == "lite"
    for name, field in (("no-moe", "use_moe"), ("no-cross-sensor", "p_cross")):
        changed = get_config(variant_config(VARIANTS[name], "lite", tmp_path)).to_dict()
        differing = {k for k in base if base[k] != changed[k]}
        assert differing == {"name", field}, name
    assert get_config(str(tmp_path / "no-moe.json")).use_moe is False


def test_each_result_is_what_its_msgfm_evaluate_command_prints(first_run, study_dir, capfd):
    from backend.cli import main

    assert [(r["variant"], r["task"]) for r in first_run] == [
        ("random-init", "classification"),
        ("no-moe", "classification"),
    ]
    random_init, no_moe = first_run
    assert random_init["pretrain"] is None
    assert no_moe["pretrain"]["steps"] == 2
    # Its pretraining corpus left out the land-cover ground the task holds back (by footprint).
    held = no_moe["held_back_from_pretraining"]
    assert held["ids"] == ["strata"] and held["footprints"] == no_moe["n_val"] + no_moe["n_test"]
    assert random_init["held_back_from_pretraining"] is None
    # msgfm evaluate read that corpus again and found no held-back ground in it.
    assert no_moe["pretraining_leak_check"] == "clean"
    assert random_init["pretraining_leak_check"] == "not pretrained"
    assert no_moe["sensors_seen_in_pretraining"] == ["landsat"]
    checkpoint_meta = json.loads(Path(no_moe["checkpoint"], "meta.json").read_text())
    assert checkpoint_meta["model_config"]["use_moe"] is False
    # Both arms normalise alike, with the msgfm arm's corpus statistics (not the registry's for
    # the random-init arm); layer decay slows the pretrained arm only.
    random_meta = json.loads(Path(random_init["checkpoint"], "meta.json").read_text())
    assert random_meta["normalization"] == checkpoint_meta["normalization"]
    assert random_init["normalization"] == no_moe["normalization"] == NORMALIZATION_RULE
    corpus = json.loads((study_dir / "work/msgfm/seed-0/pretrain/band_stats.json").read_text())
    assert random_meta["normalization"]["landsat"]["mean"] == corpus["sensors"]["landsat"]["mean"]
    assert random_meta["layer_decay"] == 1.0 and checkpoint_meta["layer_decay"] < 1.0
    for result in first_run:
        argv = shlex.split(result["command"])
        assert argv[0] == "msgfm"
        assert main(argv[1:]) == 0
        printed = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
        # Scored on the test split, which neither training nor the checkpoint choice saw.
        assert printed["split"]["part"] == "test"
        assert printed["n_samples"] == result["n_test"] > 0
        assert (result["n_train"], result["n_val"]) == (printed["n_train"], printed["n_val"])
        assert result["sensors"] == printed["sensors"] == ["landsat"]
        for key, value in result["metrics"].items():
            assert printed["metrics"][key] == pytest.approx(value, abs=1e-12), key
        assert printed["baseline"] == result["baseline"]
        # The per-sample record names the same test samples and gives back the score.
        assert printed["per_sample"]["ids"] == result["per_sample"]["ids"]
        record = result["per_sample"]
        every = np.arange(len(record["ids"]))
        for arm, scores in (("model", result["metrics"]), ("baseline", result["baseline"])):
            scores = scores.get("metrics", scores)
            recomputed = ScoreOfSamples(record, arm, "overall_accuracy")(every)
            assert recomputed == pytest.approx(scores["overall_accuracy"], abs=1e-12)
    # The two arms were scored on the same samples: a paired bootstrap compares them.
    compared = paired_bootstrap(
        [(no_moe["per_sample"], random_init["per_sample"])], "overall_accuracy", draws=200
    )
    difference = no_moe["metrics"]["overall_accuracy"] - random_init["metrics"]["overall_accuracy"]
    assert compared["mean"] == pytest.approx(difference)
    assert compared["low"] <= difference <= compared["high"]
    assert compared["n_samples"] == [no_moe["n_test"]]


def test_a_rerun_keeps_finished_results_and_adds_only_new_variants(
    first_run, study_dir, sample_data, tiny_config
):
    results = _study(study_dir, sample_data, tiny_config, ["random-init", "no-moe", "msgfm"]).run()
    assert results[:2] == json.loads(json.dumps(first_run))
    assert [r["variant"] for r in results] == ["random-init", "no-moe", "msgfm"]
    saved = json.loads((study_dir / "work" / "results.json").read_text())
    assert saved["results"] == results and saved["protocol"] == PROTOCOL


def test_summary_is_mean_and_sample_sd_over_seeds():
    results = [
        {"variant": v, "seed": s, "task": "segmentation", "metrics": {"mean_iou": m},
         "baseline": {"metrics": {"mean_iou": b}}, "n_train": 10, "n_val": 3, "n_test": 4,
         "sensors": ["landsat"], "command": "c"}
        for v, s, m, b in (
            ("msgfm", 0, 0.2, 0.05), ("msgfm", 1, 0.3, 0.07), ("msgfm", 2, 0.4, 0.06),
            ("random-init", 0, 0.1, 0.05),
        )
    ]  # fmt: skip
    summary = summarize(results, "segmentation", "mean_iou")
    assert summary["variants"]["msgfm"]["mean"] == pytest.approx(0.3)
    assert summary["variants"]["msgfm"]["std"] == pytest.approx(0.1)  # sample sd of .2 .3 .4
    assert summary["variants"]["random-init"]["std"] is None
    assert summary["baseline"]["mean"] == pytest.approx(0.06)
    table = markdown_tables(results)
    assert "| 0.300 ± 0.100 | 0.100 | 0.060 ± 0.010 |" in table
    assert "| 10 / 3 / 4 | landsat | `c` |" in table
    differences = paired_differences(results, "segmentation", "mean_iou")
    # Only seed 0 has both: 0.2 - 0.1; without per-sample scores there is no interval, only
    # sign agreement, and no verdict.
    assert differences["random-init"]["mean"] == pytest.approx(0.1)
    assert differences["random-init"]["low"] is None and differences["random-init"]["n"] == 1
    assert differences["random-init"]["positive"] == 1
    assert verdict(differences["random-init"]) == "no verdict (no interval)"
    assert "1 of 1 seeds above zero (sign agreement)" in table
    assert "1 comparisons" in table and "sign agreement only" in table


def test_verdict_wording():
    assert verdict({"low": 0.01, "high": 0.2}) == "helps"
    assert verdict({"low": -0.3, "high": -0.1}) == "hurts"
    assert verdict({"low": -0.1, "high": 0.2}) == "no detectable effect"


def _document(seed, budget="quick", variants=("msgfm", "random-init")):
    rows = [{"seed": seed, "variant": v, "task": "segmentation", "metrics": {}} for v in variants]
    return {"protocol": PROTOCOL, "budget": budget, "config": "lite", "results": rows}


def test_merge_joins_seeds_run_apart_and_refuses_mixed_studies(tmp_path):
    merged = merge_results([_document(2), _document(0)])
    assert [(r["seed"], r["variant"]) for r in merged["results"]] == [
        (0, "msgfm"), (0, "random-init"), (2, "msgfm"), (2, "random-init")
    ]  # fmt: skip
    assert (merged["protocol"], merged["budget"], merged["config"]) == (PROTOCOL, "quick", "lite")
    with pytest.raises(ValueError, match="seed 0, msgfm, segmentation is in results files 1 and 2"):
        merge_results([_document(0), _document(0, variants=("msgfm",))])
    with pytest.raises(ValueError, match="budget 'tiny'"):
        merge_results([_document(0), _document(1, budget="tiny")])
    # The command writes the merged file atomically and reports what it holds.
    paths = []
    for seed in (0, 1):
        paths.append(tmp_path / f"r{seed}.json")
        paths[-1].write_text(json.dumps(_document(seed)))
    from backend.cli import main

    assert main(["ablate", "merge", *map(str, paths), "--out", str(tmp_path / "all.json")]) == 0
    assert len(json.loads((tmp_path / "all.json").read_text())["results"]) == 4
    assert main(["ablate", "merge", str(paths[0]), str(paths[0]), "--out", "x.json"]) == 2


def test_a_work_dir_of_a_run_before_per_sample_scores_is_not_continued(tmp_path):
    """Old results (seeds sharing test splits, arms normalised differently, no per-sample
    scores) are not mixed with new runs in one study."""
    work = tmp_path / "work"
    work.mkdir()
    old = {
        "protocol": PROTOCOL,
        "budget": "tiny",
        "config": "lite",
        "results": _document(0)["results"],
    }
    (work / "results.json").write_text(json.dumps(old))
    study = AblationStudy(str(work), budget="tiny", seeds=[0], log=io.StringIO())
    with pytest.raises(ValueError, match="before per-sample scores"):
        study.run()
