"""Evaluating long pretraining runs: curves, selection on the validation probe, one final score.

The long runs of ``scripts/pretrain_long.py`` keep a checkpoint every few thousand steps. This
module scores every kept checkpoint once, on what pretraining never reads:

- the **validation** part of the BigEarthNet probe (:func:`.probe.probe_encoder`, ``part=
  "validation"``): linear and k-NN micro mAP beside random-init encoders of the same config,
  with standard errors, and the effective rank;
- the **held-out reconstruction check** on the same patches (:mod:`.heldout`): masked L1 against
  the visible-mean predictor.

Each patch set is normalised with the statistics of its own product level
(:func:`.probe.normalization_for`): the BigEarthNet patches are L2A, the corpus' Sentinel-2 scenes
L1C.

Selection uses the validation part only: per run, the checkpoint of the highest validation linear
mAP; per recipe, the mean of its runs' selected scores; the recipe with the highest mean wins.
Then every selected checkpoint is scored **once** on the **final** part, and the recipe's margin
over random init is bootstrapped over the final patches, the same resampled patches for every
seed (a paired bootstrap: seeds share patches), so its interval says whether pretraining beat
random weights on patches no choice was made on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .probe import micro_map

SET = "bigearthnet-s2"
RUN_NAME = re.compile(r"^(?P<recipe>.+)-seed(?P<seed>\d+)$")


def kept_checkpoints(run: Path) -> List[Tuple[int, Path]]:
    """``(step, folder)`` of a run's kept checkpoints (``checkpoint-<step>``), by step."""
    found = []
    for folder in Path(run).glob("checkpoint-[0-9]*"):
        if (folder / "model.safetensors").is_file() and (folder / "meta.json").is_file():
            found.append((int(folder.name.split("-")[1]), folder))
    return sorted(found)


def _load_pretrain_model(folder: Path):
    """The pretraining model (encoder and decoders) of a checkpoint, its config and its meta.json."""
    import torch
    from safetensors.torch import load_file

    from ..models.config import ModelConfig
    from ..models.cross_sensor_mim import MsGFMPretrainModel

    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    config = ModelConfig.from_dict(meta["model_config"])
    model = MsGFMPretrainModel(config)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    model.eval()
    torch.manual_seed(0)
    return model, config, meta


def _set_summary(entry: Mapping[str, Any]) -> Dict[str, Any]:
    keys = ("linear_map_micro", "knn_map_micro", "effective_rank")
    errors = entry.get("standard_errors", {})
    return {
        "n_patches": entry["n_patches"],
        "encoder": {k: entry["encoder"][k] for k in keys},
        "encoder_se": errors.get("encoder_se"),
        "random_init_mean": {k: entry["random_init_mean"][k] for k in keys},
        "margin_over_random": entry["margin_over_random"],
        "margin_over_random_se": errors.get("margin_over_random_se"),
        "class_prior": entry["class_prior"]["map_micro"],
    }


def evaluate_checkpoint(
    folder: Path,
    sample_root: Path,
    sets: Optional[Sequence[Any]] = None,
    draws: int = 1000,
    random_seeds: int = 3,
) -> Dict[str, Any]:
    """The validation probe and held-out reconstruction check of one checkpoint."""
    from . import heldout, probe

    sets = list(sets) if sets is not None else probe.bigearthnet_probe_sets(sample_root)
    report = probe.probe_encoder(
        folder,
        sample_root,
        random_seeds=random_seeds,
        probe_sets=sets,
        part="validation",
        permutations=0,
        draws=draws,
    )
    model, config, meta = _load_pretrain_model(folder)
    statistics = meta["normalization"]
    out: Dict[str, Any] = {"sets": {}, "heldout": {}, "not_probed": report["not_probed"]}
    out["seen"] = seen_crops_check(meta, model, config, sample_root)
    for name, entry in report["sets"].items():
        out["sets"][name] = _set_summary(entry)
    for whole in sets:
        part = probe.split_probe_set(whole, "validation")
        if part.name not in out["sets"]:
            continue
        normalization = probe.normalization_for(statistics, part)
        images, valid = heldout.normalised_crops(
            part.images, normalization[part.sensor], config.image_size
        )
        out["heldout"][part.name] = heldout.reconstruction_check(model, part.sensor, images, valid)
    return out


