"""Where shards are scored: local worker processes (spawned), or a Dask cluster.

A worker that dies while scoring (``os._exit``, a segfault, the OOM killer) surfaces as
:class:`cprsdk.errors.WorkerLost` from :meth:`Engine.result`, with the way it exited; the job then
isolates the record at fault (see ``jobs.py``) and the engine starts fresh workers.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import shutil
import signal
import uuid
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from cprsdk.batch import watchdog
from cprsdk.batch.scoring import loaded, score_shard
from cprsdk.batch.scratch import scratch_folder
from cprsdk.batch.shards import read_shard
from cprsdk.errors import ConfigError, WorkerLost
from cprsdk.runtime.child import exit_with_parent, keep_freed_memory, worker_env

__all__ = ["Engine"]


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"with signal {signal.Signals(-code).name}"
    return "" if code is None else f"with exit code {code}"


def _enter_worker(parent: int, environ: dict[str, str], payload: dict[str, Any]) -> None:
    """A local batch worker's start: the environment minus the node's secrets (as node workers get it),
    an exit of its own when ``parent`` goes, malloc told to keep freed memory, and the version loaded
    (while the job's process still scans the inputs).

    A version that fails to load here is loaded again by the first shard, which reports the error.
    """
    os.environ.clear()
    os.environ.update(environ)
    exit_with_parent(parent)
    keep_freed_memory()
    with contextlib.suppress(Exception):
        loaded(payload)
    gc.freeze()  # the model's objects: never traced again by the collector


class Engine:
    """Runs score_shard somewhere: local worker processes, or a Dask cluster."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self._client: Any = None
        self._pool: ProcessPoolExecutor | None = None
        self._workers: dict[int, Any] = {}  # pid -> the pool's Process objects
        self._run, self._submitted = uuid.uuid4().hex, 0  # names each submission, for its timeout report
        self._timeouts: str | None = None  # where local workers report a --record-timeout
        if spec.engine == "dask":
            try:
                from distributed import Client  # type: ignore[import-not-found,unused-ignore]
            except ImportError:
                raise ConfigError("--engine dask needs Dask.", hint="pip install 'cprsdk[dask]'") from None
            self._client = (Client(spec.scheduler) if spec.scheduler  # type: ignore[no-untyped-call]
                            else Client(processes=True, n_workers=spec.workers))  # type: ignore[no-untyped-call]
        else:
            self._timeouts = str(scratch_folder("timeouts"))
            self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        """A pool whose workers all start now: they load the version while the job goes on."""
        pool = ProcessPoolExecutor(max_workers=self.spec.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_enter_worker,
                                   initargs=(os.getpid(), worker_env(), self.spec.worker_payload()))
        for _ in range(self.spec.workers):  # the pool starts a worker per submission while none is idle
            pool.submit(os.getpid)
        return pool

    def submit(self, payload: dict[str, Any], records: list[dict[str, Any]] | dict[str, Any]) -> Any:
        self._submitted += 1
        payload = {**payload, "submission": f"{self._run}-{self._submitted}", "timeouts": self._timeouts}
        if self._client is not None:
            future = self._client.submit(score_shard, payload, records, pure=False)
        else:
            assert self._pool is not None
            future = self._pool.submit(score_shard, payload, records)
            self._workers.update(getattr(self._pool, "_processes", None) or {})  # to tell how one exited
        future.cprsdk_submission = payload["submission"]
        return future

    def submit_shard(self, payload: dict[str, Any], segments: list[dict[str, Any]]) -> Any:
        """Score a shard given by its segments: local workers read its records themselves; for Dask, the
        records are read here (storage stays with this process), one shard in flight at a time each."""
        if self._client is not None:
            return self.submit(payload, read_shard(segments))
        return self.submit(payload, {"segments": segments})

    def timed_out(self, future: Any) -> bool:
        """Whether the worker lost with ``future`` was ended by its --record-timeout watchdog."""
        marker = getattr(future, "cprsdk_submission", "")
        if self._timeouts is not None:
            return os.path.exists(os.path.join(self._timeouts, marker))
        with contextlib.suppress(Exception):
            return any(event.get("marker") == marker for _, event in self._client.get_events(watchdog.EVENT))
        return False

    def result(self, future: Any) -> Any:
        """The shard's output; :class:`WorkerLost` if the worker scoring it died."""
        try:
            return future.result()
        except BrokenProcessPool:
            raise WorkerLost(f"the worker process exited {self._how_workers_exited()}".rstrip()) from None
        except Exception as exc:
            if type(exc).__name__ == "KilledWorker":  # Dask gave up after its workers died on this task
                raise WorkerLost(f"the Dask workers running it died ({exc})") from None
            raise

    def _how_workers_exited(self) -> str:
        processes = list(self._workers.values())
        for process in processes:
            process.join(timeout=2)
        codes = {p.exitcode for p in processes if p.exitcode not in (None, 0)}
        if len(processes) > 1:  # the pool ends the other workers with SIGTERM once one died: not the cause
            codes.discard(-signal.SIGTERM)
        return " or ".join(_exit_text(code) for code in sorted(codes))

    def restart(self) -> None:
        """Fresh workers after one died (the local pool is unusable then; Dask replaces its own)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._workers = self._new_pool(), {}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        if self._timeouts is not None:
            shutil.rmtree(self._timeouts, ignore_errors=True)
        if self._client is not None:
            self._client.close()
