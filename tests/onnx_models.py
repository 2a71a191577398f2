"""Export small fixed-weight torch modules as msGFM ONNX models, the way every test needs them.

The conftests build the modules (each with an output known in closed form); this module owns the
one step they share: ``torch.onnx.export`` with named inputs and outputs and a dynamic batch axis,
then the msGFM ``metadata_props``. Conftests import it relatively (``from .onnx_models import``
in tests/, ``from ...onnx_models import`` two folders down): under ``--import-mode=importlib``
pytest imports ``tests`` and its folders as namespace packages, so no ``sys.path`` entry and no
``__init__.py`` is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from backend.export.schema import InputSpec, ModelMetadata, OutputSpec, embed_metadata

# The opset that backend/export writes: tests read models like the ones users get.
OPSET = 17


def export_with_metadata(
    module: Any,
    path: Path,
    inputs: List[InputSpec],
    outputs: List[OutputSpec],
    tile_size: int,
    task: str = "segmentation",
    *,
    default_overlap: float = 0.25,
    dynamic_space: bool = True,
    model_name: Optional[str] = None,
    model_version: str = "0.0.1-test",
    trained_on: str = "not trained: fixed weights for tests",
    metrics: Optional[Dict[str, Any]] = None,
) -> Path:
    """Export ``module`` (one tensor argument per input) to ``path`` with msGFM metadata.

    Args:
        module: a ``torch.nn.Module``; it is put in eval mode.
        path: the ``.onnx`` file to write; its folder is created.
        inputs: one spec per ``forward`` argument, in order; their names name the graph inputs.
        outputs: one spec per returned tensor, in order.
        tile_size: the metadata's tile size, and the height and width of the example tensors.
        task: the metadata's task.
        default_overlap: the metadata's default overlap between tiles.
        dynamic_space: whether height and width are dynamic axes besides the batch; a model
            without them takes only ``tile_size`` windows.
        model_name: the metadata's model name; the file's stem when not given.
        model_version: the metadata's model version.
        trained_on: the metadata's note on the training data.
        metrics: the metadata's metrics.

    Returns:
        ``path``.
    """
    import onnx
    import torch

    examples = tuple(torch.zeros(1, len(spec.bands), tile_size, tile_size) for spec in inputs)
    space = {2: "height", 3: "width"} if dynamic_space else {}
    axes = {spec.name: {0: "batch", **space} for spec in inputs}
    axes.update({spec.name: {0: "batch"} for spec in outputs})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        module.eval(),
        examples,
        str(path),
        input_names=[spec.name for spec in inputs],
        output_names=[spec.name for spec in outputs],
        dynamic_axes=axes,
        opset_version=OPSET,
        dynamo=False,  # the dynamo exporter needs onnxscript and writes external data
    )
    metadata = ModelMetadata(
        task=task,
        inputs=inputs,
        outputs=outputs,
        tile_size=tile_size,
        default_overlap=default_overlap,
        model_name=model_name or path.stem,
        model_version=model_version,
        trained_on=trained_on,
        metrics=metrics or {},
    )
    proto = onnx.load(str(path))
    embed_metadata(proto, metadata)
    onnx.save(proto, str(path))
    return path


def input_spec(
    name: str, sensor: str, bands: List[str], mean: float, std: float, **kwargs: Any
) -> InputSpec:
    """An input normalised by one ``mean`` and ``std`` for all its ``bands``.

    ``kwargs`` are the other :class:`InputSpec` fields (``normalization``, ``resolution_m``...).
    """
    return InputSpec(
        name=name,
        sensor=sensor,
        bands=list(bands),
        mean=[mean] * len(bands),
        std=[std] * len(bands),
        **kwargs,
    )


def reflectance_output(
    bands: List[str], mean: float, std: float, name: str = "reflectance", **kwargs: Any
) -> OutputSpec:
    """A reflectance output that undoes an input's normalisation: ``raw * std + mean`` per band.

    ``kwargs`` are the other :class:`OutputSpec` fields (``sensor``, ``stride``...).
    """
    return OutputSpec(
        name=name,
        kind="reflectance",
        bands=list(bands),
        scale=[std] * len(bands),
        offset=[mean] * len(bands),
        **kwargs,
    )


def with_product_levels(source: Path, target: Path, levels: Dict[str, List[str]]) -> Path:
    """A copy of the model at ``source`` whose metadata states ``levels`` as the product levels
    it was trained on (as export writes them for L2A statistics); the graph is unchanged."""
    from dataclasses import replace

    import onnx

    from backend.export.schema import read_model_metadata

    model = onnx.load(str(source))
    embed_metadata(model, replace(read_model_metadata(source), product_levels=levels))
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target
