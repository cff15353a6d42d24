"""A job's local scratch folders (downloaded and decompressed inputs, timeout markers).

Each is named ``cprsdk-batch-<kind>-<pid>-<random>`` in the system's temporary folder, after the
job's process. A job removes its own when it ends; a job killed before it could (SIGKILL, a lost
machine session) leaves them, and the next job on the machine removes every one whose process is
gone, so a killed job's downloads never pile up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["scratch_folder", "sweep"]

_PREFIX = "cprsdk-batch-"


def scratch_folder(kind: str) -> Path:
    """A new scratch folder of this process (``kind``: what it holds, one word), after a sweep of the dead's."""
    sweep()
    return Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{kind}-{os.getpid()}-"))


def sweep(root: Path | None = None) -> list[Path]:
    """Remove the scratch folders, owned by this user, of processes that are gone; returns them."""
    removed = []
    for folder in (root or Path(tempfile.gettempdir())).glob(f"{_PREFIX}*-*-*"):
        parts = folder.name[len(_PREFIX):].split("-")
        if len(parts) != 3 or not parts[1].isdigit() or not _orphaned(folder, int(parts[1])):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _orphaned(folder: Path, pid: int) -> bool:
    if not hasattr(os, "getuid"):  # no owners to compare: never swept
        return False
    try:
        if not folder.is_dir() or folder.is_symlink() or folder.stat().st_uid != os.getuid():
            return False
    except OSError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    with contextlib.suppress(OSError):  # a zombie is gone too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return False
