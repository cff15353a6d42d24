"""The worker processes of one version, as seen from the front process.

Each worker is a child interpreter (``worker.py``) fed request frames on its stdin; several
requests may wait in the pipe, so a worker never idles between them. A worker that exits (a
crash, ``os._exit``, a signal) fails only its own pending requests and is replaced; one that
runs over the prediction timeout is killed and replaced, and its request gets a 504.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cprsdk.errors import CprError, LoadFailed, Overloaded, error_bytes
from cprsdk.node.protocol import LENGTH, RESPONSE_HEAD, request_frame
from cprsdk.runtime.child import child_argv, worker_env

__all__ = ["WorkerPool", "WorkerSpec"]

log = logging.getLogger("cprsdk.node")


@dataclass(frozen=True)
class WorkerSpec:
    model: str
    version: str
    sites: tuple[str, ...]
    prediction_class: str
    model_dir: str
    formatter: str | None = None
    formatter_args: tuple[tuple[str, Any], ...] = ()
    check: Callable[[], None] | None = field(default=None, compare=False)  # raises if the install changed

    def argv(self) -> list[str]:
        spec = {"sites": list(self.sites), "prediction_class": self.prediction_class,
                "model_dir": self.model_dir, "version": self.version, "formatter": self.formatter,
                "formatter_args": dict(self.formatter_args)}
        return child_argv("cprsdk.node.worker:main", json.dumps(spec))


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


class Worker:
    """One child process and the requests waiting for its answers."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.proc: asyncio.subprocess.Process | None = None
        self.pending: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.exited = asyncio.Event()

    async def start(self, load_timeout: float) -> None:
        if self.spec.check is not None:  # every start, replacements included: never run changed code
            try:
                await asyncio.to_thread(self.spec.check)
            except CprError as exc:
                raise LoadFailed(str(exc)) from None
        self.proc = await asyncio.create_subprocess_exec(
            *self.spec.argv(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=1 << 26, env=worker_env(),
        )
        try:
            status, body = await asyncio.wait_for(self._read_frame(), load_timeout)
        except asyncio.TimeoutError:
            self.kill()
            raise LoadFailed(f"from_path did not finish within the load timeout of {load_timeout:g} s.",
                             hint="Make loading faster, or raise `cprsdk serve --load-timeout`.") from None
        except asyncio.IncompleteReadError:
            code = await self.proc.wait()
            raise LoadFailed(f"The worker exited while loading the predictor ({_exit_text(code)}).") from None
        if status != 200:
            await self.proc.wait()
            raise LoadFailed(json.loads(body)["error"]["message"])
        self._reader = asyncio.create_task(self._read_answers())

    async def _read_frame(self) -> tuple[int, bytes]:
        assert self.proc is not None and self.proc.stdout is not None
        head = await self.proc.stdout.readexactly(LENGTH.size)
        payload = await self.proc.stdout.readexactly(LENGTH.unpack(head)[0])
        _, status = RESPONSE_HEAD.unpack_from(payload)
        return status, payload[RESPONSE_HEAD.size:]

    async def _read_answers(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        try:
            while True:
                head = await stdout.readexactly(LENGTH.size)
                payload = await stdout.readexactly(LENGTH.unpack(head)[0])
                request_id, status = RESPONSE_HEAD.unpack_from(payload)
                future = self.pending.pop(request_id, None)
                if future is not None and not future.done():
                    future.set_result((status, payload[RESPONSE_HEAD.size:]))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        code = await self.proc.wait()
        self._fail_pending(f"The prediction worker of version {self.spec.version} exited ({_exit_text(code)}) "
                           "while handling this request.")
        self.exited.set()

    def _fail_pending(self, message: str) -> None:
        body = error_bytes(500, message)
        for future in self.pending.values():
            if not future.done():
                future.set_result((500, body))
        self.pending.clear()

    def send(self, request_id: int, mode: int, body: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.proc is not None and self.proc.stdin is not None
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        self.proc.stdin.write(request_frame(request_id, mode, body))
        return future

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and not self.exited.is_set()

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def close(self) -> None:
        """Let pending requests finish, then end the process."""
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except asyncio.TimeoutError:
            self.kill()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


class WorkerPool:
    """``size`` workers of one version; requests go to the least busy live one."""

    def __init__(self, spec: WorkerSpec, *, size: int = 1, max_pending: int = 256,
                 predict_timeout: float = 60.0, load_timeout: float = 600.0) -> None:
        self.spec = spec
        self.size = size
        self.max_pending = max_pending
        self.predict_timeout = predict_timeout
        self.load_timeout = load_timeout
        self.workers: list[Worker] = []
        self._ids = itertools.count(1)
        self._closing = False
        self._watchers: list[asyncio.Task[None]] = []
        self.restarts = 0

    @property
    def pending(self) -> int:
        return sum(len(w.pending) for w in self.workers)

    async def start(self) -> None:
        """Start every worker; raises :class:`LoadFailed` if the predictor does not load."""
        workers = [Worker(self.spec) for _ in range(self.size)]
        results = await asyncio.gather(*(w.start(self.load_timeout) for w in workers), return_exceptions=True)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            for worker in workers:
                worker.kill()
            raise failure
        self.workers = workers
        self._watchers = [asyncio.create_task(self._replace_when_exited(w)) for w in workers]

    async def _replace_when_exited(self, worker: Worker) -> None:
        await worker.exited.wait()
        while not self._closing:
            log.warning("worker of %s/%s exited; starting a new one", self.spec.model, self.spec.version)
            replacement = Worker(self.spec)
            try:
                await replacement.start(self.load_timeout)
            except LoadFailed as exc:
                log.error("replacement worker of %s/%s failed to load: %s", self.spec.model, self.spec.version, exc)
                await asyncio.sleep(1.0)
                continue
            self.restarts += 1
            self.workers = [replacement if w is worker else w for w in self.workers]
            if self._closing:
                await replacement.close()
                return
            self._watchers.append(asyncio.create_task(self._replace_when_exited(replacement)))
            return

    async def predict(self, body: bytes, mode: int) -> tuple[int, bytes]:
        """The worker's (status, JSON body); 503 when the queue is full, 504 past the timeout."""
        live = [w for w in self.workers if w.alive]
        if not live:
            return 503, error_bytes(503, f"No worker of version {self.spec.version} is running; it is being restarted.")
        if self.pending >= self.max_pending:
            raise Overloaded(f"Version {self.spec.version} has {self.pending} requests waiting; try again shortly.")
        worker = min(live, key=lambda w: len(w.pending))
        request_id = next(self._ids)
        future = worker.send(request_id, mode, body)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.predict_timeout)
        except asyncio.TimeoutError:
            worker.pending.pop(request_id, None)
            log.error("prediction on %s/%s exceeded %g s; replacing its worker",
                      self.spec.model, self.spec.version, self.predict_timeout)
            worker.kill()
            return 504, error_bytes(504, f"The prediction took longer than the {self.predict_timeout:g} s timeout.")

    async def close(self) -> None:
        """Drain: in-flight requests finish, then the workers end."""
        self._closing = True
        await asyncio.gather(*(w.close() for w in self.workers), return_exceptions=True)
        for task in self._watchers:
            task.cancel()


def describe(pool: WorkerPool | None) -> dict[str, Any]:
    if pool is None:
        return {"workers": 0, "pending": 0, "restarts": 0}
    return {"workers": sum(w.alive for w in pool.workers), "pending": pool.pending, "restarts": pool.restarts}
