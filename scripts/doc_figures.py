"""Figures in README.md and docs/user-guide.md, filled in from the files that hold them.

A figure in a doc is a marked span, ``<!-- figure: NAME -->TEXT<!-- /figure -->``; this script
replaces each TEXT by what NAME gives from ``resources/models/MANIFEST.json`` and the bundled models'
metadata, so a figure changes when the models are retrained (``make train-defaults`` runs it) and
``tests/test_doc_figures.py`` fails when a doc and its data disagree.

Usage: python scripts/doc_figures.py [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable, Dict

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "README.md", ROOT / "docs" / "user-guide.md")
SPAN = re.compile(r"<!-- figure: ([\w-]+) -->(.*?)<!-- /figure -->", re.S)


def _manifest(models: Path) -> dict:
    return json.loads((models / "MANIFEST.json").read_text(encoding="utf-8"))


def pretraining_steps(models: Path) -> str:
    """Optimiser steps of the bundled encoder's pretraining."""
    return str(_manifest(models)["pretrain"]["steps"])


def embedding_features(models: Path) -> str:
    """What the embedding tools compute per pixel of a Sentinel-2 input with the bundled encoder.

    Every bundled embedding model is the one encoder's (same features): the first that ships is
    read. When the acceptance gate moved them all out, the encoder checkpoint that ships (the one
    they were exported from) gives the width from its config.
    """
    from backend.export.schema import read_model_metadata
    from backend.sensors import get_sensor

    manifest = _manifest(models)
    shipped = [e["file"] for e in manifest["files"] if e["task"] == "embedding"]
    if shipped:
        first = sorted(shipped, key=lambda f: f != "embedding.onnx")[0]
        features = len(read_model_metadata(models / first).outputs[0].bands)
    else:
        from backend.models.config import ModelConfig
        from backend.models.embedding_head import embedding_width

        encoder = [e["file"] for e in manifest["files"] if e["file"].endswith("/meta.json")]
        if not encoder:
            raise ValueError(f"neither an embedding model nor the encoder ships in {models}")
        meta = json.loads((models / encoder[0]).read_text(encoding="utf-8"))
        features = embedding_width(ModelConfig.from_dict(meta["model_config"]))
    bands = get_sensor("s2").num_bands
    return f"{features + bands} features ({features} embedding features and {bands} bands)"


def train_defaults_time(models: Path) -> str:
    """How long ``make train-defaults`` took for the bundled models, and what that includes."""
    manifest = _manifest(models)
    timings = manifest["timings_s"]
    minutes = timings["total"] / 60
    tasks = sum(1 for name in timings if name.startswith("finetune "))
    pretrain = manifest["pretrain"]
    if pretrain.get("reused"):
        pretraining = (
            f"its {pretrain['steps']}-step pretraining was an earlier run, reused with "
            "`--pretrained`, and is not included"
        )
    else:
        pretraining = f"including its {pretrain['steps']}-step pretraining"
    return (
        f"{minutes:.0f} minutes for the bundled models, finetuning {tasks} tasks, export and "
        f"scoring on the CPU that trained them; {pretraining}"
    )


FIGURES: Dict[str, Callable[[Path], str]] = {
    "pretraining-steps": pretraining_steps,
    "embedding-features": embedding_features,
    "train-defaults-time": train_defaults_time,
}


def render(text: str, models: Path = ROOT / "resources" / "models") -> str:
    """``text`` with every figure span filled in; an unknown figure name is an error."""

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in FIGURES:
            raise KeyError(f"unknown figure '{name}' (known: {', '.join(FIGURES)})")
        return f"<!-- figure: {name} -->{FIGURES[name](models)}<!-- /figure -->"

    return SPAN.sub(fill, text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a doc is not its render")
    args = parser.parse_args(argv)
    stale = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        rendered = render(text)
        if rendered != text:
            stale.append(doc)
            if not args.check:
                doc.write_text(rendered, encoding="utf-8")
    for doc in stale:
        print(f"{doc.relative_to(ROOT)}: {'stale' if args.check else 'updated'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
