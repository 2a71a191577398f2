"""Finetuning on the real samples: every task beats its untrained head, lr decay, linear probe,
early stopping and checkpoint-best."""

from __future__ import annotations

import json

import pytest
import torch

from backend.train.distributed import DistributedContext
from backend.train.finetune import FinetuneTrainer
from backend.train.metrics_log import read_metrics
from backend.train.trainer import TrainerConfig

# (task, data spec, tile size, steps, metric, higher is better). Steps and lr are chosen so that
# a 10-step pretrained tiny encoder with a fresh head clearly moves from its untrained state.
TASK_RUNS = [
    ("classification", "finetune_classification_landcover", 32, 15, "val_overall_accuracy", True),
    ("segmentation", "finetune_segmentation", 32, 15, "val_mean_iou", True),
    ("cloud-removal", "finetune_cloud-removal", 32, 10, "val_mae", False),
    ("pansharpening", "finetune_pansharpening", 32, 12, "val_loss", False),
]


def _trainer(out, task, data, tile, steps, pretrained, sample_data, **kwargs) -> FinetuneTrainer:
    options = {"val_every": 0, "lr": 3e-3}
    options.update({k: kwargs.pop(k) for k in list(kwargs) if k in TrainerConfig.__annotations__})
    config = TrainerConfig(
        out_dir=str(out),
        max_steps=steps,
        batch_size=8,
        warmup_steps=2,
        device="cpu",
        progress=False,
        checkpoint_every=1000,
        **options,
    )
    return FinetuneTrainer(
        config, task, data, init=str(pretrained), data_root=str(sample_data), tile_size=tile,
        **kwargs,
    )  # fmt: skip


def _untrained_scores(trainer: FinetuneTrainer) -> dict:
    """Validation scores of the model as finetuning starts (pretrained encoder, fresh head)."""
    trainer.context = DistributedContext()
    torch.manual_seed(trainer.config.seed)
    trainer.model = trainer.build_model()
    scores = trainer.validate()
    trainer.context = None
    return scores


@pytest.mark.parametrize(("task", "data", "tile", "steps", "metric", "higher"), TASK_RUNS)
def test_each_task_beats_its_untrained_head(
    tmp_path, sample_data, pretrained_tiny, task, data, tile, steps, metric, higher
):
    out = tmp_path / task
    trainer = _trainer(out, task, data, tile, steps, pretrained_tiny, sample_data)
    before = _untrained_scores(trainer)
    result = trainer.fit()
    after = result["val_metrics"]
    assert result["step"] == steps and result["n_val"] > 0 and result["n_train"] > 0
    if higher:
        assert after[metric] > before[metric], (before[metric], after[metric])
    else:
        assert after[metric] < before[metric], (before[metric], after[metric])

    # The checkpoint contract: everything export and evaluate need.
    meta = json.loads((out / "checkpoint-best" / "meta.json").read_text())
    assert meta["task"] == task and meta["task_spec"]["task"] == task
    assert meta["task_spec"]["image_size"] == tile
    expected = set(meta["task_spec"]["sensors"]) | {meta["task_spec"]["target_sensor"]} - {None}
    assert set(meta["normalization"]) == expected
    assert meta["metrics"]["n_samples"] == result["n_val"]
    assert meta["metrics"][metric[len("val_") :]] == pytest.approx(after[metric])
    assert meta["init"]["task"] == "pretrain" and str(result["n_train"]) in meta["trained_on"]
    if task == "segmentation":
        # Landsat-5/7 is a pretraining sensor (other scenes: Olinda, r-cran-satellite's TM): its
        # pretrained embedding is used, none is borrowed from the nearest S2 bands.
        assert meta["init"]["initialised_from"] == {}
        assert meta["task_spec"]["class_values"] == [1, 2, 3, 4, 5, 6, 7]
    if task == "cloud-removal":
        assert meta["task_spec"]["sensors"] == ["s2", "sar"]
        # The pretrained statistics of the sensors the checkpoint has are kept.
        pretrained = json.loads((pretrained_tiny / "checkpoint-last" / "meta.json").read_text())
        assert (
            meta["normalization"]["s2"]["mean"]
            == pretrained["normalization"]["sensors"]["s2"]["mean"]
        )


