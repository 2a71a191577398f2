"""BigEarthNet multi-label classification on the 6 real S2 + S1 sample patches, end to end.

Six patches make any held-out score meaningless, so these tests check that the pipeline is right
instead: the 19-class targets are the published nomenclature's, a short finetune can fit the
training patches (scored by ``msgfm evaluate`` on the training split, beside its class-prior
baseline), and the exported ONNX model gives torch's sigmoid probabilities.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.data.tasks.bigearthnet import BIGEARTHNET19_CLASSES, BigEarthNetDataset
from backend.data.tasks.views import TileSizedDataset
from backend.train.evaluate import checkpoint_predictor, evaluate_model, onnx_predictor
from backend.train.finetune import FinetuneTrainer
from backend.train.trainer import TrainerConfig

# Each sample patch: the CORINE names of its *_labels_metadata.json and their 19-class labels,
# mapped by hand with the BigEarthNet-19 nomenclature (Sumbul et al. 2021, "BigEarthNet-MM",
# Table of the 19 classes; the same table as bigearthnet-common 2.8.0's OLD2NEW_LABELS_DICT).
# Indexes are the paper's class order: 2 Arable land, 4 Pastures, 5 Complex cultivation patterns,
# 6 Land principally occupied by agriculture..., 8 Broad-leaved forest, 9 Coniferous forest,
# 10 Mixed forest, 13 Transitional woodland, shrub, 15 Inland wetlands, 17 Inland waters.
AGRICULTURE_WITH_NATURE = (
    "Land principally occupied by agriculture, with significant areas of natural vegetation"
)
PATCH_LABELS = {
    "S2A_MSIL2A_20170613T101031_87_48": (
        ["Non-irrigated arable land", AGRICULTURE_WITH_NATURE],
        {2: "Arable land", 6: AGRICULTURE_WITH_NATURE},
    ),
    "S2A_MSIL2A_20170617T113321_36_85": (
        ["Non-irrigated arable land", "Pastures"],
        {2: "Arable land", 4: "Pastures"},
    ),
    "S2A_MSIL2A_20170617T113321_4_55": (["Pastures"], {4: "Pastures"}),
    "S2A_MSIL2A_20171221T112501_56_35": (
        [
            "Complex cultivation patterns",
            AGRICULTURE_WITH_NATURE,
            "Broad-leaved forest",
            "Transitional woodland/shrub",
        ],
        {
            5: "Complex cultivation patterns",
            6: AGRICULTURE_WITH_NATURE,
            8: "Broad-leaved forest",
            13: "Transitional woodland, shrub",
        },
    ),
    "S2B_MSIL2A_20170924T93020_69_24": (
        [
            "Coniferous forest",
            "Mixed forest",
            "Transitional woodland/shrub",
            "Peatbogs",
            "Water bodies",
        ],
        {
            9: "Coniferous forest",
            10: "Mixed forest",
            13: "Transitional woodland, shrub",
            15: "Inland wetlands",  # Peatbogs
            17: "Inland waters",  # Water bodies
        },
    ),
    "S2B_MSIL2A_20180204T94161_57_38": (
        ["Non-irrigated arable land", "Coniferous forest", "Mixed forest"],
        {2: "Arable land", 9: "Coniferous forest", 10: "Mixed forest"},
    ),
}
DATA = "finetune_classification"  # the shipped spec: S2 + S1 pairs, label_mode multi
VAL_FRACTION = 0.34  # 2 of the 6 patches held back, 4 to fit
TILE = 32  # centre cut of the 120-pixel patches: enough to tell 4 patches apart, and quick


def test_targets_are_the_published_19_class_labels_of_each_patch(sample_data):
    root = sample_data / "bigearthnet"
    dataset = BigEarthNetDataset(root / "S2", root / "S1", label_mode="multi")
    assert sorted(name for name, *_ in dataset.patches) == sorted(PATCH_LABELS)
    for index, (name, folder, s1_folder, _) in enumerate(dataset.patches):
        corine, expected = PATCH_LABELS[name]
        metadata = json.loads(next(folder.glob("*_labels_metadata.json")).read_text())
        assert metadata["labels"] == corine, name  # the sample is the one the table was made from
        # The S1 partner is the S2 patch's (same labels, named in its metadata).
        s1_metadata = json.loads(next(s1_folder.glob("*_labels_metadata.json")).read_text())
        assert s1_metadata["corresponding_s2_patch"] == name
        assert s1_metadata["labels"] == corine
        target = dataset.target(index)
        assert target.dtype == np.float32 and target.shape == (19,)
        assert np.flatnonzero(target).tolist() == sorted(expected), name
        assert [BIGEARTHNET19_CLASSES[i] for i in sorted(expected)] == [
            expected[i] for i in sorted(expected)
        ]
        np.testing.assert_array_equal(dataset[index]["target"], target)


def _finetune(out, pretrained, sample_data, steps: int, lr: float) -> dict:
    config = TrainerConfig(
        out_dir=str(out), max_steps=steps, batch_size=4, lr=lr, warmup_steps=2, device="cpu",
        progress=False, checkpoint_every=1000, val_every=0,
    )  # fmt: skip
    trainer = FinetuneTrainer(
        config, "classification", DATA, init=str(pretrained), data_root=str(sample_data),
        tile_size=TILE, val_fraction=VAL_FRACTION,
    )  # fmt: skip
    return trainer.fit()


@pytest.fixture(scope="module")
def bigearthnet_runs(tmp_path_factory, sample_data, pretrained_tiny):
    """``(untrained, finetuned)`` run folders: the pretrained tiny encoder with a fresh head, once
    kept as it is (one step at lr 0) and once finetuned for 32 steps on the 4 training patches."""
    folder = tmp_path_factory.mktemp("bigearthnet")
    untrained = _finetune(folder / "untrained", pretrained_tiny, sample_data, 1, 0.0)
    finetuned = _finetune(folder / "finetuned", pretrained_tiny, sample_data, 32, 5e-3)
    for result in (untrained, finetuned):
        assert (result["n_train"], result["n_val"]) == (4, 2)
    return folder / "untrained", folder / "finetuned"


def test_short_finetune_fits_the_training_patches(bigearthnet_runs):
    untrained, finetuned = bigearthnet_runs
    before = evaluate_model(str(untrained), split_part="train")
    after = evaluate_model(str(finetuned), split_part="train")
    assert before["n_samples"] == after["n_samples"] == 4 and after["n_train"] == 4
    assert after["split"] == {
        "part": "train", "val_fraction": VAL_FRACTION, "test_fraction": 0.0, "seed": 0, "fold": None
    }  # fmt: skip
    # The baseline scores every patch with the training split's class frequencies: the same
    # for both models, and better than a random head, which ranks labels by chance.
    baseline = after["baseline"]["metrics"]
    assert baseline == before["baseline"]["metrics"]
    assert after["baseline"]["name"] == "class prior of the training split"
    micro_before, micro_after = before["metrics"]["map_micro"], after["metrics"]["map_micro"]
    assert micro_after > 0.9, (micro_before, micro_after)
    assert micro_after > micro_before + 0.5, (micro_before, micro_after)
    assert micro_after > baseline["map_micro"] + 0.3, (baseline["map_micro"], micro_after)
    assert after["metrics"]["map_macro"] > baseline["map_macro"]


def test_onnx_export_gives_the_torch_sigmoid_probabilities(bigearthnet_runs, sample_data, tmp_path):
    from backend.export.onnx_export import export_checkpoint

    _, finetuned = bigearthnet_runs
    model = tmp_path / "bigearthnet.onnx"
    report = export_checkpoint(finetuned / "checkpoint-best", model)
    assert report.max_abs_diff < 1e-4

    torch_predict, meta = checkpoint_predictor(str(finetuned))
    onnx_predict, metadata = onnx_predictor(str(model))
    assert meta["task_spec"]["multilabel"] and meta["task_spec"]["sensors"] == ["s2", "sar"]
    assert [i.sensor for i in metadata.inputs] == ["s2", "sar"]
    probability = next(o for o in metadata.outputs if o.kind == "probability")
    assert probability.multilabel and probability.bands == list(BIGEARTHNET19_CLASSES)
    # All 6 real patches in one batch (the export traced batch 2).
    root = sample_data / "bigearthnet"
    patches = TileSizedDataset(BigEarthNetDataset(root / "S2", root / "S1"), TILE)
    samples = [patches[i] for i in range(len(patches))]
    from_torch, from_onnx = torch_predict(samples), onnx_predict(samples)
    assert from_onnx.shape == from_torch.shape == (6, 19)
    assert np.abs(from_onnx - from_torch).max() < 1e-5
    # Independent labels per class (sigmoid), not one distribution over classes (softmax).
    assert not np.allclose(from_onnx.sum(axis=1), 1.0, atol=0.05)
    assert ((from_onnx > 0) & (from_onnx < 1)).all()

    # ``msgfm evaluate`` on the .onnx scores the training patches as on the checkpoint.
    by_checkpoint = evaluate_model(str(finetuned), split_part="train")
    by_onnx = evaluate_model(
        str(model), DATA, str(sample_data), val_fraction=VAL_FRACTION, split_part="train"
    )
    assert by_onnx["model_kind"] == "onnx" and by_onnx["n_samples"] == 4
    for key in ("map_micro", "map_macro", "f1_micro", "f1_macro"):
        assert by_onnx["metrics"][key] == pytest.approx(by_checkpoint["metrics"][key], abs=1e-6)
