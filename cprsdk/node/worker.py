"""The worker process of one version: load the predictor once, then answer request frames.

Started by ``pool.py`` through :func:`cprsdk.runtime.child.child_argv` with a JSON spec; the spec names the package
folders (first on ``sys.path``), the prediction class, the model directory and the version.
Anything the predictor prints goes to stderr (the node's log); frames go to the original stdout.
"""

from __future__ import annotations

import gc
import json
import os
import re
import select
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

from cprsdk.errors import CprError, PredictionError, error_bytes
from cprsdk.node.batching import Pending, plan
from cprsdk.node.grouped import mergeable, pending, run_alone, run_merged
from cprsdk.node.protocol import (
    LENGTH,
    MODE_RAW,
    MODE_VERTEX,
    REQUEST_HEAD,
    raw_body,
    report_frame,
    response_frame,
    split_raw,
)
from cprsdk.runtime.child import enter, keep_freed_memory
from cprsdk.runtime.payload import parse_request

__all__ = ["public_error", "public_text", "serve_frames"]

# An absolute path (file://..., POSIX, ~/..., or C:\\...) that is not part of a URL or a relative path.
_PATH = re.compile(r"(?<![\w:/.~-])(?:file://[^\s'\"(),;]+|~?(?:/[^\s'\"(),;:\[\]{}<>]+)+/?|[A-Za-z]:\\[^\s'\"(),;]+)")
_MAX_CHARS = 500
_CHUNK = 1 << 20
_MAX_TAKE = 1024  # frames taken in one round at most (the front's max_pending bounds them anyway)


def public_text(text: str) -> str:
    """What of ``text`` may reach a client: its first line, absolute paths as ``<path>``, at most 500 characters."""
    lines = str(text).strip().splitlines()
    first = _PATH.sub("<path>", lines[0] if lines else "")
    return first if len(first) <= _MAX_CHARS else first[:_MAX_CHARS] + "..."


def public_error(exc: BaseException) -> str:
    """A client's view of ``exc``: for a CprError its message and hint, else the exception type and message."""
    if isinstance(exc, CprError):
        text = public_text(exc.message)
        return f"{text} {public_text(exc.hint)}" if exc.hint else text
    return f"{type(exc).__name__}: {public_text(str(exc))}"


def _error(code: int, message: str) -> tuple[int, bytes]:
    return code, error_bytes(code, message)


def _raw(adapter: Any, body: bytes) -> tuple[int, bytes]:
    meta, data = split_raw(body)
    info = json.loads(meta)
    answer, content_type = adapter.handle_raw(data, info.get("contentType", ""), info.get("accept", ""))
    return 200, raw_body(content_type.encode(), answer)


def _guard(run: Callable[[], bytes]) -> tuple[int, bytes]:
    """(200, what ``run`` returns), or the error response for what it raised."""
    try:
        return 200, run()
    except CprError as exc:  # a PredictionError's message is the predictor's own, as it wrote it
        exact = isinstance(exc, PredictionError)
        return _error(exc.status_code, public_text(exc.message) if exact else public_error(exc))
    except Exception as exc:
        traceback.print_exc()  # the whole message and the traceback go to the node's log only
        return _error(500, f"Prediction failed: {public_error(exc)}")


def _answer(adapter: Any, body: bytes, mode: int, version: str) -> tuple[int, bytes]:
    if mode == MODE_RAW:
        return _guard(lambda: _raw(adapter, body)[1])
    vertex = mode == MODE_VERTEX  # the front leaves the input policy to the worker
    return _guard(lambda: adapter.handle_json(parse_request(body, vertex=vertex), vertex=vertex, version=version))


Frame = tuple[int, int, bytes]  # request id, mode, body


def _take_frames(buffer: bytearray) -> list[Frame]:
    """Every complete request frame at the start of ``buffer``, removed from it."""
    frames, offset = [], 0
    while len(buffer) - offset >= LENGTH.size:
        (size,) = LENGTH.unpack_from(buffer, offset)
        end = offset + LENGTH.size + size
        if len(buffer) < end:
            break
        request_id, mode = REQUEST_HEAD.unpack_from(buffer, offset + LENGTH.size)
        frames.append((request_id, mode, bytes(buffer[offset + LENGTH.size + REQUEST_HEAD.size:end])))
        offset = end
    del buffer[:offset]
    return frames