def test_layer_decay_gives_per_depth_learning_rates(tmp_path, sample_data, pretrained_tiny):
    trainer = _trainer(
        tmp_path, "segmentation", "finetune_segmentation", 32, 1, pretrained_tiny, sample_data,
        lr=1e-3, layer_decay=0.5,
    )  # fmt: skip
    trainer.prepare_data()
    model = trainer.build_model()
    optimizer = trainer.configure_optimizer(model)
    depth = sum(trainer.model_config.depths)  # 5 blocks in the tiny config
    lr_of = {}
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            lr_of[id(parameter)] = group["lr"]
    named = dict(model.named_parameters())
    head = next(p for n, p in named.items() if n.startswith("head."))
    assert lr_of[id(head)] == pytest.approx(1e-3)
    embedding = named["encoder.embeddings.landsat.proj.weight"]
    assert lr_of[id(embedding)] == pytest.approx(1e-3 * 0.5 ** (depth + 1))
    first_block = next(p for n, p in named.items() if n.startswith("encoder.stages.0.blocks.0."))
    last_block = next(p for n, p in named.items() if n.startswith("encoder.stages.3.blocks.0."))
    assert lr_of[id(first_block)] == pytest.approx(1e-3 * 0.5**depth)
    assert lr_of[id(last_block)] == pytest.approx(1e-3 * 0.5)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(named)
    # The schedule scales every group alike: ratios between groups survive warm-up.
    scheduler = trainer.configure_scheduler(optimizer)
    optimizer.step()
    scheduler.step()
    ratios = {g["lr"] / g["initial_lr"] for g in optimizer.param_groups}
    assert len({round(r, 12) for r in ratios}) == 1


def test_linear_probe_leaves_the_encoder_unchanged(tmp_path, sample_data, pretrained_tiny):
    class Recording(FinetuneTrainer):
        def build_model(self):
            model = super().build_model()
            self.initial = {k: v.clone() for k, v in model.state_dict().items()}
            return model

    config = TrainerConfig(
        out_dir=str(tmp_path), max_steps=3, batch_size=8, lr=1e-2, warmup_steps=1,
        device="cpu", progress=False, checkpoint_every=1000,
    )  # fmt: skip
    trainer = Recording(
        config, "classification", "finetune_classification_landcover", init=str(pretrained_tiny),
        data_root=str(sample_data), tile_size=32, linear_probe=True,
    )  # fmt: skip
    trainer.fit()
    final = trainer.model.state_dict()
    encoder_keys = [k for k in final if k.startswith("encoder.")]
    head_keys = [k for k in final if k.startswith("head.")]
    assert encoder_keys and head_keys
    for key in encoder_keys:
        assert torch.equal(final[key], trainer.initial[key]), key
    assert any(not torch.equal(final[k], trainer.initial[k]) for k in head_keys)
    assert json.loads((tmp_path / "checkpoint-last" / "meta.json").read_text())["linear_probe"]


def test_early_stopping_stops_at_patience(tmp_path, sample_data, pretrained_tiny):
    # With lr 0 the model never changes, so no validation after the first improves on it.
    trainer = _trainer(
        tmp_path, "segmentation", "finetune_segmentation", 32, 20, pretrained_tiny, sample_data,
        lr=0.0, val_every=1, patience=2,
    )  # fmt: skip
    result = trainer.fit()
    assert result["stopped_early"] and result["step"] == 3 and result["best_step"] == 1
    records = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "val_loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert json.loads((tmp_path / "checkpoint-last" / "meta.json").read_text())["step"] == 3
    assert json.loads((tmp_path / "checkpoint-best" / "meta.json").read_text())["step"] == 1


def test_checkpoint_best_holds_the_best_validation(tmp_path, sample_data, pretrained_tiny):
    trainer = _trainer(
        tmp_path, "segmentation", "finetune_segmentation", 32, 12, pretrained_tiny, sample_data,
        val_every=3,
    )  # fmt: skip
    result = trainer.fit()
    records = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "val_mean_iou" in r]
    assert [r["step"] for r in records] == [3, 6, 9, 12]
    best = max(records, key=lambda r: r["val_mean_iou"])
    meta = json.loads((tmp_path / "checkpoint-best" / "meta.json").read_text())
    assert meta["step"] == best["step"] == result["best_step"]
    assert meta["metrics"]["mean_iou"] == pytest.approx(best["val_mean_iou"])
    # Training records carry the task loss and the MoE auxiliary loss.
    train_records = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "task_loss" in r]
    assert len(train_records) == 12 and all(r["aux_loss"] >= 0 for r in train_records)


