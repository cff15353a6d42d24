"""Sending requests to a version's workers: at once to an idle worker, else collected into one write.

Without batching (``max_batch_size`` 1, or a version whose predictor takes the raw body: the pool
turns it off when its workers say they cannot merge), and for every ``:rawPredict`` body, a request
is written at once to the live worker with the fewest requests pending.

With batching, a request goes at once to an idle worker (none pending), so at concurrency 1 there
is no waiting at all, and the worker alone parses its body. While every worker is busy, requests
wait in this front queue until one of:

- a worker becomes idle (its last pending answer arrives): the whole queue goes to it;
- the queue holds ``max_batch_size`` instances or more: it goes to the least-loaded live worker;
- ``max_batch_wait_ms`` has passed since the first of them arrived: likewise.

The queue is sent as one write; the worker takes every frame waiting on its pipe and merges what it
may (``worker.py``, ``batching.py``). Each request's time in this queue is recorded in
:class:`~cprsdk.node.metrics.BatchStats`, as are the worker's reports of its predict calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cprsdk.errors import error_bytes
from cprsdk.node.metrics import BatchStats
from cprsdk.node.protocol import MODE_RAW

if TYPE_CHECKING:
    from cprsdk.node.pool import Worker

__all__ = ["Dispatcher", "answered_within"]

Answer = asyncio.Future[tuple[int, bytes]]


@dataclass(frozen=True)
class _Queued:
    request_id: int
    mode: int
    body: bytes
    instances: int
    future: Answer
    since: float


class Dispatcher:
    """The front queue of one version's pool (see the module docstring)."""

    def __init__(self, *, workers: Callable[[], list[Worker]], version: str, max_batch_size: int,
                 max_batch_wait_ms: float) -> None:
        self.workers = workers
        self.version = version
        self.max_size = max_batch_size
        self.wait = max_batch_wait_ms / 1000.0
        self.stats = BatchStats()
        self.queue: list[_Queued] = []
        self._instances = 0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def batching(self) -> bool:
        return self.max_size > 1

    def submit(self, request_id: int, mode: int, body: bytes, *, instances: Callable[[], int]) -> Answer:
        """Send the request (now or with the next batch); the future resolves to the worker's answer.

        ``instances()`` counts the request's instances (it parses the body, and raises
        :class:`RequestError` for one that breaks the input policy); it is called only for a request
        that must wait in the queue: one sent to an idle worker is parsed by the worker alone.
        """
        live = self.workers()
        if not self.batching or mode == MODE_RAW:  # a raw body is never merged: it never waits to be
            return min(live, key=lambda w: len(w.pending)).send(request_id, mode, body)
        idle = next((w for w in live if not w.pending), None)
        if idle is not None and not self.queue:  # nothing to wait for
            self.stats.wait.observe(0.0)
            idle.on_idle, idle.on_report = self.flush, self.stats.record_calls
            return idle.send(request_id, mode, body)
        count = instances()
        future: Answer = asyncio.get_running_loop().create_future()
        self.queue.append(_Queued(request_id, mode, body, count, future, time.perf_counter()))
        self._instances += count
        if idle is not None or self._instances >= self.max_size:
            self.flush(idle)
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.wait, self.flush)
        return future

    def flush(self, worker: Worker | None = None, *, or_fail: bool = False) -> None:
        """Send the whole queue in one write, to ``worker`` or else the least-loaded live worker.

        With no live worker the queue waits for the replacement (the pool flushes again when it
        starts; each request's own timeout still runs), or with ``or_fail`` (the pool closes) gets 503.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.queue:
            return
        if worker is None or not worker.alive:
            live = self.workers()
            if not live:
                if or_fail:
                    self._fail(self.queue)
                    self.queue, self._instances = [], 0
                return
            worker = min(live, key=lambda w: len(w.pending))
        items, self.queue, self._instances = self.queue, [], 0
        worker.on_idle, worker.on_report = self.flush, self.stats.record_calls
        now = time.perf_counter()
        for item in items:
            self.stats.wait.observe(now - item.since)
        worker.send_many([(i.request_id, i.mode, i.body, i.future) for i in items])

    def _fail(self, items: list[_Queued]) -> None:
        body = error_bytes(503, f"Version {self.version} is shutting down on this node; retry on another.")
        for item in items:
            if not item.future.done():
                item.future.set_result((503, body))

    def drop(self, request_id: int) -> bool:
        """Take a request out of the queue (its client gave up); False if it was sent already."""
        for index, item in enumerate(self.queue):
            if item.request_id == request_id:
                del self.queue[index]
                self._instances -= item.instances
                return True
        return False


async def answered_within(future: asyncio.Future[Any], seconds: float) -> bool:
    """Whether ``future`` is done within ``seconds``; it is never cancelled, even when the caller is
    (what ``wait_for(shield(future))`` does, for one future, one timer and one callback instead of four)."""
    if future.done():
        return True
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = loop.call_later(max(seconds, 0.0), wake)
    future.add_done_callback(wake)
    try:
        await waiter
    finally:
        timer.cancel()
        future.remove_done_callback(wake)
    return future.done()