def _read_waiting(fd: int, buffer: bytearray) -> list[Frame] | None:
    """Block until at least one frame is complete, then take every frame already waiting; None at end of input."""
    frames: list[Frame] = []
    while True:
        ready = not frames or (len(frames) < _MAX_TAKE and select.select([fd], [], [], 0)[0])
        if not ready:
            return frames
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            return frames or None
        buffer += chunk
        frames += _take_frames(buffer)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Batcher:
    """Answers the frames taken together, merging the mergeable ones into shared predict calls."""

    def __init__(self, adapter: Any, version: str, max_batch_size: int) -> None:
        self.adapter, self.version, self.max_size = adapter, version, max_batch_size
        self.merges = max_batch_size > 1 and mergeable(adapter)
        if max_batch_size > 1 and not self.merges:  # never ignore a setting silently
            print(f"version {version}: max batch size {max_batch_size} has no effect: a {adapter.style} predictor "
                  "takes each request's body itself, so its requests are never merged", file=sys.stderr, flush=True)
        self.calls: list[tuple[int, int]] = []  # (instances, requests) of each predict call, for the report

    def answer(self, frames: list[Frame]) -> bytes:
        if not self.merges:
            return b"".join(response_frame(i, *_answer(self.adapter, body, mode, self.version))
                            for i, mode, body in frames)
        out: list[bytes] = []
        waiting: list[Pending] = []
        for request_id, mode, body in frames:
            item = None if mode == MODE_RAW else pending(self.adapter, request_id, mode, body,
                                                         keyed=len(frames) > 1)
            if item is None:
                out.append(response_frame(request_id, *_answer(self.adapter, body, mode, self.version)))
            else:
                waiting.append(item)
        for group in plan(waiting, max_size=self.max_size) if len(waiting) > 1 else [waiting] if waiting else []:
            out += self._group(group)
        if self.calls:
            out.append(report_frame(self.calls))
            self.calls = []
        return b"".join(out)

    def _group(self, group: list[Pending]) -> list[bytes]:
        self.calls.append((sum(r.count for r in group), len(group)))
        answers = run_merged(self.adapter, group, self.version, _guard) if len(group) > 1 else None
        if answers is None:
            if len(group) > 1:
                self.calls += [(r.count, 1) for r in group]
            answers = [run_alone(self.adapter, r, self.version, _guard) for r in group]
        return [response_frame(r.request_id, *a) for r, a in zip(group, answers, strict=True)]


def serve_frames(predictor: Any, version: str, in_fd: int, out_fd: int, *, max_batch_size: int = 1) -> None:
    """Answer request frames until the input closes: every frame waiting is taken, and answered in one write."""
    batcher = _Batcher(predictor, version, max_batch_size)
    buffer = bytearray()
    while True:
        frames = _read_waiting(in_fd, buffer)
        if frames is None:
            return
        _write_all(out_fd, batcher.answer(frames))


def _load(spec: dict[str, Any]) -> Any:
    """The version's adapter; an exception its import raises becomes one readable error (type, line, fix)."""
    from cprsdk.runtime.adapters import load_adapter
    from cprsdk.runtime.predictor import import_error

    try:
        return load_adapter(spec["prediction_class"], spec["model_dir"], formatter=spec.get("formatter"),
                            formatter_args=spec.get("formatter_args"))
    except CprError:
        raise
    except (Exception, SystemExit) as exc:
        traceback.print_exc()
        raise import_error(spec["prediction_class"], exc, paths=spec["sites"]) from None


def main() -> None:
    # The front process decides when a worker ends (it closes the pipe once in-flight requests are
    # answered); a SIGTERM or Ctrl-C sent to the whole process group must not cut requests short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    spec = json.loads(sys.argv[1])
    out_fd = enter(spec["sites"], spec["prediction_class"], take_stdout=True)
    assert out_fd is not None
    try:
        predictor = _load(spec)
    except CprError as exc:
        if exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__)
        print(f"loading {spec['prediction_class']} failed: {exc}", file=sys.stderr)
        os.write(out_fd, response_frame(0, 500, error_bytes(500, public_error(exc))))
        sys.stderr.flush()
        os._exit(3)
    keep_freed_memory(trim=64 << 20)  # a request's garbage is small; a spike's memory goes back
    gc.freeze()  # the model's objects: never traced by the collector again
    # The front queues requests for merging only when the predictor can merge them (not a raw-body form).
    os.write(out_fd, response_frame(0, 200, json.dumps({"merges": mergeable(predictor)}).encode()))
    serve_frames(predictor, spec["version"], sys.stdin.fileno(), out_fd,
                 max_batch_size=int(spec.get("max_batch_size") or 1))
    sys.stderr.flush()
    os._exit(0)
