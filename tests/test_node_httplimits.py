"""HTTP limits on `cprsdk serve`, tried with raw sockets as a slow or hostile client would."""

from __future__ import annotations

import contextlib
import json
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cprsdk.testing import free_port
from helpers import copy_project, cprsdk_serve, label_project

_PREDICT = "/v1/projects/p/models/default:predict"
_LIMITS = ["--header-timeout", "2", "--body-timeout", "2", "--keepalive-timeout", "1"]


@contextlib.contextmanager
def _node(tmp_path: Path, *extra: str, toml: str = "") -> Iterator[int]:
    project = label_project(tmp_path, "fine")
    with (project / "cprsdk.toml").open("a") as file:
        file.write(toml)
    port = free_port()
    args = ["--model-dir", "model", "--package", ".", "--prediction-class", "predictor.MyPredictor",
            "--port", str(port), *extra]
    with cprsdk_serve(args, port=port, log=tmp_path / "serve.log", cwd=project) as proc:
        yield port
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    # the header cap comes from the project file, the timeouts from flags
    with _node(tmp_path_factory.mktemp("limits"), *_LIMITS, toml="max_header_bytes = 8192\n") as running:
        yield running


def _connect(port: int, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, Any] | None, float]:
    """Status, JSON body (None when the connection closed without one) and when it ended."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")]
            if length and len(body) >= length[0]:
                return int(head.split()[1]), json.loads(body[:length[0]]), time.monotonic()
    return (int(data.split()[1]) if data else 0), None, time.monotonic()


def _request(body: bytes = b'{"instances": [1]}', extra: bytes = b"") -> bytes:
    return (f"POST {_PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n").encode() + extra + b"\r\n" + body


def _predict(port: int, timeout: float = 10) -> tuple[int, dict[str, Any] | None, float]:
    with _connect(port, timeout) as sock:
        sock.sendall(_request())
        return _read_response(sock)


def test_a_header_block_over_the_cap_is_431_with_the_envelope(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(_request(extra=b"X-Big: " + b"a" * 9000 + b"\r\n"))
        status, body, _ = _read_response(sock)
    assert status == 431
    assert body is not None and "over the 8192 byte limit" in body["error"]["message"]
    assert _predict(port)[:2] == (200, {"predictions": ["fine"]})  # a header block under the cap passes


def test_trickled_headers_and_body_are_408_within_the_timeout(port: int) -> None:
    request = _request(b'{"instances": [1]}' + b" " * 30)
    for first, rest in ((request[:20], request[20:]), (request[:-30], request[-30:])):
        with _connect(port) as sock:
            start = time.monotonic()
            sock.sendall(first)
            for byte in rest:  # two bytes a second: it would take 15 s or more
                if select.select([sock], [], [], 0.5)[0]:
                    break  # the node answered
                sock.sendall(bytes([byte]))
            status, body, ended = _read_response(sock)
        assert status == 408, first
        assert body is not None and "did not arrive within 2 seconds" in body["error"]["message"]
        assert ended - start < 4


def test_pipelined_requests_are_each_answered(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(_request() + _request(extra=b"Connection: close\r\n"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2 and data.count(b'"fine"') == 2


def test_a_response_arrives_whole_in_one_read(port: int) -> None:
    """Status line, headers and body go out in one write: a client's first read has all of them."""
    with _connect(port) as sock:
        firsts = []
        for _ in range(30):
            sock.sendall(_request())
            firsts.append(sock.recv(65536))  # returns as soon as anything of the answer arrives
    assert all(first.startswith(b"HTTP/1.1 200 OK") and first.endswith(b'{"predictions":["fine"]}')
               for first in firsts), [f for f in firsts if not f.endswith(b"]}")][:2]