def test_cli_finetunes_bigearthnet_multilabel(tmp_path, sample_data, pretrained_tiny, capfd):
    from backend.cli import main

    out = tmp_path / "run"
    code = main([
        "finetune", "--task", "classification", "--init", str(pretrained_tiny),
        "--data-root", str(sample_data), "--out", str(out), "--max-steps", "2",
        "--batch-size", "4", "--tile-size", "64", "--device", "cpu", "--no-progress",
        "--val-fraction", "0.34",
    ])  # fmt: skip
    assert code == 0
    result = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert (result["n_train"], result["n_val"]) == (4, 2)
    meta = json.loads((out / "checkpoint-best" / "meta.json").read_text())
    assert meta["task_spec"]["multilabel"] and meta["task_spec"]["num_classes"] == 19
    assert meta["task_spec"]["sensors"] == ["s2", "sar"]
    assert {"map_micro", "map_macro", "f1_micro", "f1_macro"} <= set(meta["metrics"])


def test_cli_errors_are_clear(tmp_path, sample_data, capfd):
    from backend.cli import main

    base = ["finetune", "--out", str(tmp_path), "--data-root", str(sample_data)]
    assert main([*base, "--task", "segmentation", "--init", str(tmp_path / "nothing")]) == 2
    assert "no pretraining checkpoint" in capfd.readouterr().err
    code = main(
        [*base, "--task", "segmentation", "--init", "none", "--data", "finetune_pansharpening"]
    )
    assert code == 2
    assert "not segmentation" in capfd.readouterr().err
    assert main([*base, "--task", "segmentation", "--init", "none", "--data", "nope"]) == 2
    assert "is not a data spec" in capfd.readouterr().err


def test_layer_decay_applies_to_pretrained_weights_only(tmp_path, sample_data, tiny_config):
    """A run from random weights has no pretrained layers to protect: every group learns at the
    base rate (layer decay slowed random-init arms of the ablation before)."""
    config = TrainerConfig(
        out_dir=str(tmp_path), max_steps=1, batch_size=8, device="cpu", progress=False, lr=1e-3
    )
    trainer = FinetuneTrainer(
        config, "segmentation", "finetune_segmentation", init=None,
        model_config=str(tiny_config), data_root=str(sample_data), tile_size=32, layer_decay=0.5,
    )  # fmt: skip
    optimizer = trainer.configure_optimizer(trainer.build_model())
    assert {round(g["lr"], 12) for g in optimizer.param_groups} == {1e-3}
    assert trainer.effective_layer_decay == 1.0


def test_statistics_of_another_band_count_are_an_error(tmp_path, sample_data, pretrained_tiny):
    """A checkpoint whose statistics have another band count than the sensor is refused with the
    checkpoint, the sensor, both counts and the fix, instead of normalising with the registry's
    statistics behind the user's back."""
    import shutil

    copy = tmp_path / "other-layout"
    shutil.copytree(pretrained_tiny / "checkpoint-last", copy)
    meta = json.loads((copy / "meta.json").read_text())
    landsat = meta["normalization"]["sensors"]["landsat"]
    landsat["mean"], landsat["std"] = landsat["mean"][:5], landsat["std"][:5]
    (copy / "meta.json").write_text(json.dumps(meta))
    trainer = _trainer(
        tmp_path / "run", "segmentation", "finetune_segmentation", 32, 1, copy, sample_data
    )
    with pytest.raises(ValueError) as error:
        trainer.prepare_data()
    message = str(error.value)
    for part in (str(copy), "'landsat'", "5 band(s)", "has 6", "--init none"):
        assert part in message, part


def test_given_statistics_normalise_every_run_alike(tmp_path, sample_data, pretrained_tiny):
    """Statistics passed to the trainer replace the checkpoint's, for a pretrained run and a
    run from random weights alike (the ablation gives every arm the same ones)."""
    statistics = {"landsat": {"mean": [50.0] * 6, "std": [20.0] * 6}}
    pretrained = _trainer(
        tmp_path / "a", "segmentation", "finetune_segmentation", 32, 1, pretrained_tiny,
        sample_data, statistics=statistics,
    )  # fmt: skip
    pretrained.prepare_data()
    config = TrainerConfig(out_dir=str(tmp_path / "b"), max_steps=1, device="cpu", progress=False)
    scratch = FinetuneTrainer(
        config, "segmentation", "finetune_segmentation", init=None,
        data_root=str(sample_data), tile_size=32, statistics=statistics,
    )  # fmt: skip
    scratch.prepare_data()
    assert pretrained.normalization == scratch.normalization == statistics
