"""Running a group of requests in one ``predict`` call, with answers byte-identical to one call each.

Only instance-style adapters merge: AI Platform CPR classes, Vertex CPR classes and framework
versions. SageMaker modules and hook modules take the raw body and are never merged. For each
form, :func:`pending` reads what its ``predict`` would receive besides the instances (the other
body fields, or Vertex ``parameters``; for a Vertex class, every field but ``instances``, since
its ``preprocess`` sees the whole body), and :func:`run_merged` calls it once for the group and
encodes each request's share exactly as ``handle_json`` would have encoded it alone. It returns
None when the call raised or its outputs cannot be split by the requests' instance counts; the
worker then runs each request alone.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from cprsdk.errors import ResponseError
from cprsdk.node.batching import Pending, kwargs_key, sliceable, split
from cprsdk.node.protocol import MODE_VERTEX
from cprsdk.runtime.adapters import Adapter, CprAdapter, VertexAdapter
from cprsdk.runtime.frameworks import FrameworkAdapter
from cprsdk.runtime.payload import dumps_response, parse_request, split_request, to_jsonable, vertex_parameters

__all__ = ["mergeable", "pending", "run_alone", "run_merged"]

Encode = Callable[[Any], bytes]
Guard = Callable[[Callable[[], bytes]], tuple[int, bytes]]


def mergeable(adapter: Adapter) -> bool:
    return isinstance(adapter, (CprAdapter, VertexAdapter, FrameworkAdapter))


def pending(adapter: Adapter, request_id: int, mode: int, body: bytes, *, keyed: bool = True) -> Pending | None:
    """The request as a :class:`Pending`, or None when it must go alone (a body that fails its checks).

    ``keyed=False`` leaves its kwargs key empty, for a request that has no other to be merged with.
    """
    try:
        parsed = parse_request(body, vertex=mode == MODE_VERTEX)  # the checks of a request alone, exactly
        instances, kwargs = split_request(parsed)
        if isinstance(adapter, VertexAdapter):
            kwargs = {k: v for k, v in parsed.items() if k != "instances"}
        elif mode == MODE_VERTEX and isinstance(adapter, CprAdapter):
            kwargs = vertex_parameters(parsed)
        key = kwargs_key(kwargs) if keyed else ""
        return Pending(request_id=request_id, mode=mode, instances=instances, key=key, body=parsed)
    except Exception:  # the request runs alone, and its own error reaches the client
        return None


class _Call:
    """The outputs of one ``predict`` call for a group, and how to encode a request's share of them."""

    def __init__(self, outputs: Any, encode: Encode, whole: Callable[[], bytes] | None = None) -> None:
        self.outputs = outputs  # None: the answer cannot be split (a Vertex response with more than predictions)
        self.encode = encode
        self.whole = whole  # the answer as handle_json gives it, for a request alone


def _call(adapter: Adapter, group: Sequence[Pending], version: str) -> _Call:
    first = group[0]
    instances = first.instances if len(group) == 1 else [i for request in group for i in request.instances]
    vertex = first.mode == MODE_VERTEX
    extra = {"deployedModelId": version} if vertex else None
    if isinstance(adapter, VertexAdapter):
        return _vertex_call(adapter, {**first.body, "instances": instances}, vertex, version)
    if isinstance(adapter, FrameworkAdapter):
        return _Call(adapter.predict(instances), lambda part: dumps_response(part, extra=extra))
    assert isinstance(adapter, CprAdapter)
    kwargs = vertex_parameters(first.body) if vertex else split_request(first.body)[1]
    return _Call(adapter.predictor.predict(instances, **kwargs), lambda part: dumps_response(part, extra=extra))


def _vertex_json(response: dict[str, Any], vertex: bool, version: str) -> bytes:
    if vertex:
        response.setdefault("deployedModelId", version)
    return json.dumps(to_jsonable(response, "response"), allow_nan=False).encode()


def _vertex_call(adapter: VertexAdapter, body: dict[str, Any], vertex: bool, version: str) -> _Call:
    predictor = adapter.predictor
    prepared = predictor.preprocess(body) if hasattr(predictor, "preprocess") else body
    results = predictor.predict(prepared)
    response = predictor.postprocess(results) if hasattr(predictor, "postprocess") else {"predictions": results}
    if not isinstance(response, dict):
        response = {"predictions": response}
    # Only a response that is its predictions alone can be split: any other field may depend on the batch.
    outputs = response["predictions"] if set(response) == {"predictions"} else None
    return _Call(outputs, lambda part: _vertex_json({"predictions": part}, vertex, version),
                 lambda: _vertex_json(response, vertex, version))


def run_merged(adapter: Adapter, group: Sequence[Pending], version: str,
               guard: Guard) -> list[tuple[int, bytes]] | None:
    """Each request's (status, body) from one call for the group; None: run each alone instead."""
    try:
        call = _call(adapter, group, version)
    except Exception as exc:  # each request is run alone next: the one at fault logs its own traceback
        print(f"version {version}: a predict call merging {len(group)} requests raised {type(exc).__name__}; "
              "running each alone", file=sys.stderr, flush=True)
        return None
    parts = None if call.outputs is None else split(call.outputs, [request.count for request in group])
    if parts is None:
        return None
    return [guard(lambda part=part: call.encode(part)) for part in parts]  # type: ignore[misc]


def run_alone(adapter: Adapter, request: Pending, version: str, guard: Guard) -> tuple[int, bytes]:
    """The request's own (status, body): its error if predict raised or gave other than one output per instance."""
    def answer() -> bytes:
        call = _call(adapter, [request], version)
        if call.outputs is None and call.whole is not None:
            return call.whole()
        parts = split(call.outputs, [request.count])
        if parts is None:
            count = f"{request.count} instance" + ("" if request.count == 1 else "s")
            raise ResponseError(f"predict returned {_length(call.outputs)} for {count}; batching needs a list "
                                "with exactly one output per instance, in order.",
                                hint="Return one prediction per instance, or turn batching off for this version "
                                     "(cprsdk deploy --max-batch-size 1; a version that sets none takes the "
                                     "node's cprsdk serve --max-batch-size).")
        return call.encode(parts[0])

    return guard(answer)


def _length(outputs: Any) -> str:
    if not sliceable(outputs):
        return f"a {type(outputs).__name__}, not a list"
    return f"{len(outputs)} output" + ("" if len(outputs) == 1 else "s")
