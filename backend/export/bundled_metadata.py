"""The bundled models' metadata brought in line with ``MANIFEST.json``, without retraining.

``msgfm export`` writes a model's validation scores (the split that chose its checkpoint) and leaves
the licence empty. For the models bundled with the plugin, ``msgfm train-defaults`` also scores each
on its test tiles (never trained nor chosen on) and records that in ``MANIFEST.json``; this module
rewrites each bundled ``.onnx`` file's ``metadata_props`` so that what ``msgfm info`` and *Model
information* show is what the model cards show: the test scores (labelled ``metrics_split: test``,
the validation scores kept in ``extra``), the training, validation and test counts, and the
project's licence. The network is not touched; the manifest's byte counts and SHA-256 sums are
updated to the rewritten files.

It also marks an input ``optional`` where the manifest's ``absent_inputs`` says training samples
had no data for it (the cloud-removal model's S2 patches without a Sentinel-1 partner), so a run
may leave that input out; ``--count-absent-inputs`` recounts that from the recipe's training
split for entries written before train-defaults recorded it.

And it states the processing levels a task model was trained on (``product_levels``, as export
writes them since it records them) where the model predates that: an input normalised with the
registry's statistics was trained on the levels those describe
(:data:`backend.sensors.STATISTICS_PRODUCT_LEVELS`: Sentinel-2 L2A surface reflectance), so a
run refuses a Sentinel-2 L1C input instead of running the model out of its domain.

Usage: ``python -m backend.export.bundled_metadata [--count-absent-inputs] [MODELS_DIR]``
(``make cards`` runs it).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Union

from ..files import output_tempfile, sha256_file, write_json_atomically
from .schema import ModelMetadata, embed_metadata, read_model_metadata

MANIFEST_FILE = "MANIFEST.json"
LICENSE = (
    "MIT (msGFM for QGIS, see its LICENSE); trained on sample data that keep their own "
    "licences (docs/data.md)"
)
# "52 training and 39 held-back 64-pixel samples", as finetuning describes its split.
_SPLIT_TEXT = re.compile(r"\d+ training and \d+ held-back")


def bundled_metadata(metadata: ModelMetadata, entry: Dict[str, Any]) -> ModelMetadata:
    """``metadata`` of the bundled model that ``entry`` (its record in the manifest) describes."""
    extra = dict(metadata.extra)
    metrics = metadata.metrics
    trained_on = metadata.trained_on
    evaluation = entry.get("evaluation") or {}
    if evaluation.get("metrics"):
        if extra.get("metrics_split") != "test":
            extra["validation_metrics"] = dict(metadata.metrics)
        metrics = dict(evaluation["metrics"])
        extra["metrics_split"] = "test"
        extra["test_baseline"] = (evaluation.get("baseline") or {}).get("name", "")
        if all(key in entry for key in ("n_train", "n_val", "n_test")):
            counts = f"{entry['n_train']} training, {entry['n_val']} validation and {entry['n_test']} test"
            trained_on = _SPLIT_TEXT.sub(counts, trained_on)
    inputs = metadata.inputs
    absent = entry.get("absent_inputs")
    if isinstance(absent, dict):  # training samples without any data, per input (see below)
        inputs = [
            replace(spec, optional=index > 0 and int(absent.get(spec.sensor, 0)) > 0)
            for index, spec in enumerate(metadata.inputs)
        ]
    return replace(
        metadata,
        inputs=inputs,
        metrics=metrics,
        trained_on=trained_on,
        license=LICENSE,
        extra=extra,
        product_levels=metadata.product_levels or registry_statistics_levels(metadata),
    )


def registry_statistics_levels(metadata: ModelMetadata) -> Dict[str, List[str]]:
    """Per input whose statistics are the registry's, the product levels those describe (what
    export writes for a task model finetuned with registry statistics); none for an encoder."""
    from ..sensors import STATISTICS_PRODUCT_LEVELS, get_sensor
    from ..tasks import get_task

    if not get_task(metadata.task).exported:
        return {}
    levels = {}
    for spec in metadata.inputs:
        described = STATISTICS_PRODUCT_LEVELS.get(spec.sensor)
        registry = get_sensor(spec.sensor)
        if described and same_statistics(spec.mean, spec.std, registry.mean, registry.std):
            levels[spec.sensor] = list(described)
    return levels


def same_statistics(mean: Any, std: Any, registry_mean: Any, registry_std: Any) -> bool:
    """Whether band statistics are the registry's (up to their float32 round trip)."""
    pairs = [(mean, registry_mean), (std, registry_std)]
    return all(
        len(values) == len(reference)
        and all(abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in zip(values, reference))
        for values, reference in pairs
    )


def count_absent_inputs(models_dir: Union[str, Path], seed: int = 0) -> List[str]:
    """Record in ``MANIFEST.json`` how many training samples of each bundled task model had no
    data for each input (``absent_inputs``), recounted from the recipe's split where an entry
    predates the record (:func:`backend.train.defaults.recipe_absent_inputs`; no retraining).
    Returns the files recounted."""
    import json

    from ..train.defaults import TASK_RECIPES, recipe_absent_inputs

    models_dir = Path(models_dir)
    manifest = json.loads((models_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    recipes = {recipe.task for recipe in TASK_RECIPES}
    counted = []
    for entry in manifest["files"]:
        if "absent_inputs" in entry or entry["task"] not in recipes or "sensors" not in entry:
            continue
        entry["absent_inputs"] = recipe_absent_inputs(entry["task"], entry["sensors"], seed)
        entry["absent_inputs_command"] = (
            "python -m backend.export.bundled_metadata --count-absent-inputs (recounted from the "
            "recipe's training split, no retraining)"
        )
        counted.append(entry["file"])
    write_json_atomically(models_dir / MANIFEST_FILE, manifest)
    return counted


def update_bundled_models(models_dir: Union[str, Path]) -> List[str]:
    """Rewrite the metadata of every ``.onnx`` file the manifest lists; returns those changed."""
    import json

    import onnx

    models_dir = Path(models_dir)
    manifest = json.loads((models_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    changed = []
    for entry in manifest["files"]:
        path = models_dir / entry["file"]
        if path.suffix != ".onnx":
            continue
        current = read_model_metadata(path)
        wanted = bundled_metadata(current, entry)
        if wanted.to_dict() != current.to_dict():
            model = onnx.load(str(path))
            embed_metadata(model, wanted)
            _save_atomically(model, path)
            changed.append(entry["file"])
        entry["bytes"], entry["sha256"] = path.stat().st_size, sha256_file(path)
    write_json_atomically(models_dir / MANIFEST_FILE, manifest)
    return changed


def _save_atomically(model: Any, path: Path) -> None:
    handle, temporary = output_tempfile(path.parent, f".{path.name}.", ".partial")
    os.close(handle)
    try:
        with open(temporary, "wb") as stream:
            stream.write(model.SerializeToString())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: List[str]) -> int:
    count = "--count-absent-inputs" in argv
    argv = [arg for arg in argv if arg != "--count-absent-inputs"]
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "resources/models"
    if count:
        counted = count_absent_inputs(folder)
        print(f"{folder}: absent inputs counted for {', '.join(counted) or 'no model'}")
    changed = update_bundled_models(folder)
    print(f"{folder}: metadata rewritten in {', '.join(changed) if changed else 'no model'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
