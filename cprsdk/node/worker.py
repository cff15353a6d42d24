"""The worker process of one version: load the predictor once, then answer request frames.

Started by ``pool.py`` through :func:`cprsdk.runtime.child.child_argv` with a JSON spec; the spec names the package
folders (first on ``sys.path``), the prediction class, the model directory and the version.
Anything the predictor prints goes to stderr (the node's log); frames go to the original stdout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import traceback
from typing import Any, BinaryIO

from cprsdk.errors import CprError, PredictionError, RequestError, error_bytes
from cprsdk.node.protocol import LENGTH, MODE_RAW, MODE_VERTEX, REQUEST_HEAD, raw_body, response_frame, split_raw
from cprsdk.runtime.child import enter

__all__ = ["public_error", "public_text", "serve_frames"]

# An absolute path (file://..., POSIX, ~/..., or C:\\...) that is not part of a URL or a relative path.
_PATH = re.compile(r"(?<![\w:/.~-])(?:file://[^\s'\"(),;]+|~?(?:/[^\s'\"(),;:\[\]{}<>]+)+/?|[A-Za-z]:\\[^\s'\"(),;]+)")
_MAX_CHARS = 500


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


def _answer(adapter: Any, body: bytes, mode: int, version: str) -> tuple[int, bytes]:
    try:
        if mode == MODE_RAW:
            return _raw(adapter, body)
        return 200, adapter.handle_json(json.loads(body), vertex=mode == MODE_VERTEX, version=version)
    except CprError as exc:
        exact = isinstance(exc, (PredictionError, RequestError))
        return _error(exc.status_code, public_text(exc.message) if exact else public_error(exc))
    except Exception as exc:
        traceback.print_exc()  # the whole message and the traceback go to the node's log only
        return _error(500, f"Prediction failed: {public_error(exc)}")


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def serve_frames(predictor: Any, version: str, inp: BinaryIO, out_fd: int) -> None:
    """Answer request frames until the input closes."""
    while True:
        head = _read_exactly(inp, LENGTH.size)
        if head is None:
            return
        payload = _read_exactly(inp, LENGTH.unpack(head)[0])
        if payload is None:
            return
        request_id, mode = REQUEST_HEAD.unpack_from(payload)
        status, body = _answer(predictor, payload[REQUEST_HEAD.size:], mode, version)
        os.write(out_fd, response_frame(request_id, status, body))


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
    os.write(out_fd, response_frame(0, 200, b"{}"))
    serve_frames(predictor, spec["version"], sys.stdin.buffer, out_fd)
    sys.stderr.flush()
    os._exit(0)
