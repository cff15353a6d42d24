"""How one worker calls its stage: directly in its thread, in a helper thread (timeouts), or in a child process.

Every caller runs the stage's setup once in :meth:`start` (a factory stage builds its function
there), then :meth:`call` per item or batch, then :meth:`close`. Failures come back as (classes of
:mod:`cprsdk.errors`):

- the stage's own exception (thread workers);
- :class:`ItemFailure` with a type name and message (timeouts, exceptions raised in a child
  process, a child that died);
- :class:`SetupFailure` when the setup itself failed: the run stops;
- :class:`Stopped` when the run is stopping.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from queue import SimpleQueue
from typing import Any, Protocol

from cprsdk.errors import ItemFailure, SetupFailure, Stopped
from cprsdk.pipeline._stage import Stage

__all__ = ["Caller", "make_caller"]

_POLL = 0.1  # seconds between checks of the stop flag while waiting
_SPAWN = multiprocessing.get_context("spawn")  # no fork of a threaded process


class Caller(Protocol):
    def start(self) -> None: ...
    def call(self, arg: Any) -> Any: ...
    def close(self) -> None: ...


def make_caller(stage: Stage, stop: threading.Event) -> Caller:
    return _ProcessCaller(stage, stop) if stage.processes else _ThreadCaller(stage, stop)


def _wait(ready: Callable[[float], bool], timeout: float | None, stop: threading.Event) -> bool:
    """Poll ``ready(slice)`` until it is true (True) or ``timeout`` passes (False); Stopped if the run stops."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if stop.is_set():
            raise Stopped
        left = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
        if left <= 0:
            return ready(0)
        if ready(left):
            return True


class _Box:
    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class _Runner:
    """A daemon thread running one call at a time for a worker with a timeout; retired after a timeout."""

    def __init__(self, name: str) -> None:
        self._jobs: SimpleQueue[tuple[Callable[[Any], Any], Any, _Box] | None] = SimpleQueue()
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, arg, box = job
            try:
                box.value = fn(arg)
            except BaseException as exc:  # handed to the worker, which decides
                box.error = exc
            box.done.set()

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> _Box:
        box = _Box()
        self._jobs.put((fn, arg, box))
        return box

    def retire(self) -> None:
        self._jobs.put(None)  # it leaves after the call it is running, whose result nobody reads


def _setup(stage: Stage) -> Callable[[Any], Any]:
    if not stage.factory:
        return stage.fn
    try:
        fn = stage.fn()
    except Exception as exc:
        raise SetupFailure(stage.name, type(exc).__name__, str(exc)) from exc
    if not callable(fn):
        raise SetupFailure(stage.name, "TypeError", f"the factory returned {type(fn).__name__}, not a function")
    return fn  # type: ignore[no-any-return]


class _ThreadCaller:
    def __init__(self, stage: Stage, stop: threading.Event) -> None:
        self._stage, self._stop = stage, stop
        self._fn: Callable[[Any], Any] = stage.fn
        self._runner: _Runner | None = None

    def start(self) -> None:
        self._fn = _setup(self._stage)

    def call(self, arg: Any) -> Any:
        timeout = self._stage.timeout
        if timeout is None:
            return self._fn(arg)
        if self._runner is None:
            self._runner = _Runner(f"{threading.current_thread().name}-call")
        box = self._runner.submit(self._fn, arg)
        try:
            finished = _wait(box.done.wait, timeout, self._stop)
        except Stopped:
            self.close()
            raise
        if not finished:
            self.close()
            raise ItemFailure("TimeoutError", f"stage {self._stage.name!r} did not finish within its timeout of "
                              f"{timeout:g} s; the call goes on in a background thread (a thread cannot be "
                              "stopped) and its result will be dropped", splittable=False)
        if box.error is not None:
            raise box.error
        return box.value

    def close(self) -> None:
        if self._runner is not None:
            self._runner.retire()
            self._runner = None


class _ProcessCaller:
    """Drives one child process: sends it values, waits for replies, kills and replaces it after a timeout."""

    def __init__(self, stage: Stage, stop: threading.Event) -> None:
        self._stage, self._stop = stage, stop
        self._payload = pickle.dumps((stage.fn, stage.factory))
        self._proc: Any = None
        self._conn: Connection | None = None
        self._busy = False

    def start(self) -> None:
        parent, child = _SPAWN.Pipe()
        self._proc = _SPAWN.Process(target=child_main, args=(child, self._payload), daemon=True,
                                    name=f"{threading.current_thread().name}-process")
        self._proc.start()
        child.close()
        self._conn = parent
        self._busy = True
        reply = self._receive(None, during="its setup")
        self._busy = False
        if reply[0] == "setup-error":
            raise SetupFailure(self._stage.name, reply[1], reply[2])

    def call(self, arg: Any) -> Any:
        assert self._conn is not None  # start() ran
        try:
            self._conn.send(("call", arg))
        except (OSError, EOFError):
            self._replace()
            raise ItemFailure("ChildProcessError", f"the worker process of stage {self._stage.name!r} was gone; "
                              "a new one was started") from None
        except Exception as exc:  # the value cannot be pickled; nothing was written
            raise ItemFailure(type(exc).__name__, f"the value cannot be sent to a worker process: {exc}") from None
        self._busy = True
        reply = self._receive(self._stage.timeout, during="an item")
        self._busy = False
        if reply[0] == "ok":
            return reply[1]
        raise ItemFailure(reply[1], reply[2])

    def _receive(self, timeout: float | None, *, during: str) -> tuple[Any, ...]:
        assert self._conn is not None and self._proc is not None
        if not _wait(self._conn.poll, timeout, self._stop):
            self._replace()
            raise ItemFailure("TimeoutError", f"stage {self._stage.name!r} did not finish within its timeout of "
                              f"{timeout:g} s; its worker process was killed and a new one started",
                              splittable=False)
        try:
            return self._conn.recv()  # type: ignore[no-any-return]
        except (EOFError, OSError):
            self._proc.join(1)
            code = self._proc.exitcode
        message = f"the worker process of stage {self._stage.name!r} exited with code {code} during {during}"
        if during == "its setup":
            raise SetupFailure(self._stage.name, "ChildProcessError", message)
        self._replace()
        raise ItemFailure("ChildProcessError", message + "; a new one was started")

    def _replace(self) -> None:
        self._kill()
        self.start()

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None
        self._busy = False

    def close(self) -> None:
        if self._conn is not None and not self._busy:
            try:
                self._conn.send(("stop",))
                self._proc.join(5)
            except (OSError, EOFError):
                pass
        self._kill()


def _reply(conn: Connection, fn: Callable[[Any], Any], message: tuple[Any, ...]) -> None:
    try:
        result = fn(message[1])
    except Exception as exc:
        conn.send(("error", type(exc).__name__, str(exc)))
        return
    try:
        conn.send(("ok", result))
    except Exception as exc:  # pickling failed before anything was written
        conn.send(("error", type(exc).__name__, f"the output cannot be sent back from the worker process: {exc}"))


def child_main(conn: Connection, payload: bytes) -> None:
    """The worker process: set up once, then answer ``("call", value)`` messages until ``("stop",)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when its workers stop
    try:
        fn, factory = pickle.loads(payload)
        call = fn() if factory else fn
    except Exception as exc:
        conn.send(("setup-error", type(exc).__name__, str(exc)))
        return
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        except Exception as exc:  # the value could not be unpickled here
            conn.send(("error", type(exc).__name__, f"the worker process cannot load the value: {exc}"))
            continue
        if message[0] != "call":
            return
        _reply(conn, call, message)
