"""``--record-timeout``: a predict call that runs past it ends its worker process, and says so first.

A hung predict (a deadlock, an endless loop, C code that never returns) cannot be interrupted from
Python, so the worker's watchdog thread ends the whole process; before that it leaves word of
which shard timed out where the job's process looks for it (:func:`timed_out`): a marker file in
the job's local folder for local workers, a Dask event for Dask workers. The job then isolates the
record at fault by bisection, as for a worker that crashed (``jobs.py``), and the engine starts
fresh workers.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["EVENT", "EXIT_CODE", "guard", "timed_out_message", "watching"]

EVENT = "cprsdk-record-timeout"  # the Dask event topic
EXIT_CODE = 124  # as timeout(1)

_state: dict[str, Any] = {"deadline": None, "thread": None, "shard": None}
_lock = threading.Lock()


def timed_out_message(seconds: float) -> str:
    return (f"the prediction of this record took longer than the --record-timeout of {seconds:g} s; "
            f"the worker was ended and replaced")


@contextlib.contextmanager
def watching(payload: dict[str, Any]) -> Iterator[None]:
    """While a shard is scored in this process: where to report a timeout, and for which submission."""
    worker = None
    if payload.get("engine") == "dask":
        with contextlib.suppress(ImportError, ValueError):
            from distributed import get_worker

            worker = get_worker()
    _state["shard"] = {"marker": payload.get("submission", ""), "folder": payload.get("timeouts"),
                       "worker": worker}
    try:
        yield
    finally:
        _state["shard"] = None


@contextlib.contextmanager
def guard(seconds: float | None) -> Iterator[None]:
    """Run the block with a deadline of ``seconds`` (None: none)."""
    if not seconds:
        yield
        return
    _start()
    _state["deadline"] = time.monotonic() + seconds
    try:
        yield
    finally:
        _state["deadline"] = None


def _start() -> None:
    with _lock:
        if _state["thread"] is None:
            thread = threading.Thread(target=_watch, name="cprsdk-record-timeout", daemon=True)
            thread.start()
            _state["thread"] = thread


def _watch() -> None:
    while True:
        time.sleep(0.05)
        deadline = _state["deadline"]
        if deadline is not None and time.monotonic() > deadline:
            _report(_state["shard"] or {})
            os._exit(EXIT_CODE)


def _report(shard: dict[str, Any]) -> None:
    """Leave word of the timeout where the job looks; best effort: the process ends right after."""
    if shard.get("folder"):
        with contextlib.suppress(OSError):
            (Path(shard["folder"]) / shard["marker"]).write_text("timed out\n")
    if shard.get("worker") is not None:
        with contextlib.suppress(Exception):
            shard["worker"].log_event(EVENT, {"marker": shard["marker"]})
            time.sleep(1.0)  # the event leaves with the worker's next batched send to the scheduler
