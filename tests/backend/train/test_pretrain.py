"""Pretraining on the real samples: the small config learns, metrics are logged, the CLI works."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backend.models.cross_sensor_mim import SubBatch
from backend.train.metrics_log import read_metrics
from backend.train.pretrain import PretrainTrainer
from backend.train.trainer import TrainerConfig

from .conftest import pretrain_args


def _held_out_l1(trainer: PretrainTrainer, model) -> float:
    """Masked L1 on 24 fixed crops the run never trains on, with fixed masks."""
    dataset = trainer.build_dataset()
    batch = trainer.collate([dataset[10**6 + i] for i in range(24)])
    torch.manual_seed(123)
    model.eval()
    with torch.no_grad():
        return float(model([SubBatch(**sub_batch) for sub_batch in batch]).l1)


# The shipped corpus has 14 sources over 9 sensors; 40 steps of 4 crops were enough for its former
# 6 sources over 4 sensors (held-out L1 ratio 0.90 at 40 steps on the new corpus, 0.84 at 80).
STEPS = 80


@pytest.mark.slow
def test_small_config_loss_falls(tmp_path, sample_data, band_stats):
    config = TrainerConfig(
        out_dir=str(tmp_path / "run"),
        max_steps=STEPS,
        batch_size=4,
        lr=1e-3,
        warmup_steps=4,
        checkpoint_every=STEPS,
        device="cpu",
        progress=False,
    )
    trainer = PretrainTrainer(config, "small", "samples", str(sample_data), str(band_stats))
    torch.manual_seed(config.seed)
    untrained = trainer.build_model()
    result = trainer.fit()
    assert result["step"] == STEPS and result["device"] == "cpu"

    before = _held_out_l1(trainer, untrained)
    after = _held_out_l1(trainer, trainer.model)
    # Predicting the band mean (0 after normalisation) scores the mean |value| of the crops'
    # pixels with data (the loss scores no others).
    dataset = trainer.build_dataset()
    samples = [dataset[10**6 + i] for i in range(24)]
    mean_predictor = float(np.mean([np.abs(s.image[:, s.valid]).mean() for s in samples]))
    assert after < 0.85 * before, (before, after)
    # 40 steps bring the model to the band-mean predictor on pixels with data (no-data pixels,
    # trivially predicted as 0, are no longer scored), not beyond it.
    assert after < 1.01 * mean_predictor, (after, mean_predictor)

    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    first = records[0]
    for key in ("loss", "l1", "aux_loss", "lr", "per_sensor_loss", "expert_load", "grad_norm"):
        assert key in first
    assert set().union(*(r["per_sensor_loss"] for r in records)) == set(trainer.manifest().sensors)
    load = np.array(records[-1]["expert_load"])
    assert load.shape == (2, 4) and np.allclose(load.sum(axis=1), 1.0, atol=1e-4)
    assert records[4]["lr"] == pytest.approx(1e-3)  # first step after warm-up
    assert records[-1]["lr"] < 1e-4  # cosine decay
    meta = json.loads((tmp_path / "run" / "checkpoint-last" / "meta.json").read_text())
    assert (
        meta["normalization"]["sensors"]["s2"]["mean"]
        == json.loads(band_stats.read_text())["sensors"]["s2"]["mean"]
    )
    assert meta["model_config"]["name"] == "small" and meta["step"] == STEPS


def test_cli_runs_on_cpu_and_accumulates(tmp_path, sample_data, tiny_config, band_stats, capfd):
    from backend.cli import main

    out = tmp_path / "run"
    args = pretrain_args(out, tiny_config, band_stats, sample_data)
    code = main(["pretrain", *args, "--max-steps", "3", "--accumulation", "2", "--keep-every", "3"])
    assert code == 0
    captured = capfd.readouterr()
    assert "training on CPU" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["step"] == 3
    assert (out / "checkpoint-0000003" / "model.safetensors").is_file()
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]


def test_cli_errors_are_clear(tmp_path, sample_data, tiny_config, band_stats, capfd):
    from backend.cli import main

    args = pretrain_args(tmp_path / "empty", tiny_config, band_stats, sample_data)
    assert main(["pretrain", *args, "--resume"]) == 2
    assert "holds no checkpoint" in capfd.readouterr().err
    assert main(["pretrain", *args, "--config", "huge"]) == 2
    assert "unknown model config 'huge'" in capfd.readouterr().err


def test_l1c_corpus_keeps_its_own_sentinel2_statistics(tmp_path, sample_data, tiny_config):
    """The recipe's registry statistics (BigEarthNet L2A) replace the corpus' only where the corpus
    is of that product level: the samples' Sentinel-2 scenes are L1C, whose B01 sits about two
    standard deviations off the L2A mean, so they keep their own; the Theia Level-3A composites
    (s2_10band, surface reflectance) take the registry's."""
    from backend.sensors import get_sensor
    from backend.train.defaults import PRETRAIN_REGISTRY_STATS
    from backend.train.pretrain import PretrainTrainer
    from backend.train.trainer import TrainerConfig

    trainer = PretrainTrainer(
        TrainerConfig(out_dir=str(tmp_path), max_steps=1, device="cpu", progress=False),
        model_config=str(tiny_config), manifest="samples", data_root=str(sample_data),
        stats_crops=32, registry_stats=PRETRAIN_REGISTRY_STATS,
    )  # fmt: skip
    sensors = trainer._ensure_stats()["sensors"]
    l2a = get_sensor("s2")
    assert sensors["s2"]["source"].startswith("corpus (L1C")
    assert (sensors["s2"]["mean"][0] - l2a.mean[0]) / l2a.std[0] > 1.5
    assert sensors["s2_10band"]["source"] == "registry"
    assert sensors["s2_10band"]["mean"] == list(get_sensor("s2_10band").mean)
    # Each entry says which product levels it describes, for imagery of other levels.
    assert sensors["s2"]["product_levels"] == ["L1C"]
    assert sensors["s2_10band"]["product_levels"] == ["L2A", "L3A"]


