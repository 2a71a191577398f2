"""ONNX Runtime's optimised form of a model, kept between runs so a session opens quickly.

Opening a session optimises the graph (fusions, constant folding, layout changes) and plans its
memory, every time: 1 to 3 s for the bundled models on this project's 2-core machine, most of a
small raster's run. The first run on the CPU therefore saves the optimised graph in ONNX Runtime's
own format (``.ort``, flatbuffers: no protobuf parsing) into a cache folder, and later runs open
that file with the graph optimisations off (they are in the file). Measured on the bundled
models: the session opens 1.5 to 2.1x faster (``tests`` check only that the file is used).

Rules:

- The cache never sits beside the user's model: ``$MSGFM_ORT_CACHE`` if set (``off`` turns it
  off), else ``$XDG_CACHE_HOME/msgfm/onnxruntime``, else ``~/.cache/msgfm/onnxruntime``.
- A file is found by a key over everything that shapes it: the model's SHA-256, the ONNX Runtime
  version, the execution provider, the optimisation level, fixed dimensions and the processor
  (optimised graphs may use its instruction set). A changed model is a new key.
- Only the CPU provider is cached: a CUDA session's optimised graph depends on the GPU and on the
  CUDA libraries found at run time.
- Safe if processes race: each writes its own hidden temporary file and renames it into place
  (atomic); a reader sees a whole file or none.
- Never in the way: an unwritable folder, a file that does not load or does not describe the model
  (corrupt, truncated) means a normal session; a bad file is removed and written again.
- Bounded: the :data:`MAX_ENTRIES` most recently used files are kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..export.onnx_file import read_onnx_info
from ..files import sha256_file

CACHE_ENV = "MSGFM_ORT_CACHE"
MAX_ENTRIES = 32
SUFFIX = ".ort"
PARTIAL = ".partial"

# Builds fresh SessionOptions for a graph optimisation level (an options object holds one
# session's settings and is changed here, so every session gets its own).
OptionsFactory = Callable[[Any], Any]


def cache_folder() -> Optional[Path]:
    """Where optimised models are kept; None when ``$MSGFM_ORT_CACHE`` is ``off``."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() == "off":
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base).expanduser() if base else Path.home() / ".cache"
    return root / "msgfm" / "onnxruntime"


def cache_key(model: Path, provider: str, level: str, dimensions: Dict[str, int]) -> str:
    """The name (without suffix) of ``model``'s optimised form for these settings."""
    import onnxruntime

    parts = [
        sha256_file(model),
        onnxruntime.__version__,
        provider,
        level,
        ",".join(f"{name}={size}" for name, size in sorted(dimensions.items())),
        _processor(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def open_cached(
    model: Path,
    providers: List[str],
    options: OptionsFactory,
    level: Any,
    dimensions: Dict[str, int],
    open_plain: Callable[[Any], Any],
) -> Any:
    """A session on ``model``: from its cached optimised form, else built and its form saved.

    Args:
        model: the ``.onnx`` file (already checked by the caller).
        providers: execution providers; only ``[CPUExecutionProvider]`` is cached.
        options: builds the session options for a graph optimisation level.
        level: the graph optimisation level the model is optimised at.
        dimensions: free dimensions fixed by the options (part of the key).
        open_plain: opens ``model`` with given options (the caller's errors and checks).
    """
    import onnxruntime

    folder = cache_folder()
    if folder is None or providers != ["CPUExecutionProvider"]:
        return open_plain(options(level))
    try:
        cached = folder / (cache_key(model, providers[0], str(level), dimensions) + SUFFIX)
    except OSError:
        return open_plain(options(level))
    if cached.is_file():
        loading = options(onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL)
        try:
            session = onnxruntime.InferenceSession(str(cached), loading, providers=providers)
            if _describes(session, model):
                _touch(cached)
                return session
        except Exception:  # onnxruntime raises private types; any failure means "rebuild"
            pass
        _remove(cached)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(
            dir=folder, prefix=f".{cached.stem}.", suffix=SUFFIX + PARTIAL
        )
        os.close(handle)
    except OSError:
        return open_plain(options(level))
    saving = options(level)
    saving.optimized_model_filepath = partial
    saving.add_session_config_entry("session.save_model_format", "ORT")
    # ONNX Runtime warns that an optimised graph is specific to this processor: it is keyed so.
    saving.log_severity_level = 3
    try:
        session = open_plain(saving)
        if os.path.getsize(partial) > 0:
            os.replace(partial, cached)
            _prune(folder)
    except OSError:
        pass
    finally:
        _remove(Path(partial))
    return session


def _describes(session: Any, model: Path) -> bool:
    """Whether a cached session has the model's metadata, inputs and outputs."""
    info = read_onnx_info(model)
    return (
        dict(session.get_modelmeta().custom_metadata_map) == dict(info.metadata_props)
        and [i.name for i in session.get_inputs()] == [i.name for i in info.inputs]
        and [o.name for o in session.get_outputs()] == [o.name for o in info.outputs]
    )


def _processor() -> str:
    """The processor model and instruction-set flags (optimised graphs may depend on them)."""
    text = ""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
        wanted = ("model name", "flags", "Features", "CPU part")
        text = "\n".join(sorted({line for line in lines if line.startswith(wanted)}))
    except OSError:
        pass
    return platform.machine() + "\n" + (text or platform.processor())


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _prune(folder: Path) -> None:
    """Keep the :data:`MAX_ENTRIES` most recently used optimised models.

    Temporary files older than a day are left by killed processes and go too.
    """
    try:
        entries = sorted(folder.glob("*" + SUFFIX), key=lambda p: p.stat().st_mtime)
        partials = [
            p for p in folder.glob(".*" + PARTIAL) if time.time() - p.stat().st_mtime > 86400
        ]
    except OSError:
        return
    for stale in entries[:-MAX_ENTRIES] + partials:
        _remove(stale)
