"""A real Dask cluster for tests (a pytest plugin, see conftest.py): ``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1, each a process group of its own, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cprsdk.testing import free_port

DASK = str(Path(sys.executable).with_name("dask"))


@dataclass(frozen=True)
class DaskCluster:
    address: str
    processes: tuple[subprocess.Popen[bytes], ...]

    def worker_pids(self) -> list[int]:
        """PIDs of the worker processes (children of the nannies) the scheduler knows."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:  # type: ignore[no-untyped-call]
            return sorted(int(pid) for pid in client.run(os.getpid).values())

    def wait_for_workers(self, count: int, timeout: float = 60) -> None:
        from distributed import Client

        with Client(self.address, timeout=30) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(count, timeout=timeout)


def _start(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([DASK, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [_start("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")]
    try:
        deadline = time.monotonic() + 60
        for _ in range(2):
            procs.append(_start("worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
                                "--no-dashboard", "--local-directory", str(tmp_path / "dask-worker")))
        cluster = DaskCluster(address, tuple(procs))
        cluster.wait_for_workers(2, timeout=max(1.0, deadline - time.monotonic()))
        yield cluster
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
