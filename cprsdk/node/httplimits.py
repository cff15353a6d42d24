"""HTTP limits on the node's connections, which uvicorn with httptools does not enforce by itself.

    header block   at most ``max_header_bytes`` up to the blank line, else 431 and close
    headers        the whole header block within ``header_timeout`` of its first byte (or of the
                   connection), else 408 and close; a fresh connection that sent nothing is closed
    body           the whole body within ``body_timeout`` of the end of the headers, else 408 and close
    keep-alive     an idle connection between requests is closed after ``keepalive_timeout``
    connections    at most ``max_connections`` open at once. A newcomer past the cap sheds the
                   connection that has waited longest without sending a complete request; when every
                   connection has a request in progress, the newcomer gets a fast 503 and is closed.

The timeouts bound the whole header block and the whole body (nginx's client_header_timeout and
client_body_timeout bound each read), so a client that trickles one byte a second is cut off too.
:func:`limited_protocol` returns the protocol class to pass as ``uvicorn.Config(http=...)``.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cprsdk.errors import ConfigError, error_bytes

__all__ = ["HttpLimits", "OneWrite", "fit_descriptor_limit", "limited_protocol"]

log = logging.getLogger("cprsdk.node")

_FRESH, _WAITING, _HEADERS, _BODY, _BUSY = "fresh", "waiting", "headers", "body", "busy"
_END = b"\r\n\r\n"
_JOIN_LIMIT = 256 * 1024  # a response head is joined to a first body write up to this size


@dataclass(frozen=True)
class HttpLimits:
    """The node's connection limits; the defaults follow nginx's documented defaults."""

    max_header_bytes: int = 32 * 1024  # nginx large_client_header_buffers 4 x 8k
    header_timeout: float = 60.0  # nginx client_header_timeout
    body_timeout: float = 60.0  # nginx client_body_timeout
    keepalive_timeout: float = 75.0  # nginx keepalive_timeout (uvicorn's own default is 5 s)
    max_connections: int = 512  # nginx worker_connections

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "header_timeout", "body_timeout", "keepalive_timeout", "max_connections"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"HTTP limit {name} must be positive, got {getattr(self, name)!r}.",
                                  hint="See the HTTP limits in docs/configuration.md.")


def raw_response(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 response with the error envelope, that closes the connection."""
    body = error_bytes(status, message)
    head = (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


class ConnectionRegistry:
    """The open connections, and in order of waiting, those without a complete request in progress."""

    def __init__(self) -> None:
        self.open = 0
        self.waiting: OrderedDict[LimitedProtocol, None] = OrderedDict()

    def admit(self, limit: int) -> bool:
        """Room for one more connection: sheds the longest-waiting one at the cap; False when none can go."""
        if self.open >= limit:
            if not self.waiting:
                return False
            oldest, _ = self.waiting.popitem(last=False)
            oldest.shed()
        self.open += 1
        return True

    def wait(self, conn: LimitedProtocol) -> None:
        self.waiting[conn] = None
        self.waiting.move_to_end(conn)

    def busy(self, conn: LimitedProtocol) -> None:
        self.waiting.pop(conn, None)

    def leave(self, conn: LimitedProtocol) -> None:
        self.waiting.pop(conn, None)
        self.open -= 1


class OneWrite:
    """The transport as one response cycle sees it: the status line and headers, which uvicorn writes
    on ``http.response.start``, wait for the body's first write and go out with it, so a response is
    one write (one TCP segment for a small one) instead of two. Writes before the response starts
    (``100 Continue``) and after its first body write go straight through; what waits is sent when
    the response completes without a body write (a HEAD) and before a close.
    """

    __slots__ = ("_cycle", "_done", "_head", "_then", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self._transport, self._cycle = transport, cycle
        self._head: bytes | None = None
        self._done = False
        self._then: Any = cycle.on_response
        cycle.transport, cycle.on_response = self, self._completed

    def _completed(self) -> None:
        self.flush()
        self._then()

    def flush(self) -> None:
        self._done = True
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def write(self, data: bytes) -> None:
        if self._done or not self._cycle.response_started:
            self._transport.write(data)
        elif self._head is None:
            self._head = bytes(data)
        else:
            self._done = True
            head, self._head = self._head, None
            if len(data) <= _JOIN_LIMIT:
                self._transport.write(head + data)
            else:  # no copy of a large body
                self._transport.write(head)
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class LimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of :class:`HttpLimits` (set by :func:`limited_protocol`)."""

    limits: HttpLimits = HttpLimits()
    registry: ConnectionRegistry = ConnectionRegistry()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.limits.keepalive_timeout  # type: ignore[assignment]  # uvicorn's int
        self._phase = _FRESH
        self._timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._tail = b""
        self._admitted = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.registry.admit(self.limits.max_connections):
            log.warning("connection refused: %d connections open, each with a request in progress "
                        "(raise --max-connections)", self.registry.open)
            self._close_with(503, f"The node has {self.limits.max_connections} connections open, each with a "
                             "request in progress. Retry shortly.")
            return
        self._admitted = True
        self.registry.wait(self)
        self._arm(self.limits.header_timeout, self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._admitted:
            self._admitted = False
            self.registry.leave(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == _FRESH:  # the header timer runs from the connect
            self._phase = _HEADERS
        elif self._phase == _WAITING:  # after a response: the keep-alive wait is over
            self._phase = _HEADERS
            self._arm(self.limits.header_timeout, self._header_timeout)
        if self._phase == _HEADERS and self._over_header_cap(data):
            self._close_with(431, f"The request header block is over the {self.limits.max_header_bytes} byte "
                             "limit. Send fewer or shorter headers.")
            return
        super().data_received(data)

    def _over_header_cap(self, data: bytes) -> bool:
        joined = self._tail + data
        end = joined.find(_END)
        used = self._header_bytes + (len(data) if end < 0 else end + len(_END) - len(self._tail))
        self._header_bytes += len(data)
        self._tail = joined[-3:]
        return used > self.limits.max_header_bytes

    def on_headers_complete(self) -> None:
        self._phase, self._header_bytes, self._tail = _BODY, 0, b""
        self._arm(self.limits.body_timeout, self._body_timeout)
        super().on_headers_complete()
        OneWrite(self.transport, self.cycle)  # the cycle writes through it from now on

    def on_message_complete(self) -> None:
        self._disarm()
        if self.cycle.response_complete:  # answered early (a 413): the rest of the body has been read
            self._waiting()
            self._arm(self.limits.keepalive_timeout, self.timeout_keep_alive_handler)
        else:
            self._phase = _BUSY
            self.registry.busy(self)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # else the body is still arriving (under the body timer), or a pipelined request starts next
        if self._phase == _BUSY and not self.pipeline:
            self._waiting()
        super().on_response_complete()  # arms uvicorn's keep-alive timer (timeout_keep_alive)

    def _waiting(self) -> None:
        self._phase = _WAITING
        if self._admitted:
            self.registry.wait(self)

    # ---------------------------------------------------------------- timers and closing

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _header_timeout(self) -> None:
        self._timer = None
        if self._phase == _FRESH:
            self.transport.close()  # nothing of a request arrived
            return
        self._close_with(408, f"The request headers did not arrive within {self.limits.header_timeout:g} "
                         "seconds. Send the whole header block at once.")

    def _body_timeout(self) -> None:
        self._timer = None
        self._close_with(408, f"The request body did not arrive within {self.limits.body_timeout:g} seconds. "
                         "Send the whole body without pauses, or a smaller one.")

    def _close_with(self, status: int, message: str) -> None:
        self._disarm()
        cycle = self.cycle
        mid_response = cycle is not None and cycle.response_started and not cycle.response_complete
        if not self.transport.is_closing() and not mid_response:
            self.transport.write(raw_response(status, message))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() answers http.disconnect, its send() is dropped
            cycle.message_event.set()
        self.transport.close()

    def shed(self) -> None:
        """Closed to make room for a newcomer (the registry has already let it go)."""
        self._admitted = False
        self.registry.open -= 1
        self._disarm()
        self.transport.close()


def fit_descriptor_limit(limits: HttpLimits, *, backlog: int = 2048, reserve: int = 256) -> int:
    """Raise this process's soft RLIMIT_NOFILE to fit the connection cap; returns the soft limit.

    The event loop accepts up to ``backlog`` connections at once before any is shed, so the node
    needs room for the cap, the backlog and its own files (workers' pipes, logs, the registry).
    Go's runtime raises the soft limit to the hard one at start for the same reason.
    """
    import resource

    need = limits.max_connections + backlog + reserve
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return soft
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < need:
        log.warning("the file descriptor limit is %d, under the %d that --max-connections %d needs: lower "
                    "--max-connections or raise the hard limit (ulimit -Hn)", target, need, limits.max_connections)
    return target


def limited_protocol(limits: HttpLimits) -> type[LimitedProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)``, with its own registry of connections."""
    return type("LimitedProtocol", (LimitedProtocol,), {"limits": limits, "registry": ConnectionRegistry()})