def test_a_head_request_and_a_100_continue_are_answered_on_a_kept_alive_connection(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        body = b'{"instances": [1]}'
        sock.sendall(f"POST {_PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
        interim = sock.recv(65536)
        sock.sendall(body)
        status, answer, _ = _read_response(sock)
    assert head.split(b"\r\n")[0] in (b"HTTP/1.1 200 OK", b"HTTP/1.1 405 Method Not Allowed")
    assert head.endswith(b"\r\n\r\n") and b"content-length:" in head.lower()
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert (status, answer) == (200, {"predictions": ["fine"]})


def test_an_idle_connection_is_closed(port: int) -> None:
    with _connect(port) as sock:  # after a response: the keep-alive timeout
        sock.sendall(_request())
        status, _, answered = _read_response(sock)
        assert status == 200
        assert sock.recv(1) == b""
        assert time.monotonic() - answered < 2.5
    with _connect(port) as sock:  # a connection that never sends: the header timeout, no response
        start = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - start < 3.5


@contextlib.contextmanager
def _nofile(soft: int) -> Iterator[None]:
    """The soft RLIMIT_NOFILE of this process (and what it starts) set to ``soft`` for a while."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (before, hard))


def _open_idle(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that send a few bytes of headers and never finish."""
    socks = []
    for _ in range(count):
        sock = _connect(port)
        with contextlib.suppress(OSError):
            sock.sendall(b"POST " + _PREDICT.encode())
        socks.append(sock)
    return socks


def test_a_healthy_client_is_answered_with_2000_idle_connections_open(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        with _nofile(1024):  # the node runs with the common default limit of 1024 descriptors
            port = stack.enter_context(_node(tmp_path))
        stack.enter_context(_nofile(4096))  # this process holds the 2,000 connections
        socks = _open_idle(port, 2000)
        try:
            start = time.monotonic()
            status, body, ended = _predict(port)
            assert (status, body) == (200, {"predictions": ["fine"]})
            assert ended - start < 3
            open_now = sum(1 for s in socks if _still_open(s))
            assert open_now <= 512  # the default cap: the longest-waiting were shed
        finally:
            for sock in socks:
                sock.close()


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_a_limit_that_is_not_positive_is_refused(tmp_path: Path) -> None:
    project = label_project(tmp_path, "fine")
    result = subprocess.run([sys.executable, "-m", "cprsdk", "serve", "--model-dir", "model", "--package", ".",
                             "--prediction-class", "predictor.MyPredictor", "--port", str(free_port()),
                             "--header-timeout", "0"], cwd=project, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "HTTP limit header_timeout must be positive, got 0.0." in result.stderr


def test_a_100_mb_header_block_does_not_grow_the_node(tmp_path: Path) -> None:
    project = label_project(tmp_path, "fine")
    port = free_port()
    args = ["--model-dir", "model", "--package", ".", "--prediction-class", "predictor.MyPredictor",
            "--port", str(port)]
    with cprsdk_serve(args, port=port, log=tmp_path / "serve.log", cwd=project) as proc:
        before = _rss_kb(proc.pid)
        with _connect(port) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: ")
            sent, chunk = 0, b"a" * 1_000_000
            with contextlib.suppress(OSError):
                while sent < 100_000_000:
                    sock.sendall(chunk)
                    sent += len(chunk)
            status, _, _ = _read_response(sock)
        assert status in (431, 0)  # 0: the node closed before the client could read its 431
        assert sent < 100_000_000  # the node stopped reading long before
        assert _rss_kb(proc.pid) - before < 20_000


def test_past_the_cap_with_every_request_in_progress_a_newcomer_gets_a_fast_503(tmp_path: Path) -> None:
    behaviours = copy_project("behaviours", tmp_path / "behaviours")
    port = free_port()
    args = ["--model-dir", "model", "--package", ".", "--prediction-class", "hangs.Hangs", "--port", str(port),
            "--max-connections", "2", "--predict-timeout", "30"]
    with cprsdk_serve(args, port=port, log=tmp_path / "serve.log", cwd=behaviours) as proc:
        time.sleep(0.5)  # the readiness probe's connection is gone
        busy = [_connect(port) for _ in range(2)]
        for sock in busy:
            sock.sendall(_request(b'{"instances": [3]}'))  # each waits 3 s for its prediction
        time.sleep(0.5)
        start = time.monotonic()
        with _connect(port) as sock:
            status, body, ended = _read_response(sock)
        assert status == 503 and ended - start < 1
        assert body is not None and "2 connections open, each with a request in progress" in body["error"]["message"]
        for sock in busy:  # the two requests in progress were not shed
            assert _read_response(sock)[:2] == (200, {"predictions": ["woke"]})
            sock.close()
        assert proc.poll() is None
