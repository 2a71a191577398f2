"""Files the backend writes and checks: output modes, atomic writes, SHA-256 checksums.

Temporary files and folders that become outputs are created with the modes a plain ``open`` gives.

``tempfile.mkstemp`` creates files with mode 0600 and ``tempfile.mkdtemp`` folders with 0700,
whatever the process umask: right for scratch space, wrong for a file that is renamed into place
as a result (a GeoTIFF, a JSON report, a checkpoint folder), because other users and services could
then not read it in a shared folder. These wrappers create the same hidden, uniquely named
entries and then give them the mode ``open``/``mkdir`` would have (0666 / 0777 minus the umask).

A text output (a manifest, a results file, a report) is written by :func:`write_text_atomically`:
into such a temporary file beside its final name, then renamed into place, so a reader sees the
old file or the new one, never half of one. Rasters, GeoPackages and checkpoint folders follow the
same rule with their own writers (:mod:`backend.inference.writers`, :mod:`backend.checkpoints`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional, Tuple, Union

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read without changing it for other threads where the OS tells it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:  # elsewhere the only way to read it is to set it and set it back
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from ``open``: 0666 minus the umask."""
    return 0o666 & ~current_umask()


def folder_mode() -> int:
    """The mode a new folder gets from ``mkdir``: 0777 minus the umask."""
    return 0o777 & ~current_umask()


def output_tempfile(folder: Union[str, Path], prefix: str, suffix: str = "") -> Tuple[int, str]:
    """Like ``tempfile.mkstemp(dir=folder, prefix=..., suffix=...)``, with the umask's mode.

    Returns:
        The open file descriptor and the path, as ``mkstemp`` does.
    """
    handle, name = tempfile.mkstemp(dir=str(folder), prefix=prefix, suffix=suffix)
    # No fchmod on Windows, whose file permissions follow other rules.
    with contextlib.suppress(AttributeError, OSError):
        os.fchmod(handle, file_mode())
    return handle, name


def output_tempdir(folder: Optional[Union[str, Path]] = None, prefix: str = "tmp") -> str:
    """Like ``tempfile.mkdtemp(dir=folder, prefix=...)``, with the umask's folder mode."""
    name = tempfile.mkdtemp(dir=None if folder is None else str(folder), prefix=prefix)
    with contextlib.suppress(OSError):
        os.chmod(name, folder_mode())
    return name


def write_text_atomically(path: Union[str, Path], text: str) -> None:
    """Write ``text`` (UTF-8) to a temporary file beside ``path`` and rename it into place.

    The folder is created if needed; on any error the temporary file is removed and the previous
    ``path``, if any, is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = output_tempfile(path.parent, f".{path.name}.", ".partial")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomically(path: Union[str, Path], document: Any) -> None:
    """:func:`write_text_atomically` of ``document`` as indented JSON with a final newline."""
    write_text_atomically(path, json.dumps(document, indent=2) + "\n")


def sha256_file(path: Union[str, Path]) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
