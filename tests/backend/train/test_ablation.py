"""``msgfm ablate``: pretraining variants x seeds x tasks, each score reproducible by its command."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

import pytest

from backend.models.config import get_config
from backend.train.ablation import (
    VARIANTS,
    AblationStudy,
    markdown_tables,
    paired_differences,
    summarize,
    variant_config,
)


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


def test_each_result_is_what_its_msgfm_evaluate_command_prints(first_run, capfd):
    from backend.cli import main

    assert [(r["variant"], r["task"]) for r in first_run] == [
        ("random-init", "classification"),
        ("no-moe", "classification"),
    ]
    random_init, no_moe = first_run
    assert random_init["pretrain"] is None
    assert no_moe["pretrain"]["steps"] == 2
    checkpoint_meta = json.loads(Path(no_moe["checkpoint"], "meta.json").read_text())
    assert checkpoint_meta["model_config"]["use_moe"] is False
    for result in first_run:
        argv = shlex.split(result["command"])
        assert argv[0] == "msgfm"
        assert main(argv[1:]) == 0
        printed = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
        assert printed["n_samples"] == result["n_val"] == 162
        for key, value in result["metrics"].items():
            assert printed["metrics"][key] == pytest.approx(value, abs=1e-12), key
        assert printed["baseline"] == result["baseline"]


def test_a_rerun_keeps_finished_results_and_adds_only_new_variants(
    first_run, study_dir, sample_data, tiny_config
):
    results = _study(study_dir, sample_data, tiny_config, ["random-init", "no-moe", "msgfm"]).run()
    assert results[:2] == json.loads(json.dumps(first_run))
    assert [r["variant"] for r in results] == ["random-init", "no-moe", "msgfm"]
    saved = json.loads((study_dir / "work" / "results.json").read_text())
    assert saved["results"] == results


def test_summary_is_mean_and_sample_sd_over_seeds():
    results = [
        {"variant": v, "seed": s, "task": "segmentation", "metrics": {"mean_iou": m},
         "baseline": {"metrics": {"mean_iou": b}}, "n_train": 10, "n_val": 3, "command": "c"}
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
    assert "| msgfm | 0.300 ± 0.100 |" in table
    assert "| random-init | 0.100 |" in table
    differences = paired_differences(results, "segmentation", "mean_iou")
    # Only seed 0 has both: 0.2 - 0.1.
    assert differences == {
        "random-init": {"mean": pytest.approx(0.1), "std": None, "n": 1, "reference_better": 1}
    }
