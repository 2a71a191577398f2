"""``msgfm evaluate`` on a finetuned checkpoint and on its exported ONNX model, with baselines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.train.finetune import FinetuneTrainer
from backend.train.trainer import TrainerConfig


@pytest.fixture(scope="module")
def segmentation_run(tmp_path_factory, sample_data, pretrained_tiny):
    out = tmp_path_factory.mktemp("evaluate") / "run"
    config = TrainerConfig(
        out_dir=str(out), max_steps=6, batch_size=8, lr=3e-3, warmup_steps=2, device="cpu",
        progress=False, checkpoint_every=1000,
    )  # fmt: skip
    trainer = FinetuneTrainer(
        config, "segmentation", "finetune_segmentation", init=str(pretrained_tiny),
        data_root=str(sample_data), tile_size=32, test_fraction=0.2,
    )  # fmt: skip
    trainer.fit()
    return out


def _evaluate(capfd, *args):
    from backend.cli import main

    assert main(["evaluate", *args, "--json"]) == 0
    return json.loads(capfd.readouterr().out.strip().splitlines()[-1])


def test_evaluate_checkpoint_matches_validation_and_scores_the_baseline(
    segmentation_run, sample_data, capfd
):
    report = _evaluate(
        capfd, "--model", str(segmentation_run), "--task", "segmentation", "--split", "val"
    )
    meta = json.loads((segmentation_run / "checkpoint-best" / "meta.json").read_text())
    # Same validation tiles as the run's (the checkpoint records data and split).
    assert report["n_samples"] == meta["data"]["n_val"] == meta["metrics"]["n_samples"]
    assert report["sensors"] == ["landsat"]
    for key in ("overall_accuracy", "mean_iou", "iou_forest"):
        assert report["metrics"][key] == pytest.approx(meta["metrics"][key], abs=1e-9)

    # Baseline: the training split's majority class everywhere; its OA is that class's share
    # of the held-back labelled pixels.
    from backend.data.tasks import split
    from backend.data.tasks.views import TileSizedDataset
    from backend.train.data_spec import build_dataset, load_data_spec

    dataset = build_dataset(load_data_spec("finetune_segmentation"), "segmentation", sample_data)
    train, held, _ = split(dataset, 0.2, 0, test_fraction=0.2)
    train_labels = np.concatenate([dataset.seen_labels(i).ravel() for i in train.indices])
    majority = np.bincount(train_labels[train_labels != 255]).argmax()
    held_labels = np.concatenate([s["target"].ravel() for s in TileSizedDataset(held, 32)])
    held_labels = held_labels[held_labels != 255]
    baseline = report["baseline"]["metrics"]
    assert baseline["overall_accuracy"] == pytest.approx(np.mean(held_labels == majority))
    assert baseline["n_pixels"] == report["metrics"]["n_pixels"] == held_labels.size


def test_evaluate_scores_the_test_split_by_default(segmentation_run, capfd):
    from backend.cli import main

    report = _evaluate(capfd, "--model", str(segmentation_run))
    meta = json.loads((segmentation_run / "checkpoint-best" / "meta.json").read_text())
    assert report["split"]["part"] == "test"
    assert report["n_samples"] == report["n_test"] == meta["data"]["n_test"] > 0
    assert (report["n_train"], report["n_val"]) == (meta["data"]["n_train"], meta["data"]["n_val"])
    # A run without a test set is not scored on its validation tiles behind the user's back.
    meta["data"]["test_fraction"] = 0.0
    untested = segmentation_run.parent / "untested"
    (untested / "checkpoint-best").mkdir(parents=True)
    for name in ("model.safetensors",):
        (untested / "checkpoint-best" / name).write_bytes(
            (segmentation_run / "checkpoint-best" / name).read_bytes()
        )
    (untested / "checkpoint-best" / "meta.json").write_text(json.dumps(meta))
    assert main(["evaluate", "--model", str(untested)]) == 2
    assert "without a test set" in capfd.readouterr().err


def test_evaluate_onnx_export_gives_the_checkpoint_metrics(
    segmentation_run, sample_data, tmp_path, capfd
):
    export = pytest.importorskip("backend.export.onnx_export")
    onnx_path = tmp_path / "segmentation.onnx"
    export.export_checkpoint(segmentation_run / "checkpoint-best", onnx_path)
    from_checkpoint = _evaluate(capfd, "--model", str(segmentation_run))
    from_onnx = _evaluate(
        capfd, "--model", str(onnx_path), "--data", "finetune_segmentation",
        "--data-root", str(sample_data), "--test-fraction", "0.2",
    )  # fmt: skip
    assert (
        from_onnx["model_kind"] == "onnx" and from_onnx["n_samples"] == from_checkpoint["n_samples"]
    )
    for key, value in from_checkpoint["metrics"].items():
        if value is None:  # undefined (a class absent from the tiles): null in JSON
            assert from_onnx["metrics"][key] is None, key
        else:
            assert from_onnx["metrics"][key] == pytest.approx(value, abs=1e-3), key


def test_evaluate_errors_are_clear(tmp_path, segmentation_run, capfd):
    from backend.cli import main

    assert (
        main(
            [
                "evaluate",
                "--model",
                str(tmp_path / "missing.onnx"),
                "--data",
                "finetune_segmentation",
            ]
        )
        == 2
    )
    assert "does not exist" in capfd.readouterr().err
    assert main(["evaluate", "--model", str(segmentation_run), "--task", "pansharpening"]) == 2
    assert "is a segmentation model" in capfd.readouterr().err


def test_class_comparison_intervals_separate_a_good_model_from_the_majority():
    from backend.train.evaluate import ClassComparison

    rng = np.random.default_rng(0)
    comparison = ClassComparison(3, draws=300)
    for row in range(0, 20 * 32, 32):
        for col in range(0, 4 * 32, 32):
            label = int(rng.choice(3, p=[0.6, 0.3, 0.1]))
            model = np.eye(3)[label if rng.random() < 0.9 else (label + 1) % 3]
            prior = np.array([0.2, 0.7, 0.1])  # the training prior's majority is class 1
            sample = {"inputs": {"x": np.zeros((1, 32, 32))}, "target": np.array(label)}
            comparison.add([model], [prior], [{**sample, "row": row, "col": col}])
    result = comparison.result()
    assert result["split_majority_class"] == 0
    assert result["n_blocks"] == 10 * 2
    for other in ("baseline", "split_majority"):
        low, high = result["intervals_95"][f"model_minus_{other}"]["overall_accuracy"]
        assert 0 < low < high
    scores = result["scores"]
    assert scores["model"]["overall_accuracy"] > 0.8
    assert scores["split_majority"]["overall_accuracy"] == pytest.approx(
        scores["split_majority"]["overall_accuracy"]
    )


def test_clear_scene_check_measures_what_cloud_removal_does_to_a_clear_scene():
    from backend.train.evaluate import clear_scene_check

    rng = np.random.default_rng(1)
    samples = [
        {"inputs": {"s2": None, "sar": None}, "target": rng.uniform(100, 3000, (12, 8, 8))}
        for _ in range(3)
    ]
    identity = clear_scene_check(
        lambda batch: np.stack([s["inputs"]["s2"] for s in batch]), samples
    )
    assert identity["outside_physical_range"] == 0.0
    assert identity["changed_by_more_than_1"] == 0.0
    assert identity["largest_band_mean_change"] == pytest.approx(0.0, abs=1e-6)

    def darken_first_band(batch):
        out = np.stack([np.array(s["inputs"]["s2"], dtype=np.float64) for s in batch])
        out[:, 0] = -5.0
        return out

    dark = clear_scene_check(darken_first_band, samples, batch_size=2)
    assert dark["outside_physical_range"] == pytest.approx(1 / 12)
    assert dark["band_mean_ratio"][0] < 0 and dark["largest_band_mean_change"] > 1


def test_per_sample_record_gives_back_the_segmentation_scores(segmentation_run, capfd):
    """Each test tile's confusion matrix is recorded; summed they give the reported OA and mIoU
    of the model and of the baseline (what the ablation's paired bootstrap resamples)."""
    from backend.train.paired import ScoreOfSamples

    report = _evaluate(capfd, "--model", str(segmentation_run))
    record = report["per_sample"]
    assert record["kind"] == "confusion" and len(record["ids"]) == report["n_samples"]
    assert len(set(record["ids"])) == len(record["ids"])
    # 64 px tiles every 32 px, cut to 32 px: neighbours share a block of 2 x 2 tile sizes.
    assert len(set(record["blocks"])) < len(record["blocks"])
    every = np.arange(len(record["ids"]))
    for arm, scores in (("model", report["metrics"]), ("baseline", report["baseline"]["metrics"])):
        for key in ("overall_accuracy", "mean_iou"):
            assert ScoreOfSamples(record, arm, key)(every) == pytest.approx(scores[key], abs=1e-12)
