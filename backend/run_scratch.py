"""Names for a run's scratch files and folders that say which process owns them.

A run writes hidden partial outputs beside its destination and copies layers into a temporary
folder, and removes them when it ends. A killed run (SIGKILL, a crash, a closed terminal) cannot, so
every such name carries the owner's host and process id (``h<host>-p<pid>``); the next run removes
the entries whose owner is a process of this host that no longer exists. Entries of another host
(a shared network folder) or of a live process are never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from pathlib import Path
from typing import List, Optional, Union


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname())[:40]


def owner_tag() -> str:
    """The tag of this process: ``h<host>-p<pid>``."""
    return f"h{_host()}-p{os.getpid()}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _owner_pid(name: str) -> Optional[int]:
    """The process id in ``name``'s tag when the tag is of this host, else None.

    The tag is found by this host's name, between separators (``-`` or ``.``): a host name may
    itself hold ``-p<digits>``, and so may the random part that follows the tag (``mkdtemp`` makes
    e.g. ``.msgfm-hvm-p14204-p9z992tw``), so the tag cannot be parsed without knowing the host.
    """
    tag = re.compile(rf"(?:^|[-.])h{re.escape(_host())}-p(\d+)(?=[-.]|$)")
    match = tag.search(name)
    return None if match is None else int(match.group(1))


def is_stale(name: str) -> bool:
    """Whether ``name`` carries the tag of a process of this host that has ended."""
    if sys.platform == "win32":
        return False  # os.kill(pid, 0) would terminate the process there
    pid = _owner_pid(name)
    return pid is not None and not _alive(pid)


def remove_stale(folder: Union[str, Path], pattern: str) -> List[Path]:
    """Remove the entries of ``folder`` matching the glob ``pattern`` that are stale.

    Returns:
        What was removed. Entries that cannot be removed are left (and not reported).
    """
    removed = []
    folder = Path(folder)
    try:
        candidates = list(folder.glob(pattern))
    except OSError:
        return removed
    for entry in candidates:
        if not is_stale(entry.name):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed
