"""Atomic training checkpoints.

A checkpoint is a folder:

    model.safetensors   the model weights
    trainer_state.pt    optimiser, scheduler, step and RNG states (``torch.load(weights_only=True)``)
    meta.json           step, model config, normalisation statistics, run settings

It is written into a hidden temporary folder beside its final name and renamed into place, so a
process killed at any moment leaves either the previous checkpoint or the new one, never a
half-written one. Replacing an existing folder takes two renames (old away, new in); a kill between
them leaves ``.<name>.old``, which :func:`resolve_checkpoint` falls back to.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Union

from .files import file_mode

LAST = "checkpoint-last"
BEST = "checkpoint-best"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
META_FILE = "meta.json"


def periodic_name(step: int) -> str:
    """Folder name of the kept checkpoint of ``step``."""
    return f"checkpoint-{step:07d}"


def _fsync(path: Path) -> None:
    # Rename is atomic only for data that reached the disk: flush files before renaming.
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(str(path), flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(
    directory: Union[str, Path],
    model,
    trainer_state: Dict[str, Any],
    meta: Dict[str, Any],
) -> Path:
    """Write a checkpoint folder atomically.

    Args:
        directory: Final folder (``OUT/checkpoint-last``); replaced if it exists.
        model: The (unwrapped) ``nn.Module`` whose weights are saved.
        trainer_state: Tensors and plain values only (loadable with ``weights_only=True``).
        meta: JSON-serialisable description.

    Returns:
        The final folder.
    """
    import torch
    from safetensors.torch import save_model

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir()
    save_model(model, str(temporary / WEIGHTS_FILE))
    torch.save(trainer_state, temporary / STATE_FILE)
    (temporary / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    for name in (WEIGHTS_FILE, STATE_FILE, META_FILE):
        # safetensors creates its file with mode 0600: give it the umask's mode like the others.
        os.chmod(temporary / name, file_mode())
        _fsync(temporary / name)
    _fsync(temporary)
    _install(temporary, directory)
    return directory


def _install(temporary: Path, directory: Path) -> None:
    previous = directory.parent / f".{directory.name}.old"
    if previous.exists():
        shutil.rmtree(previous)
    if directory.exists():
        directory.rename(previous)
    temporary.rename(directory)
    _fsync(directory.parent)
    if previous.exists():
        shutil.rmtree(previous)


def copy_checkpoint(source: Union[str, Path], directory: Union[str, Path]) -> Path:
    """Atomically place a copy of a checkpoint folder (hard links where the filesystem allows)."""
    source, directory = Path(source), Path(directory)
    temporary = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir(parents=True)
    for item in source.iterdir():
        try:
            os.link(item, temporary / item.name)
        except OSError:
            shutil.copy2(item, temporary / item.name)
    _fsync(temporary)
    _install(temporary, directory)
    return directory


def resolve_checkpoint(path: Union[str, Path]) -> Optional[Path]:
    """The checkpoint folder meant by ``path``: a checkpoint itself or a run's output folder.

    For an output folder this is ``checkpoint-last``, or ``.checkpoint-last.old`` when a run was
    killed between the two renames of an update. Returns None when there is none.
    """
    path = Path(path)
    if (path / META_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
        return path
    for candidate in (path / LAST, path / f".{LAST}.old"):
        if (candidate / META_FILE).is_file() and (candidate / WEIGHTS_FILE).is_file():
            return candidate
    return None


def load_checkpoint(
    path: Union[str, Path], model=None, map_location: str = "cpu"
) -> Dict[str, Any]:
    """Read a checkpoint (folder or run output folder).

    Args:
        path: Checkpoint folder or output folder.
        model: If given, its weights are loaded in place (strict).
        map_location: Device for the trainer-state tensors.

    Returns:
        ``{"path", "meta", "trainer_state"}``.
    """
    import torch
    from safetensors.torch import load_model

    folder = resolve_checkpoint(path)
    if folder is None:
        raise FileNotFoundError(
            f"no checkpoint in {path}: expected {WEIGHTS_FILE} and {META_FILE} there or in "
            f"{Path(path) / LAST}; start without --resume or point at a run's output folder"
        )
    meta = json.loads((folder / META_FILE).read_text())
    state = torch.load(folder / STATE_FILE, map_location=map_location, weights_only=True)
    if model is not None:
        load_model(model, str(folder / WEIGHTS_FILE), strict=True)
    return {"path": folder, "meta": meta, "trainer_state": state}
