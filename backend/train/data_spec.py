"""Finetuning data specs: which dataset a ``--data`` argument means, read into a task dataset.

A data spec is a small JSON object naming a dataset layout and its files, paths relative to a data
root (``--data-root``, else the sample-data folder of ``msgfm data fetch``)::

    {"layout": "segmentation",
     "images": {"landsat": ["landcover/lsat7_2000_10.tif", "...", "landcover/lsat7_2000_70.tif"]},
     "labels": "landcover/strata.tif", "tile_size": 64}

``--data`` takes a spec name (``finetune_segmentation``, shipped in ``backend/data/manifests``; the
task name alone also works), a JSON file, inline JSON, or the short form
``LAYOUT:PATH[,key=value...]`` where PATH is the layout's main folder or file
(``bigearthnet:/data/BigEarthNet-S2,s1=/data/BigEarthNet-S1``).

Layouts (tasks they serve):

* ``bigearthnet`` (classification; cloud-removal base): ``s2`` (or PATH, or a list of folders),
  ``s1``, ``label_mode`` ``multi``/``single``, ``keep_unpaired`` (keep S2 patches without an S1
  partner, their SAR as no data), ``exclude`` (S2 patch names left out).
* ``majority-tiles`` (classification): tiles of image rasters labelled by the majority class of a
  class raster or of polygons (the keys of ``segmentation``, plus ``min_labelled``: the fraction
  of a tile that must be labelled).
* ``segmentation`` (segmentation): ``images``, ``labels`` or ``polygons`` + ``class_field``
  (+ ``polygon_layer`` for a file with several layers; ``polygons`` may also be QGIS's layer
  source ``path.gpkg|layername=NAME``), ``class_values``, ``tile_size``, ``stride``.
* ``simulated-clouds`` (cloud removal): ``base`` (a spec with clear ``s2`` and ``sar``),
  ``seed``, ``coverage`` [low, high].
* ``sen12mscr`` (cloud removal): ``root`` (or PATH).
* ``pansharpening`` (pan-sharpening, Wald's reduced-resolution protocol): ``folder`` (or PATH)
  of ``pan*.tif`` + ``ms*.tif`` pairs, ``tile_size``, ``stride``.

Every spec may also give ``class_names`` and ``description``. Samples are finally cut or padded to
the model's tile size by :class:`~backend.data.tasks.views.TileSizedDataset` (centre crop; padding is no data).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..conventions import IGNORE_INDEX
from ..data.tasks.views import MajorityClassTiles
from ..tasks import get_task

MANIFEST_DIR = Path(__file__).resolve().parents[1] / "data" / "manifests"
LAYOUT_TASKS = {
    "bigearthnet": ("classification",),
    "majority-tiles": ("classification",),
    "segmentation": ("segmentation",),
    "simulated-clouds": ("cloud-removal",),
    "sen12mscr": ("cloud-removal",),
    "pansharpening": ("pansharpening",),
}
# The key that the PATH of the short form ``LAYOUT:PATH`` fills in.
_MAIN_PATH_KEY = {
    "bigearthnet": "s2",
    "sen12mscr": "root",
    "pansharpening": "folder",
    "segmentation": "labels",
    "majority-tiles": "labels",
}


def load_data_spec(text: str) -> Dict[str, Any]:
    """The data spec meant by a ``--data`` argument (see the module docstring).

    Raises:
        ValueError: The argument is none of the accepted forms, or the JSON is not an object with
            a known ``layout``.
    """
    text = str(text).strip()
    candidates = [MANIFEST_DIR / f"{text}.json", MANIFEST_DIR / f"finetune_{text}.json"]
    if text.startswith("{"):
        spec = _parse_json(text, "--data")
    elif Path(text).is_file():
        spec = _parse_json(Path(text).read_text(encoding="utf-8"), text)
    elif any(c.is_file() for c in candidates):
        path = next(c for c in candidates if c.is_file())
        spec = _parse_json(path.read_text(encoding="utf-8"), str(path))
    elif ":" in text and text.split(":", 1)[0] in LAYOUT_TASKS:
        layout, rest = text.split(":", 1)
        parts = rest.split(",")
        spec = {"layout": layout, _MAIN_PATH_KEY.get(layout, "path"): parts[0]}
        for part in parts[1:]:
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"--data {text!r}: {part!r} is not key=value")
            spec[key.strip()] = _parse_value(value.strip())
    else:
        shipped = sorted(p.stem for p in MANIFEST_DIR.glob("finetune_*.json"))
        raise ValueError(
            f"--data {text!r} is not a data spec: give a spec name ({', '.join(shipped)}), a JSON "
            f"file, inline JSON or LAYOUT:PATH[,key=value...] with LAYOUT one of "
            f"{', '.join(LAYOUT_TASKS)}"
        )
    if spec.get("layout") not in LAYOUT_TASKS:
        raise ValueError(
            f"data spec {text!r}: 'layout' must be one of {', '.join(LAYOUT_TASKS)}, "
            f"not {spec.get('layout')!r}"
        )
    return spec


def _parse_json(text: str, where: str) -> Dict[str, Any]:
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"data spec {where}: not valid JSON ({exc})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"data spec {where}: must be a JSON object with a 'layout'")
    return spec


def _parse_value(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def default_data_root() -> Path:
    """The sample-data folder of ``msgfm data fetch`` (``$MSGFM_DATA_DIR/samples`` or the cache)."""
    from ..data.fetch import ensure_sample_data

    return Path(ensure_sample_data())


def build_dataset(spec: Mapping[str, Any], task: str, data_root: Optional[Union[str, Path]] = None):
    """Read a data spec into a task dataset (samples as in :mod:`backend.data.tasks`).

    Args:
        spec: The data spec.
        task: The task the data is for; a layout that cannot serve it is an error.
        data_root: Root of relative paths (default: the sample-data folder).

    Returns:
        The dataset; it has ``holdout_units()`` and the attributes :func:`describe_dataset` reads.
    """
    layout = spec.get("layout")
    if layout not in LAYOUT_TASKS:
        raise ValueError(f"data spec layout must be one of {', '.join(LAYOUT_TASKS)}: {layout!r}")
    if task not in LAYOUT_TASKS[layout]:
        raise ValueError(
            f"data layout {layout!r} gives {' or '.join(LAYOUT_TASKS[layout])} samples, not "
            f"{task}; pick a data spec for {task} (e.g. --data finetune_{task})"
        )
    roots: List[Path] = [Path(data_root)] if data_root is not None else []

    def resolve(value: Any) -> Path:
        # Relative paths need the root; the sample data is only looked up when one is used.
        candidate = Path(str(value)).expanduser()
        if candidate.is_absolute():
            return candidate
        if not roots:
            roots.append(default_data_root())
        return roots[0] / candidate

    def path(key: str, required: bool = True) -> Optional[Path]:
        value = spec.get(key)
        if value is None:
            if required:
                raise ValueError(f"data spec ({layout}) needs {key!r}")
            return None
        return resolve(value)

    from ..data import tasks

    if layout == "bigearthnet":
        s2 = spec.get("s2")
        s2_roots = [resolve(v) for v in s2] if isinstance(s2, list) else path("s2")
        return tasks.BigEarthNetDataset(
            s2_roots,
            path("s1", required=False),
            label_mode=spec.get("label_mode", "multi"),
            keep_unpaired=bool(spec.get("keep_unpaired", False)),
            exclude=list(spec.get("exclude", [])),
        )
    if layout in ("segmentation", "majority-tiles"):
        images = _image_sources(spec, layout, resolve)
        polygons, polygon_layer = _polygon_source(spec, layout, resolve)
        dataset = tasks.RasterSegmentationDataset(
            images,
            label_raster=path("labels", required=polygons is None),
            polygons=polygons,
            class_field=spec.get("class_field"),
            polygon_layer=polygon_layer,
            class_values=spec.get("class_values"),
            tile_size=int(spec.get("tile_size", 64)),
            stride=spec.get("stride"),
        )
        if layout == "majority-tiles":
            return MajorityClassTiles(dataset, float(spec.get("min_labelled", 0.5)))
        return dataset
    if layout == "simulated-clouds":
        base_spec = spec.get("base")
        if not isinstance(base_spec, dict):
            raise ValueError("data spec (simulated-clouds) needs 'base', a spec of clear S2 + S1")
        base_task = LAYOUT_TASKS.get(base_spec.get("layout"), ("classification",))[0]
        base = build_dataset(base_spec, base_task, roots[0] if roots else None)
        low, high = spec.get("coverage", [0.2, 0.7])
        return tasks.SimulatedCloudRemovalDataset(
            base, seed=int(spec.get("seed", 0)), coverage_range=(float(low), float(high))
        )
    if layout == "sen12mscr":
        return tasks.SEN12MSCRDataset(path("root"))
    # pansharpening
    settings = {
        "mode": "reduced",
        "tile_size": int(spec.get("tile_size", 64)),
        "stride": spec.get("stride"),
    }
    from ..sensors import get_sensor

    sensors = spec.get("sensors") or {}
    if sensors:
        settings["sensor_names"] = (sensors.get("pan", "pan"), sensors.get("ms", "ms"))
        settings["ms_bands"] = get_sensor(settings["sensor_names"][1]).bands
    if "pairs" in spec:
        pairs = [(resolve(pair["pan"]), _stacked(pair["ms"], resolve)) for pair in spec["pairs"]]
        return tasks.PanSharpeningDataset(pairs, **settings)
    return tasks.PanSharpeningDataset.from_folder(path("folder"), **settings)


def _stacked(value: Any, resolve) -> Path:
    """One MS raster: the file itself, or a VRT stacking a list of single-band files in order.

    The VRT lives in a cache folder named by its content (``$TMPDIR/msgfm-stacks``) and refers
    to the files by absolute path, so the data itself is never copied or changed.
    """
    import hashlib
    import tempfile

    if not isinstance(value, (list, tuple)):
        return resolve(value)
    paths = [resolve(item) for item in value]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"MS band files do not exist: {', '.join(missing)}")
    from osgeo import gdal

    key = hashlib.sha256("\n".join(str(p.resolve()) for p in paths).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "msgfm-stacks"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"ms-{key}.vrt"
    if not target.is_file():
        partial = folder / f".ms-{key}.vrt.partial"
        dataset = gdal.BuildVRT(str(partial), [str(p.resolve()) for p in paths], separate=True)
        if dataset is None:
            raise ValueError(f"cannot stack the MS band files {[str(p) for p in paths]}")
        dataset = None
        partial.replace(target)
    return target


def _polygon_source(spec: Mapping[str, Any], layout: str, path_of) -> Tuple[Optional[Path], Any]:
    """The polygon file and layer of a spec: ``polygons`` (a file or QGIS's ``path|layername=``
    source) and ``polygon_layer``; ``(None, None)`` without polygons."""
    from ..data.tasks.labels import polygon_layer_source

    layer = spec.get("polygon_layer")
    if spec.get("polygons") is None:
        if layer is not None:
            raise ValueError(
                f"data spec ({layout}) gives 'polygon_layer' {layer!r} but no 'polygons': name "
                "the polygon file the layer is in"
            )
        return None, None
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, (str, int))):
        raise ValueError(
            f"data spec ({layout}): 'polygon_layer' must be a layer name (or index), not {layer!r}"
        )
    path, layer = polygon_layer_source(str(spec["polygons"]), layer)
    return path_of(path), layer


def _image_sources(spec: Mapping[str, Any], layout: str, path_of) -> List[Any]:
    from ..data.tasks import ImageSource

    images = spec.get("images")
    if not isinstance(images, dict) or not images:
        raise ValueError(
            f"data spec ({layout}) needs 'images': {{sensor: file or [one file per band]}}"
        )
    sources = []
    for sensor, value in images.items():
        bands = None
        if isinstance(value, dict):
            bands = value.get("bands")
            value = value.get("paths", value.get("path"))
        paths = [value] if isinstance(value, str) else list(value or [])
        if not paths:
            raise ValueError(f"data spec ({layout}): image {sensor!r} lists no file")
        sources.append(ImageSource(sensor, [path_of(p) for p in paths], bands))
    return sources


def describe_dataset(dataset: Any, task: str, spec: Mapping[str, Any]) -> Dict[str, Any]:
    """What a task model needs to know about its data: sensors, classes, target sensor.

    Returns:
        ``{"sensors", "num_classes", "class_names", "class_values", "class_colors",
        "multilabel", "target_sensor", "out_bands"}``.
    """
    from ..class_colours import class_colours
    from ..sensors import get_sensor

    base = getattr(dataset, "base", dataset)
    sensors = list(getattr(base, "sensors", []) or [])
    if not sensors and hasattr(base, "images"):
        sensors = [image.sensor for image in base.images]
    info: Dict[str, Any] = {
        "sensors": sensors,
        "num_classes": None,
        "class_names": [],
        "class_values": [],
        "class_colors": [],
        "multilabel": False,
        "target_sensor": None,
        "out_bands": [],
    }
    if get_task(task).has_classes:
        k = int(dataset.num_classes)
        names = spec.get("class_names") or [str(n) for n in dataset.class_names]
        if len(names) != k:
            raise ValueError(f"data spec gives {len(names)} class_names for {k} classes")
        values = getattr(dataset, "class_values", None)
        # Class values become the output raster's pixel values when they are byte codes; other
        # classes (names from a text class field, fractions, large codes) are numbered 0..K-1.
        raster_values = (
            [int(float(v)) for v in values]
            if values is not None and all(_is_byte_code(v) for v in values)
            else list(range(k))
        )
        info.update(
            num_classes=k,
            class_names=list(names),
            class_values=raster_values,
            class_colors=class_colours(names),
            multilabel=bool(getattr(dataset, "label_mode", "single") == "multi"),
        )
    else:
        inputs, target = get_task(task).image_sensors(sensors, dataset)
        info.update(sensors=inputs, target_sensor=target, out_bands=list(get_sensor(target).bands))
    if get_task(task).scene_level and not info["sensors"]:
        info["sensors"] = ["s2"]
    return info


def _is_byte_code(value: Any) -> bool:
    """True for a whole number 0..254, or its text ("3"); 255 is class rasters' no data."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False  # a class name ("wheat")
    return number.is_integer() and 0 <= number < IGNORE_INDEX


def sample_counts(train: Sequence[Any], held: Sequence[Any]) -> Dict[str, int]:
    """``{"n_train", "n_val"}`` for reports."""
    return {"n_train": len(train), "n_val": len(held)}
