"""The representation probe (msgfm probe) on the real BigEarthNet patches, and during pretraining."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.train import probe
from backend.train.pretrain import main as pretrain_main

from .conftest import pretrain_args


@pytest.fixture(scope="module")
def probe_sets(sample_data):
    return {p.name: p for p in probe.bigearthnet_probe_sets(sample_data)}


def test_probe_sets_are_the_labelled_bigearthnet_patches(probe_sets):
    s2 = probe_sets["bigearthnet-s2"]
    assert s2.sensor == "s2" and len(s2.images) >= 6
    assert all(image.shape == (12, 120, 120) for image in s2.images)
    assert s2.targets.shape == (len(s2.images), 19)
    assert (s2.targets.sum(axis=1) >= 1).all()  # every patch has at least one 19-class label
    sar = probe_sets["bigearthnet-s1"]
    assert sar.sensor == "sar" and all(image.shape == (2, 120, 120) for image in sar.images)
    # The VV band alone is the corpus' Sentinel-1 sensor (sar_vv): the same patches and labels.
    vv = probe_sets["bigearthnet-s1-vv"]
    assert vv.sensor == "sar_vv" and vv.patches == sar.patches
    np.testing.assert_array_equal(vv.images[0][0], sar.images[0][0])
    np.testing.assert_array_equal(vv.targets, sar.targets)


def test_tiles_cover_a_patch_flush_with_its_edges():
    assert probe.tile_offsets(120, 96) == [0, 24]
    assert probe.tile_offsets(96, 96) == [0]
    tiles = probe.tiles_of(np.arange(2 * 120 * 120, dtype=np.float32).reshape(2, 120, 120), 96)
    assert tiles.shape == (4, 2, 96, 96)
    assert tiles[-1, 0, -1, -1] == 120 * 120 - 1  # the last tile ends at the last pixel
    # Smaller than a tile: reflect-padded up to one tile (70 px wide still needs two).
    assert probe.tiles_of(np.zeros((1, 50, 70), np.float32), 64).shape == (2, 1, 64, 64)


def test_linear_and_knn_probes_separate_informative_from_uninformative_features(probe_sets):
    targets = probe_sets["bigearthnet-s2"].targets
    rng = np.random.default_rng(0)
    informative = np.hstack([targets, targets]) + 0.1 * rng.standard_normal((len(targets), 38))
    noise = rng.standard_normal((len(targets), 38))
    good = probe.score_features(informative, targets)
    bad = probe.score_features(noise, targets)
    # Leave-one-out: a held-out patch's classes must appear in another patch to be found, so
    # even perfect features stay below 1 on these few patches.
    assert good["linear_map_micro"] > bad["linear_map_micro"] + 0.2
    assert good["knn_map_micro"] > bad["knn_map_micro"] + 0.2


def test_effective_rank_counts_the_directions_embeddings_spread_over():
    rng = np.random.default_rng(0)
    spread = rng.standard_normal((200, 8)) @ np.linalg.qr(rng.standard_normal((64, 8)))[0].T
    collapsed = np.outer(rng.standard_normal(200), rng.standard_normal(64))
    assert probe.effective_rank(spread) == pytest.approx(8, rel=0.1)
    assert probe.effective_rank(collapsed) < 1.2
    assert probe.first_component_share(collapsed) > 0.99


def test_pretraining_logs_the_probe_and_msgfm_probe_reports_it(
    tiny_config, band_stats, sample_data, tmp_path, capsys
):
    out = tmp_path / "run"
    argv = pretrain_args(out, tiny_config, band_stats, sample_data)
    assert pretrain_main([*argv, "--max-steps", "3", "--probe-every", "2"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # Pretraining probes the validation half only; the final half is left for the report.
    key = "probe_bigearthnet-s2-validation"
    probed = [r for r in records if f"{key}_linear_map_micro" in r]
    assert [r["step"] for r in probed] == [1, 2, 3]
    assert all(r[f"{key}_effective_rank"] > 0 for r in probed)
    assert not any("probe_bigearthnet-s2_linear_map_micro" in r for r in records)
    # The corpus has no Sentinel-1 ("sar") statistics: its untrained embedding is not probed;
    # the VV band alone is the corpus' sar_vv, and is.
    assert not any(k.startswith("probe_bigearthnet-s1-validation") for r in records for k in r)
    assert all("probe_bigearthnet-s1-vv-validation_linear_map_micro" in r for r in probed)
    assert all("moe_drop_fraction" in r for r in records if "loss" in r)

    from backend.cli import main

    capsys.readouterr()
    code = main(
        [
            "probe",
            "--encoder",
            str(out),
            "--data",
            str(sample_data),
            "--random-seeds",
            "1",
            "--part",
            "validation",
            "--json",
            "--out",
            str(tmp_path / "probe.json"),
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((tmp_path / "probe.json").read_text())
    s2 = report["sets"]["bigearthnet-s2-validation"]
    assert s2["n_patches"] >= 3 and len(s2["random_init"]) == 1
    assert "bigearthnet-s1-validation" in report["not_probed"]
    assert "not pretrained on 'sar'" in report["not_probed"]["bigearthnet-s1-validation"]
    assert report["sets"]["bigearthnet-s1-vv-validation"]["n_patches"] >= 3
    # Beside every score: the class prior, the permutation baseline and standard errors.
    assert 0.0 < s2["class_prior"]["map_micro"] < 1.0
    assert s2["permutation"]["permutations"] == 5
    errors = s2["standard_errors"]
    for name in ("encoder", "prior", "random_init_0", "band_statistics", "margin_over_random"):
        assert errors[f"{name}_se"] > 0, name
    assert s2["margin_over_prior"] == pytest.approx(
        s2["encoder"]["linear_map_micro"] - s2["class_prior"]["map_micro"]
    )
    for scores in (s2["encoder"], s2["random_init"][0], s2["band_statistics"]):
        assert 0.0 < scores["linear_map_micro"] <= 1.0 and scores["effective_rank"] >= 1.0
    assert s2["margin_over_random"] == pytest.approx(
        s2["encoder"]["linear_map_micro"] - s2["random_init_mean"]["linear_map_micro"]
    )
    # The probe of a checkpoint equals the probe logged by pretraining at its last step.
    assert s2["encoder"]["linear_map_micro"] == pytest.approx(probed[-1][f"{key}_linear_map_micro"])

    # msgfm plot draws those curves.
    png = tmp_path / "curves.png"
    assert main(["plot", str(out), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert main(["plot", str(tmp_path / "nothing")]) == 2


def test_validation_and_final_parts_split_the_patches(probe_sets):
    s2 = probe_sets["bigearthnet-s2"]
    validation = probe.split_probe_set(s2, "validation")
    final = probe.split_probe_set(s2, "final")
    assert set(validation.patches).isdisjoint(final.patches)
    assert sorted(validation.patches + final.patches) == sorted(s2.patches)
    assert abs(len(validation.patches) - len(final.patches)) <= 1
    assert validation.name == "bigearthnet-s2-validation" and final.name == "bigearthnet-s2-final"
    for part in (validation, final):
        rows = [s2.patches.index(p) for p in part.patches]
        np.testing.assert_array_equal(part.targets, s2.targets[rows])
    # The same parts every time (no seed, no machine dependence).
    assert probe.split_probe_set(s2, "validation").patches == validation.patches
    with pytest.raises(ValueError, match="probe part"):
        probe.split_probe_set(s2, "test")


def test_prior_permutation_and_standard_errors_on_the_real_labels(probe_sets):
    """Informative features beat the class prior and the permutation baseline by far more than
    their standard errors; a margin of a prediction over itself has no spread."""
    targets = probe_sets["bigearthnet-s2"].targets
    rng = np.random.default_rng(0)
    informative = np.hstack([targets, targets]) + 0.1 * rng.standard_normal((len(targets), 38))
    prior = probe.prior_scores(targets)
    # Leave-one-out prior: patch 0 gets the label frequencies of the other patches.
    np.testing.assert_allclose(prior[0], targets[1:].mean(axis=0))
    scores, predicted = probe.scored_features(informative, targets)
    shuffled = probe.permutation_baseline(informative, targets, permutations=3)
    errors = probe.bootstrap_standard_errors(
        targets,
        {"encoder": predicted["linear"], "prior": prior},
        {"margin": ("encoder", ["prior"]), "none": ("encoder", ["encoder"])},
        draws=300,
    )
    assert 0 < errors["encoder_se"] < 0.2 and errors["none_se"] == 0.0
    margin = scores["linear_map_micro"] - probe.micro_map(targets, prior)
    assert margin > 2 * errors["margin_se"] > 0
    assert scores["linear_map_micro"] > shuffled["linear_map_micro"] + 0.2


def test_l2a_patches_are_normalised_with_l2a_statistics_under_an_l1c_corpus(probe_sets):
    """An encoder pretrained on L1C scenes keeps its L1C statistics, but the BigEarthNet L2A
    patches it is probed on are normalised with L2A statistics: with the L1C ones the real
    patches sit several standard deviations off zero (B09 above all), with their own they do not.
    A level neither describes is refused, never normalised with the nearest."""
    from backend.data.tasks.normalization import normalize_inputs, statistics_for_level
    from backend.sensors import get_sensor

    s2 = probe_sets["bigearthnet-s2"]
    assert s2.product_level == "L2A" and probe_sets["bigearthnet-s1"].product_level is None
    assert probe.split_probe_set(s2, "validation").product_level == "L2A"
    # The samples corpus' own L1C statistics (runs/long band_stats.json, B01..B12).
    l1c = {
        "bands": list(get_sensor("s2").bands),
        "mean": [1714.5, 1435.6, 1225.5, 1091.8, 1168.0, 1379.7, 1524.9, 1433.8, 1602.3, 466.7,
                 1279.4, 817.3],
        "std": [612.4, 644.2, 672.9, 765.6, 788.2, 1033.3, 1189.6, 1149.1, 1321.9, 487.6, 1174.6,
                789.0],
        "source": "corpus (L1C; the registry's statistics are L2A/L3A)",
    }  # fmt: skip
    chosen = probe.normalization_for({"sensors": {"s2": l1c}}, s2)["s2"]
    assert chosen["mean"] == list(get_sensor("s2").mean) and chosen["source"] == "registry"

    def band_means(entry):
        values = [normalize_inputs({"s2": image}, {"s2": entry})["s2"] for image in s2.images]
        return np.mean([v.mean(axis=(1, 2)) for v in values], axis=0)

    assert np.abs(band_means(l1c)).max() > 3.0
    assert np.abs(band_means(chosen)).max() < 1.5
    # Legacy entries are read from their source text; an entry of the level itself is kept.
    assert (
        statistics_for_level("s2", {**l1c, "source": "corpus (L2A)"}, "L2A")["mean"] == l1c["mean"]
    )
    assert statistics_for_level("sar", {"mean": [0, 0], "std": [1, 1]}, None)["mean"] == [0, 0]
    with pytest.raises(ValueError, match="product level L1C has no statistics"):
        statistics_for_level("s2", {**l1c, "product_levels": ["L2A"]}, "L1C")