def seen_crops_check(
    meta: Mapping[str, Any],
    model: Any,
    config: Any,
    sample_root: Path,
    sensors: Sequence[str] = ("s2",),
    crops: int = 24,
    seed: int = 123,
) -> Dict[str, Any]:
    """The reconstruction check on crops of the run's own corpus (scenes it trains on; a seed no
    run draws with), beside the held-out one: a model that beats the visible-mean predictor
    here but not on the held-out patches has learned its few scenes, not the sensor."""
    import torch

    from ..data.manifest import load_manifest
    from ..data.pretrain_dataset import BandNormalizer, PretrainCropDataset
    from . import heldout

    statistics = meta["normalization"]
    name = meta.get("manifest", {}).get("name") if isinstance(meta.get("manifest"), dict) else None
    if not name:
        return {}
    dataset = PretrainCropDataset(
        load_manifest(name, root=sample_root),
        config.image_size,
        seed=seed,
        normalizer=BandNormalizer(statistics["sensors"]),
        flips=False,
    )
    found: Dict[str, List[np.ndarray]] = {sensor: [] for sensor in sensors}
    for index in range(crops * 40):
        sample = dataset.sample(index)
        if sample.sensor in found and len(found[sample.sensor]) < crops:
            found[sample.sensor].append(np.asarray(sample.image, dtype=np.float32))
        if all(len(v) >= crops for v in found.values()):
            break
    out = {}
    for sensor, images in found.items():
        if images:
            stack = np.stack(images)
            valid = torch.from_numpy(np.isfinite(stack).all(axis=1))
            tensor = torch.from_numpy(np.nan_to_num(stack))
            out[sensor] = heldout.reconstruction_check(model, sensor, tensor, valid)
            out[sensor]["crops"] = len(images)
    return out


def evaluate_runs(
    out: Path,
    results_path: Path,
    sample_root: Path,
    say=print,
    draws: int = 1000,
    random_seeds: int = 3,
) -> Dict[str, Any]:
    """Score every kept checkpoint of every run under ``out`` not yet in ``results_path``.

    The results file is rewritten after each checkpoint (atomically), so an interrupted
    evaluation continues where it stopped.
    """
    from . import probe

    results = _read(results_path)
    sets = probe.bigearthnet_probe_sets(sample_root)
    for run in sorted(p for p in Path(out).iterdir() if RUN_NAME.match(p.name)):
        entry = results["runs"].setdefault(run.name, {"checkpoints": {}})
        match = RUN_NAME.match(run.name)
        entry["recipe"], entry["seed"] = match["recipe"], int(match["seed"])
        for step, folder in kept_checkpoints(run):
            if str(step) in entry["checkpoints"]:
                continue
            say(f"{run.name} step {step}: scoring the validation probe and held-out check")
            entry["checkpoints"][str(step)] = evaluate_checkpoint(
                folder, sample_root, sets, draws, random_seeds
            )
            _write(results_path, results)
    return results


def select(results: Mapping[str, Any], set_name: str = f"{SET}-validation") -> Dict[str, Any]:
    """Per run the checkpoint of the best validation linear mAP; per recipe the mean over its
    runs; the winning recipe. Runs with no scored checkpoint are left out."""
    chosen: Dict[str, Dict[str, Any]] = {}
    for name, run in results["runs"].items():
        scored = [
            (int(step), c["sets"][set_name]["encoder"]["linear_map_micro"])
            for step, c in run["checkpoints"].items()
            if set_name in c["sets"]
        ]
        if not scored:
            continue
        step, score = max(scored, key=lambda item: (item[1], -item[0]))
        chosen[name] = {"recipe": run["recipe"], "seed": run["seed"], "step": step, "score": score}
    recipes: Dict[str, List[float]] = {}
    for run in chosen.values():
        recipes.setdefault(run["recipe"], []).append(run["score"])
    means = {recipe: float(np.mean(scores)) for recipe, scores in recipes.items()}
    winner = max(means, key=means.get) if means else None
    return {"runs": chosen, "recipe_means": means, "winner": winner}


