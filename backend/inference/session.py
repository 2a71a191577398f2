"""Opening the model on an execution provider: CUDA when asked for or available, else CPU."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from ..export.external_data import ExternalDataError, check_external_data
from ..export.onnx_file import read_onnx_info
from ..export.schema import ModelFileError
from .errors import DeviceUnavailableError, InferenceError
from .session_cache import open_cached

DEVICES = ("auto", "cpu", "cuda")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def check_model_file(path: Path) -> None:
    """Refuse a missing model file, or one whose external data is unsafe, before opening it."""
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        check_external_data(path)
    except ExternalDataError as exc:
        raise ModelFileError(str(exc)) from None


def open_session(path: str | Path, providers: List[str], options: Any = None) -> Any:
    """Open an ONNX Runtime session on ``path``, turning load failures into :class:`ModelFileError`."""
    import onnxruntime  # heavy: imported only when a model is actually opened

    path = Path(path)
    check_model_file(path)
    try:
        return onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises several private exception types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(
            f"{path.name} is not a valid ONNX model ({first_line}); choose an .onnx file exported "
            "by `msgfm export`"
        ) from None


def choose_providers(device: str) -> List[str]:
    """ONNX Runtime providers for ``device`` (``auto``, ``cpu`` or ``cuda``), best first.

    Raises:
        DeviceUnavailableError: ``cuda`` was asked for and this ONNX Runtime has no CUDA provider.
    """
    import onnxruntime

    if device not in DEVICES:
        raise InferenceError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    available = onnxruntime.get_available_providers()
    if device == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        raise DeviceUnavailableError(
            "device 'cuda' was requested but this ONNX Runtime has no CUDA provider (available: "
            f"{', '.join(available)}); install onnxruntime-gpu with a matching CUDA, or use "
            "device 'cpu' or 'auto'"
        )
    return [CPU]


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's CPU set)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def create_session(
    model_path: Union[str, Path],
    device: str = "auto",
    threads: Optional[int] = None,
    batch_size: Optional[int] = None,
) -> Tuple[Any, str]:
    """Open ``model_path`` for ``device`` with ``threads`` intra-op threads (None: all usable cores).

    Graph optimisations are all on (operator fusion, constant folding, layout changes) and nodes
    run one after another, each using every thread: tiled inference feeds one batch at a time, so
    parallelism inside operators is what keeps the cores busy. The intra-op threads do not spin
    while waiting for work: spinning keeps every core busy between operators, which starves the
    engine's prefetch thread and any other process on the machine (measured in
    ``benchmarks/inference``).

    With ``batch_size`` the model's symbolic batch axis is fixed to it, so every shape in the
    graph is known when it is optimised: the many small shape computations of the exported graph
    are folded away and the model runs about a quarter faster (measured on the bundled models in
    ``benchmarks/inference``); the caller then always feeds whole batches. On the CPU the
    optimised graph is cached between runs (:mod:`.session_cache`).

    Returns:
        The session and the provider it really runs on: onnxruntime-gpu falls back to CPU silently
        when the CUDA libraries are missing, so the provider is read back from the session.
    """
    import onnxruntime

    if threads is None:
        threads = usable_cores()
    if threads < 1:
        raise InferenceError(f"threads must be >= 1, not {threads}")
    providers = choose_providers(device)
    path = Path(model_path)
    dimensions = _batch_dimensions(path, batch_size) if batch_size else {}

    def options(level: Any) -> Any:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = level
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        for name, size in dimensions.items():
            options.add_free_dimension_override_by_name(name, size)
        return options

    level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The file is checked (present, no unsafe external data) by open_session whenever the model
    # itself is opened; a cached optimised form exists only for bytes that passed that check.
    session = open_cached(
        path,
        providers,
        options,
        level,
        dimensions,
        lambda chosen: open_session(path, providers=providers, options=chosen),
    )
    provider = session.get_providers()[0]
    if device == "cuda" and provider != CUDA:
        raise DeviceUnavailableError(
            f"device 'cuda' was requested but ONNX Runtime could not start CUDA and fell back to "
            f"{provider}; check the CUDA/cuDNN installation or use device 'cpu'"
        )
    return session, provider


def _batch_dimensions(path: Path, batch_size: int) -> Dict[str, int]:
    """The symbolic batch axes of the model's inputs, each fixed to ``batch_size``."""
    try:
        info = read_onnx_info(path)
    except (OSError, ValueError):
        return {}  # open_session gives the clear error
    names = {graph_input.shape[0] for graph_input in info.inputs if graph_input.shape}
    return {name: batch_size for name in names if isinstance(name, str) and name}
