"""Where shards are scored: local worker processes (spawned), or a Dask cluster."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from cprsdk.batch.scoring import score_shard
from cprsdk.errors import ConfigError
from cprsdk.runtime.child import exit_with_parent

__all__ = ["Engine"]


class Engine:
    """Runs score_shard somewhere: local worker processes, or a Dask cluster."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self._client: Any = None
        self._pool: ProcessPoolExecutor | None = None
        if spec.engine == "dask":
            try:
                from distributed import Client  # type: ignore[import-not-found,unused-ignore]
            except ImportError:
                raise ConfigError("--engine dask needs Dask.", hint="pip install 'cprsdk[dask]'") from None
            self._client = (Client(spec.scheduler) if spec.scheduler  # type: ignore[no-untyped-call]
                            else Client(processes=True, n_workers=spec.workers))  # type: ignore[no-untyped-call]
        else:
            import multiprocessing

            self._pool = ProcessPoolExecutor(max_workers=spec.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=exit_with_parent, initargs=(os.getpid(),))

    def submit(self, payload: dict[str, Any], records: list[dict[str, Any]]) -> Any:
        if self._client is not None:
            return self._client.submit(score_shard, payload, records, pure=False)
        assert self._pool is not None
        return self._pool.submit(score_shard, payload, records)

    @staticmethod
    def result(future: Any) -> Any:
        return future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        if self._client is not None:
            self._client.close()