def paired_margin(
    entries: Sequence[Mapping[str, Any]], draws: int = 2000, seed: int = 0
) -> Dict[str, Any]:
    """Mean margin over random init of several encoders probed on the same patches, with a
    bootstrap over those patches (the same draw for every encoder) and its 95 % interval.

    Args:
        entries: probe set entries (:func:`.probe.probe_encoder` ``sets`` values) of one patch
            set, each with ``predictions`` (``encoder`` and ``random_init_<s>``) and ``targets``.
    """
    targets = np.asarray(entries[0]["targets"], dtype=np.float64)
    for entry in entries:
        if entry["targets"] != entries[0]["targets"]:
            raise ValueError("the encoders were probed on different patches")

    def margins(rows: np.ndarray) -> float:
        Y = targets[rows]
        values = []
        for entry in entries:
            predictions = entry["predictions"]
            randoms = [k for k in predictions if k.startswith("random_init_")]
            encoder = micro_map(Y, np.asarray(predictions["encoder"])[rows])
            random = np.mean([micro_map(Y, np.asarray(predictions[k])[rows]) for k in randoms])
            values.append(encoder - random)
        return float(np.mean(values))

    n = len(targets)
    rng = np.random.default_rng(seed)
    estimate = margins(np.arange(n))
    boot = []
    for _ in range(draws):
        rows = rng.integers(0, n, n)
        if targets[rows].sum(axis=0).max() == 0:
            continue
        value = margins(rows)
        if np.isfinite(value):
            boot.append(value)
    low, high = np.percentile(boot, [2.5, 97.5]) if boot else (np.nan, np.nan)
    return {
        "margin": estimate,
        "interval": [float(low), float(high)],
        "se": float(np.std(boot, ddof=1)) if len(boot) > 1 else None,
        "draws": len(boot),
        "encoders": len(entries),
        "patches": n,
    }


def score_final(
    out: Path,
    results_path: Path,
    sample_root: Path,
    say=print,
    draws: int = 2000,
    random_seeds: int = 3,
    permutations: int = 20,
    required_steps: Optional[int] = None,
) -> Dict[str, Any]:
    """Score each run's selected checkpoint once on the final part; the recipes' paired margins.

    A run already scored on the final part at its selected step is not scored again.

    Raises:
        ValueError: a run has no scored checkpoint at ``required_steps`` (it has not finished).
    """
    from ..checkpoints import periodic_name
    from . import probe

    results = _read(results_path)
    unfinished = [
        name
        for name, run in results["runs"].items()
        if required_steps and max(map(int, run["checkpoints"]), default=0) < required_steps
    ]
    if unfinished:
        raise ValueError(
            f"the runs {', '.join(sorted(unfinished))} have no scored checkpoint at step "
            f"{required_steps} yet: the final probe is scored once, when every run has finished "
            "(continue the runs, then --evaluate)"
        )
    selection = select(results)
    results["selection"] = selection
    sets = probe.bigearthnet_probe_sets(sample_root)
    final = results.setdefault("final", {})
    for name, chosen in selection["runs"].items():
        done = final.get(name)
        if done and done.get("step") == chosen["step"]:
            continue
        folder = Path(out) / name / periodic_name(chosen["step"])
        say(f"{name} step {chosen['step']}: the final probe (once)")
        report = probe.probe_encoder(
            folder,
            sample_root,
            random_seeds=random_seeds,
            probe_sets=sets,
            part="final",
            permutations=permutations,
            draws=min(draws, 1000),
        )
        final[name] = {"step": chosen["step"], "recipe": chosen["recipe"], "sets": report["sets"]}
        _write(results_path, results)
    summary: Dict[str, Any] = {}
    for recipe in sorted({c["recipe"] for c in selection["runs"].values()}):
        entries = [
            f["sets"][f"{SET}-final"]
            for f in final.values()
            if f["recipe"] == recipe and f"{SET}-final" in f["sets"]
        ]
        if entries:
            summary[recipe] = paired_margin(entries, draws=draws)
    results["final_summary"] = summary
    _write(results_path, results)
    return results


def _read(path: Path) -> Dict[str, Any]:
    path = Path(path)
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"format": 1, "runs": {}}


def _write(path: Path, results: Mapping[str, Any]) -> None:
    from ..conventions import json_safe

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial")
    staging.write_text(json.dumps(json_safe(results), indent=1) + "\n", encoding="utf-8")
    staging.replace(path)
