"""Frames between the front process and a worker, over the worker's stdin and stdout.

Every frame is a 4-byte big-endian length, then that many bytes:

    request   u32 request id | u8 mode | body (the request's JSON bytes as received)
    response  u32 request id | u16 HTTP status | body (the JSON bytes of the response)

Request id 0 is the worker's load report: status 200 when the predictor loaded, else an error
envelope. Modes say how the body maps onto ``predict``: AI Platform (``instances`` plus every
other field as keyword arguments) or Vertex (``instances`` plus ``parameters`` as keyword
arguments, and ``deployedModelId`` in the response).
"""

from __future__ import annotations

import struct

__all__ = ["MODE_AIP", "MODE_VERTEX", "LENGTH", "REQUEST_HEAD", "RESPONSE_HEAD", "request_frame", "response_frame"]

MODE_AIP = 0
MODE_VERTEX = 1
LENGTH = struct.Struct(">I")
REQUEST_HEAD = struct.Struct(">IB")
RESPONSE_HEAD = struct.Struct(">IH")


def request_frame(request_id: int, mode: int, body: bytes) -> bytes:
    return LENGTH.pack(REQUEST_HEAD.size + len(body)) + REQUEST_HEAD.pack(request_id, mode) + body


def response_frame(request_id: int, status: int, body: bytes) -> bytes:
    return LENGTH.pack(RESPONSE_HEAD.size + len(body)) + RESPONSE_HEAD.pack(request_id, status) + body
