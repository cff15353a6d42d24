"""Frames between the front process and a worker, over the worker's stdin and stdout.

Every frame is a 4-byte big-endian length, then that many bytes:

    request   u32 request id | u8 mode | body (the request's JSON bytes as received)
    response  u32 request id | u16 HTTP status | body (the JSON bytes of the response)

Request id 0 is the worker's load report: status 200 when the predictor loaded, else an error
envelope. After that, a response frame with request id 0 and status 0 is a batch report: for
each ``predict`` call the worker made for the answers written with it, a ``u32 instances | u32
requests`` pair (``/metrics`` shows them).

Modes say how the body maps onto ``predict``: AI Platform (``instances`` plus every
other field as keyword arguments) or Vertex (``instances`` plus ``parameters`` as keyword
arguments, and ``deployedModelId`` in the response).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

__all__ = ["LENGTH", "MODE_AIP", "MODE_RAW", "MODE_VERTEX", "RAW_HEAD", "REPORT_PAIR", "REQUEST_HEAD", "RESPONSE_HEAD",
           "raw_body", "read_report", "report_frame", "request_frame", "response_frame", "split_raw"]

MODE_AIP = 0
MODE_VERTEX = 1
MODE_RAW = 2  # body: u16 length + JSON {"contentType", "accept"} + the raw bytes; the answer's body:
#               u16 length + its content type + its bytes
LENGTH = struct.Struct(">I")
REQUEST_HEAD = struct.Struct(">IB")
RESPONSE_HEAD = struct.Struct(">IH")
REPORT_PAIR = struct.Struct(">II")


RAW_HEAD = struct.Struct(">H")


def raw_body(meta: bytes, data: bytes) -> bytes:
    """A raw-mode body: the JSON metadata (content types) then the bytes."""
    return RAW_HEAD.pack(len(meta)) + meta + data


def split_raw(body: bytes) -> tuple[bytes, bytes]:
    (size,) = RAW_HEAD.unpack_from(body)
    return body[RAW_HEAD.size:RAW_HEAD.size + size], body[RAW_HEAD.size + size:]


def request_frame(request_id: int, mode: int, body: bytes) -> bytes:
    return LENGTH.pack(REQUEST_HEAD.size + len(body)) + REQUEST_HEAD.pack(request_id, mode) + body


def response_frame(request_id: int, status: int, body: bytes) -> bytes:
    return LENGTH.pack(RESPONSE_HEAD.size + len(body)) + RESPONSE_HEAD.pack(request_id, status) + body


def report_frame(calls: Sequence[tuple[int, int]]) -> bytes:
    """A batch report: the (instances, requests) of each predict call."""
    return response_frame(0, 0, b"".join(REPORT_PAIR.pack(n, r) for n, r in calls))


def read_report(body: bytes) -> list[tuple[int, int]]:
    return [REPORT_PAIR.unpack_from(body, i) for i in range(0, len(body) - len(body) % REPORT_PAIR.size,
                                                              REPORT_PAIR.size)]
