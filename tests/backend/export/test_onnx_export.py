"""ONNX export of task models and the encoder: ONNX Runtime parity on real tiles at another batch
size, metadata round trip, inference-engine runs on a real raster, and parity failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch

from backend.checkpoints import save_checkpoint
from backend.export.onnx_export import ExportParityError, export_checkpoint
from backend.export.schema import read_model_metadata
from backend.models.config import ModelConfig
from backend.models.cross_sensor_mim import MsGFMPretrainModel
from backend.models.tasks import TaskSpec, build_task_model
from backend.sensors import get_sensor, normalize

TILE = 96
EXPORT_BATCH = 2
LANDSAT_FILES = [f"lsat7_2000_{n}.tif" for n in (10, 20, 30, 40, 50, 70)]


def tiny_config() -> ModelConfig:
    """Four stages (strides 4-32) and MoE blocks in stages 3 and 4, small enough to export fast."""
    return ModelConfig(
        name="tiny",
        embed_dim=16,
        depths=[1, 1, 2, 1],
        num_heads=[1, 1, 2, 4],
        window_size=6,
        image_size=TILE,
        num_experts=4,
    )


def _root(sample_data: Path) -> Path:
    return sample_data / "samples" if (sample_data / "samples").is_dir() else sample_data


@pytest.fixture(scope="module")
def landsat_raster(sample_data, tmp_path_factory) -> Path:
    """A 6-band 256 x 256 GeoTIFF crop of the GRASS NC Landsat-7 scene (bands in sensor order)."""
    import rasterio
    from rasterio.windows import Window

    window = Window(100, 80, 256, 256)
    bands = []
    for name in LANDSAT_FILES:
        with rasterio.open(_root(sample_data) / "landcover" / name) as dataset:
            bands.append(dataset.read(1, window=window))
            profile = dataset.profile
            transform = dataset.window_transform(window)
    path = tmp_path_factory.mktemp("rasters") / "landsat.tif"
    profile.update(count=6, width=256, height=256, transform=transform, tiled=False)
    with rasterio.open(path, "w", **profile) as out:
        out.write(np.stack(bands))
    return path


@pytest.fixture(scope="module")
def real_tiles(sample_data, landsat_raster) -> Dict[str, np.ndarray]:
    """Normalised real tiles: 6 BigEarthNet S2 + S1 pairs, 6 Landsat tiles, 4 pan + MS tiles."""
    import rasterio

    from backend.data.tasks import BigEarthNetDataset, PanSharpeningDataset
    from backend.data.tasks.spacenet import find_pan_ms_pairs

    root = _root(sample_data)
    bigearthnet = BigEarthNetDataset(root / "bigearthnet" / "S2", root / "bigearthnet" / "S1")
    pairs = [bigearthnet[i]["inputs"] for i in range(len(bigearthnet))]
    crop = slice(12, 12 + TILE)
    tiles = {s: normalize(s, np.stack([p[s][:, crop, crop] for p in pairs])) for s in ("s2", "sar")}
    with rasterio.open(landsat_raster) as dataset:
        image = dataset.read().astype(np.float32)
    origins = [(0, 0), (0, 160), (160, 0), (160, 160), (80, 80), (40, 120)]
    tiles["landsat"] = normalize(
        "landsat", np.stack([image[:, r : r + TILE, c : c + TILE] for r, c in origins])
    )
    pan_ms = PanSharpeningDataset(find_pan_ms_pairs(root / "pan_ms"), "reduced", tile_size=TILE)
    samples = [pan_ms[i] for i in range(4)]
    for s in ("pan", "ms"):
        tiles[s] = normalize(s, np.stack([x["inputs"][s] for x in samples]))
    return {k: np.nan_to_num(v).astype(np.float32) for k, v in tiles.items()}


SPECS = {
    # Multi-label (sigmoid) on Landsat, so that the engine test below can run it on a raster.
    "classification": TaskSpec(
        "classification",
        ["landsat"],
        3,
        class_names=["water", "forest", "developed"],
        class_colors=["#0000ff", "#00aa00", "#ff0000"],
        class_values=[1, 2, 5],
        multilabel=True,
        image_size=TILE,
    ),
    "segmentation": TaskSpec(
        "segmentation",
        ["landsat"],
        3,
        class_names=["water", "forest", "developed"],
        class_colors=["#0000ff", "#00aa00", "#ff0000"],
        class_values=[1, 2, 5],
        image_size=TILE,
    ),
    "cloud-removal": TaskSpec("cloud-removal", ["s2", "sar"], image_size=TILE),
    "pansharpening": TaskSpec("pansharpening", ["pan", "ms"], image_size=TILE),
}
NORMALIZATION = {
    "ms": {"mean": [150.0, 190.0, 200.0, 370.0], "std": [180.0, 200.0, 230.0, 340.0]},
    "landsat": {"mean": [80.0, 66.0, 66.0, 69.0, 89.0, 59.0], "std": [15, 16, 23, 15, 25, 23]},
}


def make_task_checkpoint(folder: Path, spec: TaskSpec, seed: int = 0) -> Path:
    """A finetuning checkpoint of ``spec`` as the finetuning trainer writes it.

    The weights are random, but every head weight is non-zero (the residual heads start at zero,
    which would make the parity of their output trivially exact).
    """
    torch.manual_seed(seed)
    model = build_task_model(tiny_config(), spec)
    with torch.no_grad():
        for parameter in model.head.parameters():
            if not parameter.abs().sum():
                parameter.normal_(0.0, 0.05)
        gate = getattr(model.head, "gate", None)
        if gate is not None:
            # The gated head starts with no cloud anywhere (its output is its input): open the
            # gate on part of the tile, so that parity covers the correction and the weight.
            gate.bias.fill_(0.3)
    meta = {
        "task": spec.task,
        "model_config": model.config.to_dict(),
        "task_spec": spec.to_dict(),
        "normalization": NORMALIZATION,
        "metrics": {"accuracy": 0.5, "n_samples": 6},
        "trained_on": "test fixture: random weights",
        "init": {"loaded": ["s2"], "initialised_from": {}, "random": []},
        "msgfm_version": "9.9.9",
    }
    return save_checkpoint(folder / "checkpoint-last", model, {}, meta)


def _torch_outputs(checkpoint: Path, spec: TaskSpec, inputs: Dict[str, np.ndarray]) -> np.ndarray:
    from safetensors.torch import load_model

    model = build_task_model(tiny_config(), spec)
    load_model(model, str(checkpoint / "model.safetensors"))
    with torch.no_grad():
        output = model.eval()({s: torch.from_numpy(inputs[s]) for s in spec.sensors})
    if spec.task == "classification":
        return output.sigmoid().numpy()
    if spec.task == "segmentation":
        return output.softmax(dim=1).numpy()
    return output.numpy()


@pytest.fixture(scope="module")
def exported(real_tiles, tmp_path_factory):
    """``exported(task)``: (checkpoint, export report, folder) of SPECS[task], exported once."""
    cache = {}

    def export(task: str):
        if task not in cache:
            spec = SPECS[task]
            folder = tmp_path_factory.mktemp(task)
            checkpoint = make_task_checkpoint(folder / "run", spec)
            report = export_checkpoint(
                folder / "run",
                folder / "model.onnx",
                batch_size=EXPORT_BATCH,
                sample_inputs={s: real_tiles[s] for s in spec.sensors},
            )
            cache[task] = (checkpoint, report, folder)
        return cache[task]

    return export


@pytest.mark.parametrize("task", list(SPECS))
def test_task_export_matches_torch_and_describes_itself(task, real_tiles, exported):
    import onnxruntime

    spec = SPECS[task]
    samples = {s: real_tiles[s] for s in spec.sensors}
    checkpoint, report, tmp_path = exported(task)
    assert report.max_abs_diff < 1e-4
    assert report.parity_batch_size != EXPORT_BATCH and report.parity_inputs == "real tiles"
    assert report.experts_unused == 0  # every expert of every MoE block got parity tokens
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "run"]  # one file

    metadata = read_model_metadata(tmp_path / "model.onnx")
    assert metadata.to_dict() == report.metadata.to_dict()
    assert metadata.task == task and metadata.tile_size == TILE
    assert [i.name for i in metadata.inputs] == spec.sensors
    for spec_input in metadata.inputs:
        sensor = get_sensor(spec_input.sensor)
        assert spec_input.bands == list(sensor.bands)
        expected = NORMALIZATION.get(sensor.name, {"mean": list(sensor.mean)})["mean"]
        assert spec_input.mean == pytest.approx(expected)
    assert metadata.model_version == "9.9.9" and metadata.metrics["n_samples"] == 6
    assert metadata.extra["export"]["max_abs_diff"] == report.max_abs_diff
    assert TaskSpec.from_dict(metadata.extra["task_spec"]) == spec
    kinds = [o.kind for o in metadata.outputs]
    if task in ("classification", "segmentation"):
        assert kinds == ["class", "probability"]
        probabilities = metadata.outputs[1]
        assert [c.value for c in probabilities.classes] == spec.class_values
        assert probabilities.bands == spec.class_names
        assert probabilities.stride == (TILE if task == "classification" else 1)
        assert probabilities.multilabel == spec.multilabel
    else:
        (output,) = metadata.outputs
        assert kinds == ["reflectance"] and output.sensor == spec.target_sensor
        stats = NORMALIZATION.get(spec.target_sensor)
        sensor = get_sensor(spec.target_sensor)
        assert output.scale == pytest.approx(stats["std"] if stats else list(sensor.std))
        assert output.offset == pytest.approx(stats["mean"] if stats else list(sensor.mean))

    # Independently of the exporter's own check: the written file at batch 3 equals torch.
    session = onnxruntime.InferenceSession(
        str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    inputs = {s: np.ascontiguousarray(samples[s][:3]) for s in spec.sensors}
    got = session.run([metadata.outputs[-1].name], inputs)[0]
    want = _torch_outputs(checkpoint, spec, inputs)
    assert got.shape == want.shape and got.shape[0] == 3
    assert np.abs(got - want).max() < 1e-4
    assert want.std() > 1e-3  # the outputs vary: the comparison is not between constants


@pytest.fixture(scope="module")
def pretrain_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(3)
    config = tiny_config()
    model = MsGFMPretrainModel(config)
    meta = {
        "task": "pretrain",
        "model_config": config.to_dict(),
        "normalization": {},
        "manifest": {"name": "samples", "sources": [{"name": "bigearthnet", "scenes": 6}]},
        "msgfm_version": "9.9.9",
    }
    folder = tmp_path_factory.mktemp("pretrain")
    save_checkpoint(folder / "checkpoint-last", model, {}, meta)
    return folder


def test_encoder_exports_as_an_embedding_model(pretrain_checkpoint, real_tiles, tmp_path):
    import onnxruntime
    from safetensors.torch import load_file

    samples = {s: real_tiles[s] for s in ("s2", "sar")}  # 6 tiles: 54 stage-4 tokens
    report = export_checkpoint(
        pretrain_checkpoint,
        tmp_path / "embedding.onnx",
        batch_size=EXPORT_BATCH,
        sample_inputs=samples,
        sensors=["s2", "sar"],
    )
    assert report.max_abs_diff < 1e-4 and report.experts_unused == 0
    assert report.parity_batch_size == 6
    metadata = read_model_metadata(report.path)
    assert metadata.task == "embedding" and metadata.sensors == ["s2", "sar"]
    (output,) = metadata.outputs
    assert output.kind == "embedding" and output.stride == 32
    assert len(output.bands) == tiny_config().stage_dims[-1] == 128
    assert "bigearthnet (6 scenes)" in metadata.trained_on
    # The overlap is a whole number of embedding cells.
    assert (metadata.default_overlap * TILE) % 32 == pytest.approx(0.0, abs=1e-6)

    state = load_file(str(pretrain_checkpoint / "checkpoint-last" / "model.safetensors"))
    model = MsGFMPretrainModel(tiny_config())
    model.load_state_dict(state)
    inputs = {s: np.ascontiguousarray(samples[s][:5]) for s in samples}
    with torch.no_grad():
        want = model.encoder.eval()({s: torch.from_numpy(v) for s, v in inputs.items()})
    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    got = session.run(["embedding"], inputs)[0]
    assert got.shape == (5, 128, 3, 3)
    assert np.abs(got - want.features[-1].numpy()).max() < 1e-4

    with pytest.raises(ValueError, match="choose the encoder input sensor"):
        export_checkpoint(pretrain_checkpoint, tmp_path / "x.onnx")


def test_embedding_export_carries_the_statistics_the_encoder_was_trained_with(real_tiles, tmp_path):
    # A pretraining checkpoint nests its statistics under "sensors" (msgfm data stats format);
    # the export once looked them up at the top level and fell back to the registry defaults.
    torch.manual_seed(4)
    config = tiny_config()
    config.embedding_stages = [0, 1, 2, 3]
    model = MsGFMPretrainModel(config)
    trained = {
        "s2": {"mean": [1003.0 + i for i in range(12)], "std": [500.0 + i for i in range(12)]},
        "sar": {"mean": [-11.18, -18.0], "std": [3.1, 3.3]},
    }
    meta = {
        "task": "pretrain",
        "model_config": config.to_dict(),
        "normalization": {"sensors": trained, "crops": 256},
        "msgfm_version": "9.9.9",
    }
    save_checkpoint(tmp_path / "run" / "checkpoint-last", model, {}, meta)
    samples = {"sar": real_tiles["sar"]}
    report = export_checkpoint(
        tmp_path / "run", tmp_path / "sar.onnx", sample_inputs=samples, sensors=["sar"]
    )
    (spec,) = read_model_metadata(report.path).inputs
    assert spec.mean == pytest.approx(trained["sar"]["mean"])
    assert spec.std == pytest.approx(trained["sar"]["std"])
    assert spec.mean != pytest.approx(list(get_sensor("sar").mean))
    # Multi-stage embedding: every stage pooled onto the stride-32 grid, concatenated.
    (output,) = read_model_metadata(report.path).outputs
    assert len(output.bands) == sum(config.stage_dims) == 16 + 32 + 64 + 128
    import onnxruntime

    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    got = session.run(["embedding"], {"sar": samples["sar"][:2]})[0]
    with torch.no_grad():
        features = model.encoder.eval()({"sar": torch.from_numpy(samples["sar"][:2])}).features
    stage1_pooled = torch.nn.functional.avg_pool2d(features[0], 8).numpy()
    assert got.shape == (2, 240, 3, 3)
    assert np.abs(got[:, :16] - stage1_pooled).max() < 1e-4
    assert np.abs(got[:, -128:] - features[-1].numpy()).max() < 1e-4


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_exported_class_model_runs_through_the_engine(task, landsat_raster, exported, tmp_path):
    import rasterio

    from backend.inference import RasterInput, run_inference

    spec = SPECS[task]
    checkpoint, report, _ = exported(task)
    model_path = report.path
    result = run_inference(
        model_path, [RasterInput("landsat", landsat_raster)], tmp_path / "classes.tif"
    )
    classes_path, probabilities_path = map(Path, result.outputs)
    assert probabilities_path.name == "classes_probabilities.tif"
    with rasterio.open(landsat_raster) as reference, rasterio.open(classes_path) as classes:
        values = classes.read(1)
        assert classes.dtypes[0] == "uint8" and classes.crs == reference.crs
        assert classes.colormap(1)[5][:3] == (255, 0, 0)
        nodata = classes.nodata
        cell = TILE if task == "classification" else 1
        assert classes.width == max(1, reference.width // cell)  # whole cells inside the input
        assert classes.transform.a == pytest.approx(reference.transform.a * cell)
    assert set(np.unique(values)) <= {1, 2, 5}  # every cell predicted, only class values
    assert nodata not in (1, 2, 5)
    with rasterio.open(probabilities_path) as probabilities:
        blended = probabilities.read()
    assert blended.shape[0] == 3
    assert np.array_equal(np.array([1, 2, 5])[blended.argmax(axis=0)], values)
    if task == "segmentation":
        assert blended.sum(axis=0) == pytest.approx(1.0, abs=1e-4)
        assert len(np.unique(values)) >= 2  # a real map, not one class everywhere
    else:
        # The top-left window is a whole tile: its cell is the torch prediction for it.
        with rasterio.open(landsat_raster) as dataset:
            tile = dataset.read(window=((0, TILE), (0, TILE))).astype(np.float32)
        probabilities = _torch_outputs(
            checkpoint, spec, {"landsat": normalize("landsat", tile[None])}
        )
        assert [1, 2, 5][int(probabilities[0].argmax())] == values[0, 0]


def test_parity_failure_names_the_difference_and_leaves_no_file(real_tiles, tmp_path, monkeypatch):
    from backend.export import onnx_export

    make_task_checkpoint(tmp_path / "run", SPECS["cloud-removal"])
    real_run = onnx_export._onnx_outputs

    def corrupted(session, feeds, names):
        return [output + np.float32(0.01) for output in real_run(session, feeds, names)]

    monkeypatch.setattr(onnx_export, "_onnx_outputs", corrupted)
    with pytest.raises(ExportParityError, match=r"'reflectance' by max abs diff 0\.01 > tolerance"):
        export_checkpoint(
            tmp_path / "run",
            tmp_path / "model.onnx",
            sample_inputs={s: real_tiles[s] for s in ("s2", "sar")},
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_export_cli_checks_parity_on_a_real_raster(exported, landsat_raster, tmp_path, capsys):
    from backend.cli import main

    checkpoint, _, _ = exported("segmentation")
    out = tmp_path / "landcover.onnx"
    arguments = ["export", "--checkpoint", str(checkpoint), "--out", str(out)]
    code = main([*arguments, "--parity-raster", f"landsat={landsat_raster}", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parity_inputs"] == "real tiles" and report["parity_batch_size"] == 4
    assert 0 <= report["max_abs_diff"] < 1e-4 and report["path"] == str(out)
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == "segmentation"
    assert main(["info", str(out)]) == 0
    summary = capsys.readouterr().out
    assert summary.startswith("msgfm-lite-segmentation") or ": segmentation model" in summary
    assert "Input 'landsat': sensor landsat, 6 bands" in summary
    with pytest.raises(SystemExit, match="has 6 bands; the s2 input takes 12"):
        main([*arguments, "--parity-raster", f"s2={landsat_raster}"])


def test_bad_sample_inputs_are_named(tmp_path, real_tiles):
    make_task_checkpoint(tmp_path / "run", SPECS["segmentation"])
    with pytest.raises(ValueError, match=r"sample input 'landsat' has shape \[6, 6, 64, 64\]"):
        export_checkpoint(
            tmp_path / "run",
            tmp_path / "model.onnx",
            sample_inputs={"landsat": real_tiles["landsat"][:, :, :64, :64]},
        )
    with pytest.raises(ValueError, match=r"sample inputs lack sensors \['landsat'\]"):
        export_checkpoint(
            tmp_path / "run", tmp_path / "model.onnx", sample_inputs={"s2": real_tiles["s2"]}
        )
    assert not (tmp_path / "model.onnx").exists()
