"""The boot of every child interpreter that runs user code: the sandbox, node workers, batch workers.

A child is ``python -I`` (no user site, no ``PYTHONPATH``, no current folder on the path) started
with :func:`child_argv`. Inside it, :func:`enter` makes the version's installed folders the first
entries of ``sys.path``, sets ``sys.argv`` to the prediction class (user code that reads
``sys.argv`` sees no cprsdk flags), and, when asked, moves the original stdout aside so that
anything user code prints, even from C, goes to stderr and can never corrupt the answers.

Workers run with :func:`worker_env`: the node's environment minus its secrets.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["SECRET_NAMES", "child_argv", "enter", "exit_with_parent", "keep_freed_memory", "protect_secret",
           "worker_env"]

SECRET_NAMES = re.compile(r"^CPRSDK_.*(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
"""Variables named like a secret of the node (``CPRSDK_ADMIN_TOKEN``, ``CPRSDK_ADMIN_TOKEN_FILE``...)."""

_SECRETS: set[str] = set()  # the node's token-file path (as given and resolved) and the token itself


def protect_secret(*values: str) -> None:
    """Keep ``values`` (a token file's path, the token) out of every worker's environment from now on."""
    for value in values:
        if value:
            _SECRETS.add(value)
            if os.sep in value:
                _SECRETS.add(os.path.realpath(value))


def worker_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a worker gets: the node's, minus variables named like a node secret
    (:data:`SECRET_NAMES`) and variables whose value holds a protected secret (:func:`protect_secret`:
    the admin token file's path or the token). Everything else passes, cloud credentials included.
    """
    environ = os.environ if environ is None else environ
    return {name: value for name, value in environ.items()
            if not SECRET_NAMES.search(name) and not any(secret in value for secret in _SECRETS)}


_ROOT = str(Path(__file__).resolve().parent.parent.parent)
_BOOT = (
    "import sys, importlib, importlib.util\n"
    "if importlib.util.find_spec('cprsdk') is None: sys.path.append({root!r})\n"
    "module, _, name = {entry!r}.partition(':')\n"
    "getattr(importlib.import_module(module), name)()\n"
)


def child_argv(entry: str, *args: str) -> list[str]:
    """The command that runs ``entry`` (``"package.module:function"``) in a fresh isolated interpreter."""
    return [sys.executable, "-I", "-c", _BOOT.format(root=_ROOT, entry=entry), *args]


def enter(sites: Sequence[str], argv0: str, *, take_stdout: bool = False) -> int | None:
    """Put ``sites`` first on ``sys.path`` (the current folder off it) and ``argv0`` in ``sys.argv``.

    With ``take_stdout``, returns a duplicate of the original stdout for the answers, and points
    file descriptor 1 and ``sys.stdout`` at stderr.
    """
    answers = None
    if take_stdout:
        answers = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", cwd) and p not in sites]
    sys.path[:0] = list(sites)
    sys.argv = [argv0]
    return answers


def exit_with_parent(parent: int, *, interval: float = 0.5) -> None:
    """End this process within ``interval`` seconds of its parent's death, however it died.

    A watcher thread compares ``os.getppid()`` with ``parent``: an orphan is re-parented, so the
    check works on every POSIX system, for a SIGKILLed parent too (which cannot clean up).
    """
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="cprsdk-parent-watch", daemon=True).start()


def keep_freed_memory(trim: int = 512 << 20, mmap_threshold: int = 32 << 20) -> None:
    """Have glibc's malloc keep up to ``trim`` bytes of freed heap, and serve blocks under
    ``mmap_threshold`` from the heap, instead of handing memory back to the kernel after every
    shard and faulting it in again for the next (in a batch worker, that churn cost more system
    time than scoring). Elsewhere than glibc, nothing changes."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(-1, trim)  # M_TRIM_THRESHOLD
    mallopt(-3, mmap_threshold)  # M_MMAP_THRESHOLD
