"""Where a gated cloud-removal model opens its gate, measured on its validation patches.

A :class:`~backend.models.heads.GatedResidualImageHead` changes a pixel only where its cloud
probability ``p`` is above the head's floor. Whether it keeps clear scenes unchanged is therefore a
question about ``p`` on clear pixels, and whether it removes clouds one about ``p`` under clouds.
Both are measured here on the finetuning run's *validation* split (never on the acceptance
scenes), over several draws of each validation patch: clear (radiometric jitter and scene haze as
in training, no cloud) and cloudy (fresh simulated clouds of a random kind).

Figures per floor: ``clear_open_fraction`` (share of the clear draws' valid pixels the gate
opens: each is a changed pixel of a clear scene), ``cloud_recall`` (share of the pixels under
thick cloud, opacity above 0.5, that it opens) and ``clear_part_open_fraction`` (share of the
cloudy draws' cloud-free pixels it opens).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

# Opacity above which a pixel counts as under thick cloud for the recall.
THICK_OPACITY = 0.5
# Floors the check reports beside the model's own.
FLOORS = (0.1, 0.2, 0.3, 0.4, 0.5)
# Largest share of clear validation pixels the gate may open at the floor the model ships with
# (fixed before any model was checked): one pixel in a thousand changes no band mean measurably.
CLEAR_OPEN_TOLERANCE = 0.001
CALIBRATED = "checkpoint-calibrated"


def probability_predictor(checkpoint: str) -> tuple:
    """The cloud probability of a finetuned gated model, from raw inputs.

    Returns:
        ``(predict, floor)``: ``predict(list of raw samples) -> (N, H, W)`` probabilities, and the
        head's floor.
    """
    import torch
    from safetensors.torch import load_model

    from ..checkpoints import META_FILE, WEIGHTS_FILE, resolve_checkpoint
    from ..models.config import ModelConfig
    from ..models.heads import GatedResidualImageHead
    from ..models.tasks import TaskSpec, build_task_model
    from .evaluate import input_specs_from_meta, normalize_for_model

    folder = resolve_checkpoint(checkpoint)
    if folder is None:
        raise FileNotFoundError(f"{checkpoint}: no finetuning checkpoint there")
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    spec = TaskSpec.from_dict(meta["task_spec"])
    model = build_task_model(ModelConfig.from_dict(meta["model_config"]), spec)
    if not isinstance(model.head, GatedResidualImageHead):
        raise ValueError(f"{folder} is not a gated cloud-removal model")
    load_model(model, str(folder / WEIGHTS_FILE), strict=True)
    model.eval()
    specs = input_specs_from_meta(meta)

    def predict(samples: Sequence[Mapping[str, Any]]) -> np.ndarray:
        normalised = [normalize_for_model(s["inputs"], specs) for s in samples]
        batch = {k: torch.from_numpy(np.stack([n[k] for n in normalised])) for k in specs}
        with torch.no_grad():
            model(batch)
        return model.head.cloud_probability.numpy()

    return predict, round(model.head.floor, 6)  # the float32 buffer, as the floor was set


def gate_validation(
    predict: Callable[[Sequence[Mapping[str, Any]]], np.ndarray],
    samples: Sequence[Mapping[str, Any]],
    band_names: Sequence[str],
    draws: int = 8,
    seed: int = 0,
    jitter: float = 0.15,
    scene_haze: float = 0.1,
    floors: Sequence[float] = FLOORS,
) -> Dict[str, Any]:
    """The gate's opening on clear and cloudy draws of the validation samples.

    Args:
        predict: Raw samples -> cloud probability ``(N, H, W)`` (:func:`probability_predictor`).
        samples: Raw validation samples (``target``: the clear image; ``inputs``: with the SAR).
        band_names: The optical bands (Sentinel-2 names).
        draws: Clear and cloudy draws per sample.
        seed: Seed of the draws.
        jitter: Radiometric jitter of the draws (the training recipe's).
        scene_haze: Largest scene haze of the draws (the training recipe's).
        floors: Floors to report.

    Returns:
        ``{"floors": {floor: figures}, "n_samples", "draws", "clear_p_quantiles"}``.
    """
    from ..data.tasks.augment import JitterSettings, fresh_clouds

    rng = np.random.default_rng(seed)
    settings = JitterSettings(gain=jitter, band_gain=jitter / 3, offset=jitter / 3)
    clear_p: List[np.ndarray] = []
    thick_p: List[np.ndarray] = []
    free_p: List[np.ndarray] = []
    for sample in samples:
        for _ in range(draws):
            for probability in (1.0, 0.0):
                drawn = fresh_clouds(
                    sample, rng, band_names, clear_probability=probability,
                    jitter=settings, scene_haze=scene_haze,
                )  # fmt: skip
                p = predict([drawn])[0]
                valid = np.isfinite(drawn["target"]).all(axis=0)
                if probability == 1.0:
                    clear_p.append(p[valid])
                else:
                    opacity = drawn["opacity"]
                    thick_p.append(p[valid & (opacity > THICK_OPACITY)])
                    free_p.append(p[valid & (opacity == 0)])
    clear, thick, free = (
        np.concatenate(v) if v else np.zeros(0) for v in (clear_p, thick_p, free_p)
    )

    def share(values: np.ndarray, floor: float) -> Optional[float]:
        return float(np.mean(values > floor)) if values.size else None

    return {
        "n_samples": len(samples),
        "draws": draws,
        "clear_p_quantiles": {
            q: float(np.quantile(clear, float(q))) if clear.size else None
            for q in ("0.5", "0.99", "0.999", "1.0")
        },
        "floors": {
            f"{floor:g}": {
                "clear_open_fraction": share(clear, floor),
                "clear_part_open_fraction": share(free, floor),
                "cloud_recall": share(thick, floor),
            }
            for floor in floors
        },
    }


def calibrated_floor(report: Mapping[str, Any], floor: float) -> float:
    """The smallest reported floor, not below the model's ``floor``, at which the gate opens on at
    most :data:`CLEAR_OPEN_TOLERANCE` of the clear validation pixels (else the largest one)."""
    candidates = sorted(float(f) for f in report["floors"] if float(f) >= floor - 1e-9)
    for candidate in candidates:
        opened = report["floors"][f"{candidate:g}"]["clear_open_fraction"]
        if opened is not None and opened <= CLEAR_OPEN_TOLERANCE:
            return candidate
    return candidates[-1] if candidates else floor


def write_floor(checkpoint: str, floor: float) -> Path:
    """A copy of ``checkpoint`` beside it (:data:`CALIBRATED`) whose gate has ``floor``."""
    from safetensors.torch import load_file, save_file

    from ..checkpoints import META_FILE, WEIGHTS_FILE, copy_checkpoint, resolve_checkpoint

    folder = resolve_checkpoint(checkpoint)
    if folder is None:
        raise FileNotFoundError(f"{checkpoint}: no finetuning checkpoint there")
    target = copy_checkpoint(folder, folder.parent / CALIBRATED)
    state = load_file(str(target / WEIGHTS_FILE))
    key = next((k for k in state if k.endswith("head.gate.weight")), None)
    if key is None:
        raise ValueError(f"{folder} is not a gated cloud-removal model")
    state[key.replace("gate.weight", "gate_floor")] = torch_scalar(floor)
    meta = json.loads((target / META_FILE).read_text(encoding="utf-8"))
    meta["gate_floor"] = {"floor": floor, "from": folder.name, "chosen_on": "validation split"}
    # The copy's files are hard links to the source's: replace them, never write through them.
    for name in (WEIGHTS_FILE, META_FILE):
        (target / name).unlink()
    save_file(state, str(target / WEIGHTS_FILE), metadata={"format": "pt"})
    (target / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return target


def torch_scalar(value: float) -> Any:
    import torch

    return torch.tensor(float(value))


def check_trainer(trainer: Any, checkpoint: str, draws: int = 8) -> Dict[str, Any]:
    """:func:`gate_validation` of ``checkpoint`` on ``trainer``'s own validation split, drawn
    with the trainer's jitter and scene haze."""
    from ..sensors import get_sensor

    predict, floor = probability_predictor(checkpoint)
    samples = [trainer.val_samples[i] for i in range(len(trainer.val_samples))]
    augmentation = trainer.augmentation
    report = gate_validation(
        predict,
        samples,
        get_sensor("s2").bands,
        draws=draws,
        jitter=float(augmentation["jitter"]),
        scene_haze=float(augmentation["scene_haze"]),
    )
    return {"checkpoint": Path(checkpoint).name, "model_floor": floor, **report}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m backend.train.gate_check CHECKPOINT [--data-root DIR] [--seed N]``: the check
    of a cloud-removal checkpoint of the default recipe on that recipe's validation split."""
    import argparse
    import tempfile

    from .defaults import TASK_RECIPES, DefaultsRecipe
    from .finetune import trainer_from_params

    parser = argparse.ArgumentParser(prog="python -m backend.train.gate_check")
    parser.add_argument("checkpoint")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=8)
    args = parser.parse_args(argv)
    recipe = next(r for r in TASK_RECIPES if r.task == "cloud-removal")
    with tempfile.TemporaryDirectory(prefix="msgfm-gate-check-") as scratch:
        defaults = DefaultsRecipe(scratch, scratch, seed=args.seed, data_root=args.data_root)
        trainer = trainer_from_params(defaults.finetune_params(recipe, None))
        report = check_trainer(trainer, args.checkpoint, draws=args.draws)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
