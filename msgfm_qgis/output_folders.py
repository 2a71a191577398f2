"""Output folders checked before any work: they exist (created if need be) and can be written to.

Without this check an unwritable or impossible folder surfaces deep in a run as a raw
``PermissionError`` traceback from a temporary-file call; here it is a message naming the
parameter, the folder and what to do.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

from qgis.core import QgsProcessingException

from backend import run_scratch as scratch
from backend.files import output_tempdir

from .i18n import tr


def writable_folder(folder: Union[str, Path], label: str) -> Path:
    """Create ``folder`` if needed and check that files can be created in it.

    Args:
        folder: the folder an output goes to.
        label: the parameter's label, for the message.

    Raises:
        QgsProcessingException: the folder cannot be created or written to.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QgsProcessingException(
            tr(
                "Cannot create the folder {} for '{}' ({}): choose a folder you can write to"
            ).format(folder, label, exc.strerror or exc)
        ) from None
    if not folder.is_dir():
        raise QgsProcessingException(
            tr("{} for '{}' is not a folder: choose another output path").format(folder, label)
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise QgsProcessingException(
            tr(
                "Cannot write to the folder {} for '{}' (permission denied): choose a folder "
                "you can write to, e.g. in your home folder"
            ).format(folder, label)
        )
    return folder


def output_staging_folder(folder: Path, label: str) -> Path:
    """A hidden run-scoped folder inside ``folder`` for outputs being written (removed after)."""
    writable_folder(folder, label)
    # Left by runs that were killed: staging folders, and partial files of `msgfm predict`.
    scratch.remove_stale(folder, ".msgfm-h*")
    scratch.remove_stale(folder, ".*.partial.tif*")
    try:
        return Path(output_tempdir(folder, f".msgfm-{scratch.owner_tag()}-"))
    except OSError as exc:
        raise QgsProcessingException(
            tr(
                "Cannot write to the folder {} for '{}' ({}): choose a folder you can write to"
            ).format(folder, label, exc.strerror or exc)
        ) from None


def layer_copies_folder() -> Path:
    """A run-scoped folder in the temp folder for layers copied to GeoTIFF (removed after).

    Folders of earlier runs that were killed before they could remove theirs are removed first.
    """
    scratch.remove_stale(tempfile.gettempdir(), "msgfm-layers-h*")
    return Path(tempfile.mkdtemp(prefix=f"msgfm-layers-{scratch.owner_tag()}-"))
