"""One call of a pipeline: a feeder thread, worker threads per segment, bounded queues, in-order delivery.

    inputs ─▶ feeder ─▶ [queue] ─▶ segment 1 workers ─▶ [queue] ─▶ segment 2 workers ─▶ out ─▶ caller

- a worker sends an item that failed straight to ``out``, past the later segments;
- the feeder takes a slot of the window (``max_in_flight``) before reading each input, and the
  caller's side gives it back when it receives that item: the window bounds everything in flight.

Every admitted item gets a sequence number; the caller's thread puts outcomes back in that order.
The run ends when the end marker has passed every segment; a count check then proves that every
admitted item came out exactly once.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from cprsdk.errors import ItemFailure, PipelineError, SetupFailure, Stopped
from cprsdk.pipeline._callers import Caller, make_caller
from cprsdk.pipeline._errors import ItemError
from cprsdk.pipeline._stage import Segment, Stage

__all__ = ["Outcome", "Run"]

_POLL = 0.1
_END = object()  # the end of the inputs, passed from segment to segment
_JOIN_SECONDS = 10.0


class _Item(NamedTuple):
    seq: int
    key: Any
    value: Any


class Outcome(NamedTuple):
    seq: int
    key: Any
    value: Any
    error: ItemError | None


def _error(key: Any, stage: str, exc: BaseException) -> ItemError:
    if isinstance(exc, ItemFailure):
        return ItemError(key, stage, exc.type_name, exc.message)
    return ItemError(key, stage, type(exc).__name__, str(exc))


def _outputs(result: Any, stage: Stage, size: int) -> list[Any]:
    """The batch result as one output per item; a wrong count fails the batch."""
    if not hasattr(result, "__iter__") or isinstance(result, (str, bytes)):
        raise ItemFailure("PipelineError", f"stage {stage.name!r} returned {type(result).__name__}, not a sequence "
                          f"of {size} outputs for its batch of {size} items", splittable=False)
    outputs = list(result)
    if len(outputs) != size:
        raise ItemFailure("PipelineError", f"stage {stage.name!r} returned {len(outputs)} outputs for a batch of "
                          f"{size} items; a batched stage must return one output per item, in order",
                          splittable=False)
    return outputs


class Run:
    """Runs ``keyed`` (key, value) pairs through ``segments``; :meth:`outcomes` yields them in input order."""

    def __init__(self, segments: Sequence[Segment], keyed: Iterator[tuple[Any, Any]], *, window: int) -> None:
        self._segments, self._keyed = tuple(segments), keyed
        self._stop = threading.Event()
        self._window = threading.Semaphore(window)
        self._queues: list[queue.Queue[Any]] = [
            queue.Queue(maxsize=2 * s.head.workers * (s.head.batch_size or 1)) for s in self._segments]
        self._out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._left = [s.head.workers for s in self._segments]
        self._lock = threading.Lock()
        self._fatal: BaseException | None = None
        self._admitted = 0
        self._input_error: Exception | None = None
        self._threads: list[threading.Thread] = []

    # -- the caller's side -------------------------------------------------------------------

    def outcomes(self) -> Iterator[Outcome]:
        """Start the threads, yield one outcome per input in input order, and stop everything at the end."""
        self._start()
        try:
            yield from self._in_order()
        finally:
            self._shutdown()

    def _in_order(self) -> Iterator[Outcome]:
        pending: dict[int, Outcome] = {}
        delivered = 0
        while (outcome := self._next_out()) is not _END:
            pending[outcome.seq] = outcome
            while delivered in pending:
                ready = pending.pop(delivered)
                delivered += 1
                self._window.release()
                yield ready
        if pending or delivered != self._admitted:
            raise PipelineError(f"Internal error: {self._admitted} items went in but {delivered} came out in order "
                                f"and {len(pending)} are out of order.", hint="Please report this bug.")
        if self._input_error is not None:
            exc = self._input_error
            raise PipelineError(f"Reading the inputs raised {type(exc).__name__}: {exc} after {delivered} items; "
                                "those items were delivered.",
                                hint="Fix the input iterable; the rest of the inputs were not read.") from exc

    def _next_out(self) -> Any:
        while True:
            try:
                return self._out.get(timeout=_POLL)
            except queue.Empty:
                if self._fatal is not None:
                    raise self._fatal_error() from self._fatal

    def _fatal_error(self) -> PipelineError:
        exc = self._fatal
        if isinstance(exc, PipelineError):
            return exc
        if isinstance(exc, SetupFailure):
            return PipelineError(f"The setup of stage {exc.stage!r} failed in a worker: {exc.type_name}: "
                                 f"{exc.message}", hint="Fix the setup and run the pipeline again; the run stopped "
                                 "and items not yet delivered were not processed.")
        return PipelineError(f"A pipeline worker raised {type(exc).__name__}: {exc}; the run was stopped.",
                             hint="Only exceptions that subclass Exception are recorded per item; raise one of those.")

    def _start(self) -> None:
        self._spawn(self._feed, "cprsdk-pipeline-feeder")
        for index, segment in enumerate(self._segments):
            for number in range(segment.head.workers):
                self._spawn(self._work, f"cprsdk-pipeline-{segment.head.name}-{number}", index)

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _shutdown(self) -> None:
        """Stop and join the threads; one stuck in a stage call is left behind (daemon) after a while."""
        self._stop.set()
        deadline = time.monotonic() + _JOIN_SECONDS
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._fatal is None:
                self._fatal = exc
        self._stop.set()

    # -- queues that give up when the run stops ----------------------------------------------

    def _put(self, index: int, item: Any) -> None:
        if index == len(self._segments):
            self._out.put(item)
            return
        while True:
            try:
                self._queues[index].put(item, timeout=_POLL)
                return
            except queue.Full:
                if self._stop.is_set():
                    raise Stopped from None

    def _get(self, index: int) -> Any:
        while True:
            try:
                return self._queues[index].get(timeout=_POLL)
            except queue.Empty:
                if self._stop.is_set():
                    raise Stopped from None

    def _close(self, index: int) -> None:
        """Queue ``index`` gets one end marker per worker reading it (the output gets one)."""
        readers = self._segments[index].head.workers if index < len(self._segments) else 1
        for _ in range(readers):
            self._put(index, _END)

    # -- the feeder ---------------------------------------------------------------------------

    def _feed(self) -> None:
        try:
            self._admit_all()
            self._close(0)
        except Stopped:
            pass
        except BaseException as exc:
            self._fail(exc)

    def _admit_all(self) -> None:
        """Read an input only once the window has room: at most ``window`` items are ever in flight."""
        while True:
            while not self._window.acquire(timeout=_POLL):
                if self._stop.is_set():
                    raise Stopped
            try:
                key, value = next(self._keyed)
            except StopIteration:
                return
            except Exception as exc:
                self._input_error = exc
                return
            self._put(0, _Item(self._admitted, key, value))
            self._admitted += 1

    # -- the workers --------------------------------------------------------------------------

    def _work(self, index: int) -> None:
        segment = self._segments[index]
        caller: Caller | None = None
        try:
            caller = make_caller(segment.head, self._stop)
            caller.start()
            self._serve(index, segment, caller)
            with self._lock:
                self._left[index] -= 1
                last = self._left[index] == 0
            if last:
                self._close(index + 1)
        except Stopped:
            pass
        except BaseException as exc:  # a setup failure, or a bug: stop the run loudly
            self._fail(exc)
        finally:
            if caller is not None:
                caller.close()

    def _serve(self, index: int, segment: Segment, caller: Caller) -> None:
        while True:
            items, ended = self._take(index, segment.head)
            for item, value, error in self._call(segment.head, caller, items):
                if error is None:
                    value, error = self._run_tail(segment.tail, item, value)
                if error is None:
                    self._put(index + 1, Outcome(item.seq, item.key, value, None)
                              if index + 1 == len(self._segments) else _Item(item.seq, item.key, value))
                else:
                    self._out.put(Outcome(item.seq, item.key, None, error))
            if ended:
                return

    def _take(self, index: int, head: Stage) -> tuple[list[_Item], bool]:
        """One item, or for a batched stage up to batch_size items gathered for at most batch_wait seconds."""
        first = self._get(index)
        if first is _END:
            return [], True
        items, size = [first], head.batch_size or 1
        deadline = time.monotonic() + head.batch_wait
        while len(items) < size:
            left = deadline - time.monotonic()
            try:
                item = self._queues[index].get(timeout=left) if left > 0 else self._queues[index].get_nowait()
            except queue.Empty:
                break
            if item is _END:
                return items, True
            items.append(item)
        return items, False

    def _call(self, head: Stage, caller: Caller, items: list[_Item]) -> list[tuple[_Item, Any, ItemError | None]]:
        if not items:
            return []
        if not head.batched:
            return [self._call_one(head, caller, item) for item in items]
        return self._call_batch(head, caller, items)

    def _call_one(self, head: Stage, caller: Caller, item: _Item) -> tuple[_Item, Any, ItemError | None]:
        try:
            return item, caller.call(item.value), None
        except (Stopped, SetupFailure):
            raise
        except Exception as exc:
            return item, None, _error(item.key, head.name, exc)

    def _call_batch(self, head: Stage, caller: Caller,
                    items: list[_Item]) -> list[tuple[_Item, Any, ItemError | None]]:
        """Call the stage on a batch; if it raises, retry item by item (``split_on_error``)."""
        values = [item.value for item in items]
        try:
            batch = head.batcher(values) if head.batcher is not None else values
            outputs = _outputs(caller.call(batch), head, len(items))
        except (Stopped, SetupFailure):
            raise
        except Exception as exc:
            splittable = not isinstance(exc, ItemFailure) or exc.splittable
            if splittable and head.split_on_error and len(items) > 1:
                return [result for item in items for result in self._call_batch(head, caller, [item])]
            return [(item, None, _error(item.key, head.name, exc)) for item in items]
        return [(item, output, None) for item, output in zip(items, outputs, strict=True)]

    @staticmethod
    def _run_tail(tail: Sequence[Stage], item: _Item, value: Any) -> tuple[Any, ItemError | None]:
        for stage in tail:
            try:
                value = stage.fn(value)
            except Exception as exc:
                return None, _error(item.key, stage.name, exc)
        return value, None