def test_probe_steps_log_the_held_out_reconstruction_check(
    tmp_path, sample_data, tiny_config, band_stats, capfd
):
    """With --probe-every, the validation half of the BigEarthNet probe is scored and its patches
    (never read by pretraining) give the masked L1 against the visible-mean predictor."""
    from backend.cli import main

    out = tmp_path / "run"
    args = pretrain_args(out, tiny_config, band_stats, sample_data)
    assert main(["pretrain", *args, "--max-steps", "2", "--probe-every", "2"]) == 0
    capfd.readouterr()
    logged = {
        key: value
        for record in read_metrics(out / "metrics.jsonl")
        for key, value in record.items()
    }
    name = "bigearthnet-s2-validation"
    assert logged[f"heldout_{name}_masked_l1"] > 0 and logged[f"heldout_{name}_visible_mean_l1"] > 0
    assert logged[f"heldout_{name}_l1_over_visible_mean"] == pytest.approx(
        logged[f"heldout_{name}_masked_l1"] / logged[f"heldout_{name}_visible_mean_l1"]
    )
    assert logged[f"heldout_{name}_effective_rank"] >= 1.0
    assert f"probe_{name}_linear_map_micro" in logged


def test_crop_cache_is_built_once_and_gives_the_same_run(
    tmp_path, sample_data, tiny_config, band_stats, capfd
):
    """`--crop-cache DIR`: the first run decodes every scene into DIR, a run of another seed
    reuses it, and a run gives the same weights with and without the cache."""
    from backend.cli import main

    cache = tmp_path / "crops"
    results = {}
    for name, extra in (
        ("cached", ["--crop-cache", str(cache)]),
        ("cached_seed1", ["--crop-cache", str(cache), "--seed", "1"]),
        ("decoded", []),
    ):
        args = pretrain_args(tmp_path / name, tiny_config, band_stats, sample_data)
        assert main(["pretrain", *args, "--max-steps", "2", *extra]) == 0
        captured = capfd.readouterr()
        results[name] = (json.loads(captured.out.strip().splitlines()[-1]), captured.err)
    assert "decoding every scene" in results["cached"][1]
    assert "decoding every scene" not in results["cached_seed1"][1]
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 1
    assert (
        results["cached"][0]["parameter_checksums"] == results["decoded"][0]["parameter_checksums"]
    )
    assert results["cached"][0]["loss"] == results["decoded"][0]["loss"]


def test_threads_option_sets_torch_threads(tmp_path, sample_data, tiny_config, band_stats, capfd):
    import torch

    from backend.cli import main

    before = torch.get_num_threads()
    try:
        args = pretrain_args(tmp_path / "run", tiny_config, band_stats, sample_data)
        assert main(["pretrain", *args, "--max-steps", "1", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
        assert main(["pretrain", *args, "--max-steps", "1", "--threads", "-1"]) == 2
        assert "threads must be 0" in capfd.readouterr().err
    finally:
        torch.set_num_threads(before)
