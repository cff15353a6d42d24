"""The worker processes of one version, as seen from the front process.

Each worker is a child interpreter (``worker.py``) fed request frames on its stdin; several
requests may wait in the pipe, so a worker never idles between them. A worker that exits (a
crash, ``os._exit``, a signal) fails only its own pending requests and is replaced; one that
runs over the prediction timeout is killed and replaced, and its request gets a 504. Requests
that arrive while no worker runs wait for one (``lifecycle`` says how restarts back off).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from cprsdk.errors import CprError, LoadFailed, Overloaded, WorkersUnavailable, error_bytes
from cprsdk.node.dispatch import Dispatcher, answered_within
from cprsdk.node.lifecycle import LifecyclePolicy, RestartSchedule, ServingState
from cprsdk.node.logthrottle import LogThrottle
from cprsdk.node.protocol import LENGTH, RESPONSE_HEAD, read_report, request_frame
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
    max_batch_size: int = 1  # instances one predict call may take (1: no batching)
    max_batch_wait_ms: float = 0.0  # how long requests are collected while every worker is busy

    def argv(self) -> list[str]:
        spec = {"sites": list(self.sites), "prediction_class": self.prediction_class,
                "model_dir": self.model_dir, "version": self.version, "formatter": self.formatter,
                "formatter_args": dict(self.formatter_args), "max_batch_size": self.max_batch_size}
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
        self.on_idle: Callable[[Worker], None] | None = None  # called when its last pending answer arrives
        self.on_report: Callable[[list[tuple[int, int]]], None] | None = None  # its batch reports
        # When the worker last made progress: its last answer, or the send that ended an idle spell.
        # A worker is stuck once this is a whole prediction timeout ago with requests pending.
        self.busy_since = 0.0
        self.merges = False  # its predictor can share a predict call among requests (told when it has loaded)

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
        self.merges = bool(json.loads(body or b"{}").get("merges", False))
        self._reader = asyncio.create_task(self._read_answers())

    async def _read_frame(self) -> tuple[int, bytes]:
        assert self.proc is not None and self.proc.stdout is not None
        head = await self.proc.stdout.readexactly(LENGTH.size)
        payload = await self.proc.stdout.readexactly(LENGTH.unpack(head)[0])
        _, status = RESPONSE_HEAD.unpack_from(payload)
        return status, payload[RESPONSE_HEAD.size:]

    async def _read_answers(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stdout, loop = self.proc.stdout, asyncio.get_running_loop()
        try:
            while True:
                head = await stdout.readexactly(LENGTH.size)
                payload = await stdout.readexactly(LENGTH.unpack(head)[0])
                request_id, status = RESPONSE_HEAD.unpack_from(payload)
                if request_id == 0:
                    if self.on_report is not None:
                        self.on_report(read_report(payload[RESPONSE_HEAD.size:]))
                    continue
                future = self.pending.pop(request_id, None)
                self.busy_since = loop.time()
                if future is not None and not future.done():
                    future.set_result((status, payload[RESPONSE_HEAD.size:]))
                if not self.pending and self.on_idle is not None:
                    self.on_idle(self)
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
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        self.busy_since = self.busy_since if self.pending else loop.time()
        self.pending[request_id] = future
        self.proc.stdin.write(request_frame(request_id, mode, body))
        return future

    def send_many(self, frames: list[tuple[int, int, bytes, asyncio.Future[tuple[int, bytes]]]]) -> None:
        """Several requests in one write: (request id, mode, body, the future their answer resolves)."""
        assert self.proc is not None and self.proc.stdin is not None
        self.busy_since = self.busy_since if self.pending else asyncio.get_running_loop().time()
        for request_id, _, _, future in frames:
            self.pending[request_id] = future
        self.proc.stdin.write(b"".join(request_frame(i, mode, body) for i, mode, body, _ in frames))

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
    """``size`` workers of one version; requests go to the least busy live one.

    A worker that exits is replaced (see ``lifecycle``: backoff after a failed start, a pause in a
    crash loop); requests that arrive meanwhile wait for a live worker within their own timeout.
    """

    def __init__(self, spec: WorkerSpec, *, size: int = 1, max_pending: int = 256,
                 predict_timeout: float = 60.0, load_timeout: float = 600.0,
                 policy: LifecyclePolicy | None = None) -> None:
        self.spec = spec
        self.size = size
        self.max_pending = max_pending
        self.predict_timeout = predict_timeout
        self.load_timeout = load_timeout
        self.policy = policy or LifecyclePolicy()
        self.workers: list[Worker] = []
        self._ids = itertools.count(1)
        self._closing = False
        self._watchers: set[asyncio.Task[None]] = set()
        self.restarts = 0
        self.waiting = 0  # requests waiting for a live worker
        self._condemned: set[Worker] = set()  # killed by the pool: never sent another request
        self._changed = asyncio.Event()  # replaced on every change of the live workers or the backoff
        self._throttle = LogThrottle(log, interval=self.policy.log_interval)
        self.schedule = RestartSchedule(self.policy, name=f"{spec.model}/{spec.version}", on_change=self._notify,
                                        throttle=self._throttle)
        self.dispatch = Dispatcher(workers=self._live, version=spec.version,
                                   max_batch_size=spec.max_batch_size, max_batch_wait_ms=spec.max_batch_wait_ms)

    @property
    def pending(self) -> int:
        return sum(len(w.pending) for w in self.workers) + len(self.dispatch.queue)

    @property
    def serving_state(self) -> ServingState:
        if self._live():
            return "SERVING"
        return self.schedule.reason if self.schedule.retry_at is not None else "RESTARTING"

    @property
    def serving_detail(self) -> str:
        """One line on why no worker runs ("" while SERVING)."""
        return "" if self._live() else self.schedule.detail()

    def _live(self) -> list[Worker]:
        return [w for w in self.workers if w.alive and w not in self._condemned]

    def _watch(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

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
        if not all(w.merges for w in workers):  # a raw-body form: never merged, so never held in the queue
            self.dispatch.max_size = 1
        for w in workers:
            self._watch(self._replace_when_exited(w))

    async def _replace_when_exited(self, worker: Worker) -> None:
        await worker.exited.wait()
        if self._closing:
            return
        if worker in self._condemned:
            self._condemned.discard(worker)
        else:
            self.schedule.crashes.record()
            code = worker.proc.returncode if worker.proc is not None else None
            self._throttle.log(logging.WARNING, ("exited", self.spec.model, self.spec.version),
                               "worker of %s/%s exited (%s); starting a new one", self.spec.model,
                               self.spec.version, _exit_text(code))
        self._notify()
        replacement = await self._start_replacement()
        if replacement is None:
            return
        self.restarts += 1
        self.workers = [replacement if w is worker else w for w in self.workers]
        if self._closing:
            await replacement.close()
            return
        self._notify()
        self.dispatch.flush()  # what queued while no worker ran goes to the new one
        self._watch(self._replace_when_exited(replacement))

    async def _start_replacement(self) -> Worker | None:
        """A started worker, after as many attempts as it takes; None if the pool closes first."""
        while not self._closing:
            await self.schedule.pause()
            if self._closing:
                return None
            worker = Worker(self.spec)
            try:
                await worker.start(self.load_timeout)
            except asyncio.CancelledError:  # the node stops: no process is left behind
                worker.kill()
                if worker.proc is not None:
                    await worker.proc.wait()
                raise
            except Exception as exc:  # any failed start (LoadFailed, EMFILE, ...) is retried with backoff
                worker.kill()
                self.schedule.failed(exc)
                continue
            self.schedule.started()
            return worker
        return None

    async def _live_worker(self, deadline: float) -> Worker | None:
        """The least busy live worker, waiting for one until ``deadline`` (None past it)."""
        loop = asyncio.get_running_loop()
        self.waiting += 1
        try:
            while True:
                live = self._live()
                if live:
                    return min(live, key=lambda w: len(w.pending))
                self._raise_if_cannot_start()
                changed, remaining = self._changed, deadline - loop.time()
                if remaining <= 0:
                    return None
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
        finally:
            self.waiting -= 1

    def _raise_if_cannot_start(self) -> None:
        name = f"Version {self.spec.version} of model {self.spec.model}"
        if self._closing:
            raise WorkersUnavailable(f"{name} is shutting down on this node.", retry_after=1,
                                     hint="Retry on another node, or once it is deployed again.")
        if self.schedule.retry_at is not None:
            raise WorkersUnavailable(f"{name} has no running worker: {self.serving_detail}.",
                                     retry_after=self.schedule.retry_in(),
                                     hint="Retry after Retry-After seconds; the node's log has the cause.")

    async def predict(self, body: bytes, mode: int, *,
                      instances: Callable[[], int] = lambda: 1) -> tuple[int, bytes]:
        """The worker's (status, JSON body); 503 when the queue is full, 504 past the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.predict_timeout  # counted from arrival, waiting for a worker included
        if self.pending + self.waiting >= self.max_pending:
            raise Overloaded(f"Version {self.spec.version} has {self.pending + self.waiting} requests waiting; "
                             "try again shortly.", retry_after=1)
        if await self._live_worker(deadline) is None:  # wait for one; the dispatcher picks which gets it
            return 504, error_bytes(504, f"No worker of version {self.spec.version} was running within the "
                                         f"{self.predict_timeout:g} s timeout (it is being replaced).")
        request_id = next(self._ids)
        future = self.dispatch.submit(request_id, mode, body, instances=instances)
        if await answered_within(future, deadline - loop.time()):
            return future.result()
        if not self.dispatch.drop(request_id):  # sent (not still queued behind busy workers)
            worker = next((w for w in self.workers if request_id in w.pending), None)
            if worker is not None:
                self._overdue(worker, request_id, future)
        return 504, error_bytes(504, f"The prediction took longer than the {self.predict_timeout:g} s timeout.")

    def _overdue(self, worker: Worker, request_id: int, future: asyncio.Future[tuple[int, bytes]]) -> None:
        """A request's deadline passed: its worker is killed once it has answered nothing for a whole
        timeout (time a request waited, in the front queue or behind others in the pipe, is not its fault)."""
        async def watch() -> None:
            loop = asyncio.get_running_loop()
            while not future.done():
                left = worker.busy_since + self.predict_timeout - loop.time()
                if left <= 0.001:
                    if worker.alive and request_id in worker.pending:
                        self._condemn(worker, request_id)
                    return
                await answered_within(future, left)

        if worker.busy_since + self.predict_timeout - asyncio.get_running_loop().time() <= 0.001:
            self._condemn(worker, request_id)  # at once: the next request must not be sent to it
        else:
            self._watch(watch())

    def _condemn(self, worker: Worker, request_id: int) -> None:
        """Kill a worker that ran over the timeout; no request is sent to it again.

        Its other pending requests were written to it already: they get a 500 that says so (they
        may be retried); requests that arrive from now on wait for its replacement.
        """
        self._condemned.add(worker)
        worker.pending.pop(request_id, None)
        message = (f"The prediction worker of version {self.spec.version} was stopped because another request "
                   f"on it took longer than the {self.predict_timeout:g} s timeout; this request had been sent "
                   "to it and got no answer. Retry it.")
        for future in worker.pending.values():
            if not future.done():
                future.set_result((500, error_bytes(500, message)))
        worker.pending.clear()
        self._throttle.log(logging.ERROR, ("timeout", self.spec.model, self.spec.version),
                           "prediction on %s/%s exceeded %g s; replacing its worker", self.spec.model,
                           self.spec.version, self.predict_timeout)
        worker.kill()
        self._notify()

    async def close(self) -> None:
        """Drain: in-flight requests finish, then the workers end."""
        self._closing = True
        self._notify()
        self.dispatch.flush(or_fail=True)  # requests still in the front queue are in flight too
        await asyncio.gather(*(w.close() for w in self.workers), return_exceptions=True)
        tasks = list(self._watchers)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

