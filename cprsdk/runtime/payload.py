"""Prediction request bodies in, JSON responses out.

Input policy: a body is a JSON object; ``instances`` is a non-empty list; every other top-level
field becomes a keyword argument of ``predict``. NaN and Infinity literals, integers longer than
``MAX_INT_DIGITS`` digits and nesting deeper than ``MAX_DEPTH`` are refused with a 400.

Output policy: NumPy arrays and scalars become lists and numbers, tuples become lists, and
non-finite floats become the strings "NaN", "Infinity" and "-Infinity" (the protobuf JSON
mapping, which Google's clients read back as doubles). Anything else that is not JSON is an
error naming its type and where it sits in the output.

Parsing takes a fast path (orjson) and falls back to the standard library's parser, with the
policy's hooks, whenever the fast path could differ: any body orjson refuses (NaN, Infinity,
numbers that overflow a double, lone surrogates, a byte order mark, other encodings, bad JSON:
the fallback gives the policy's message or accepts it as before), and any body holding a run of
19 or more digits (orjson turns integers beyond 64 bits into floats; the standard library keeps
them exact up to ``MAX_INT_DIGITS``). So both paths accept the same bodies, with the same values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import orjson

from cprsdk.errors import RequestError, ResponseError

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "dumps_response", "json_kind", "parse_json", "parse_json_lines",
           "parse_request", "split_request", "to_jsonable", "vertex_parameters"]

MAX_DEPTH = 64
MAX_INT_DIGITS = 40
# The integer part of a number (or digits in a string) long enough to pass 64 bits: the stdlib path decides.
_LONG_DIGITS = re.compile(rb"(?<![\d.])\d{19}")
_LONG_DIGITS_STR = re.compile(r"(?<![\d.])\d{19}")
# Every ASCII digit to "0", every other byte to " ": 19 zeros in a row is the cheap first test for a long run.
_DIGITS_ONLY = b" " * 48 + b"0" * 10 + b" " * 198
_RUN = b"0" * 19
# What _bracket_depth keeps of a body: brackets and quotes.
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"')
_STEP = bytes.maketrans(b'[{]}"', bytes([1, 1, 255, 255, 0]))  # read as int8: +1, +1, -1, -1, 0


def _refuse_constant(name: str) -> Any:
    raise RequestError(
        f"The request contains {name}, which is not valid JSON.",
        hint="Send non-finite numbers as strings or null.",
    )


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise RequestError(
            f"The request contains an integer with {len(text.lstrip('-'))} digits; "
            f"at most {MAX_INT_DIGITS} are accepted.",
            hint="Send very large numbers as strings.",
        )
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RequestError(f"The request contains the number {text[:40]}, which overflows a double.",
                           hint="Send numbers within the range of a 64-bit float.")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit`` (the top one is level 1); level by level, the
    types of each container's children taken in C (``map(type, ...)``) so leaves cost little."""
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            types = set(map(type, children))
            if dict in types or list in types:
                below.extend(c for c in children if isinstance(c, (dict, list)))
        level = below
    return False


def parse_json(body: bytes | str) -> Any:
    """Parse a request body with the input policy above; raises :class:`RequestError`."""
    value = _fast_parse(body)
    if value is _NOT_FAST:
        return _policy_parse(body)
    if _could_be_deep(body) and _too_deep(body, value):
        raise RequestError(f"The request is nested more than {MAX_DEPTH} levels deep.")
    return value


def parse_json_lines(lines: Sequence[bytes]) -> list[Any]:
    """Parse many bodies (a batch shard's JSON lines) with the policy of :func:`parse_json`: each item is
    the line's value, or the :class:`RequestError` that refused it. The first test for long digit
    runs is taken once over all of them."""
    if _RUN in b"\n".join(lines).translate(_DIGITS_ONLY):
        return [_value_or_error(line) for line in lines]
    values: list[Any] = []
    loads = orjson.loads
    for line in lines:
        try:
            value = loads(line)
        except orjson.JSONDecodeError:
            value = _value_or_error(line)
        else:
            if line.count(b"[") + line.count(b"{") > MAX_DEPTH and _too_deep(line, value):
                value = RequestError(f"The request is nested more than {MAX_DEPTH} levels deep.")
        values.append(value)
    return values


def _value_or_error(line: bytes) -> Any:
    try:
        return parse_json(line)
    except RequestError as exc:
        return exc


def _too_deep(body: bytes | str, value: Any) -> bool:
    depth = _bracket_depth(body) if isinstance(body, bytes) and b"\\" not in body else None
    return _depth_exceeds(value, MAX_DEPTH) if depth is None else depth > MAX_DEPTH


def _bracket_depth(body: bytes) -> int:
    """The deepest nesting of brackets outside strings in a body orjson accepted (so valid UTF-8 JSON)
    without backslashes (so every quote opens or closes a string): one pass in NumPy."""
    import numpy as np

    kept = np.frombuffer(body.translate(_STEP, _NOT_STRUCTURE), dtype=np.int8)  # +1 open, -1 close, 0 quote
    inside = np.cumsum(kept == 0, dtype=np.int32) & 1  # after an odd number of quotes: inside a string
    return int(np.cumsum(kept * (1 - inside), dtype=np.int32).max(initial=0))


_NOT_FAST = object()


def _fast_parse(body: bytes | str) -> Any:
    """orjson's value for ``body``, or ``_NOT_FAST`` where the policy's own parser must decide."""
    if isinstance(body, bytes):
        long = _RUN in body.translate(_DIGITS_ONLY) and _LONG_DIGITS.search(body) is not None
    else:
        long = _LONG_DIGITS_STR.search(body) is not None
    if long:
        return _NOT_FAST
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _NOT_FAST


def _could_be_deep(body: bytes | str) -> bool:
    """Whether ``body`` has enough opening brackets to nest deeper than MAX_DEPTH (a cheap count first)."""
    if isinstance(body, bytes):
        return body.count(b"[") + body.count(b"{") > MAX_DEPTH
    return body.count("[") + body.count("{") > MAX_DEPTH


def _policy_parse(body: bytes | str) -> Any:
    """The standard library's parser with the policy's hooks: the reference the fast path must agree with."""
    try:
        value = json.loads(body, parse_constant=_refuse_constant, parse_int=_parse_int, parse_float=_parse_float)
    except RequestError:
        raise
    except RecursionError:
        value = None
        deep = True
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"The request body is not valid JSON: {exc}.") from None
    else:
        deep = _depth_exceeds(value, MAX_DEPTH)
    if deep:
        raise RequestError(f"The request is nested more than {MAX_DEPTH} levels deep.")
    return value


def split_request(body: Any) -> tuple[list[Any], dict[str, Any]]:
    """Split a parsed body into ``instances`` and the keyword arguments for ``predict``."""
    if not isinstance(body, dict):
        raise RequestError(
            f"The request body must be a JSON object, got {json_kind(body)}.",
            hint='Send {"instances": [...]}.',
        )
    if "instances" not in body:
        raise RequestError('The request has no "instances" field.', hint='Send {"instances": [...]}.')
    instances = body["instances"]
    if not isinstance(instances, list):
        raise RequestError(f'"instances" must be a list, got {json_kind(instances)}.')
    if not instances:
        raise RequestError('"instances" is empty; send at least one instance.')
    kwargs = {k: v for k, v in body.items() if k != "instances"}
    return instances, kwargs


def parse_request(body: bytes, *, vertex: bool = False) -> dict[str, Any]:
    """A predict body, parsed and checked once under the input policy: a JSON object with a non-empty
    ``instances`` list, and on the Vertex route a ``parameters`` field, when there is one, an object."""
    parsed = parse_json(body)
    split_request(parsed)
    if vertex:
        vertex_parameters(parsed)
    return parsed  # type: ignore[no-any-return]


def vertex_parameters(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Vertex body's ``parameters`` (``{}`` when it has none); :class:`RequestError` unless an object."""
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise RequestError(f'"parameters" must be an object, got {json_kind(parameters)}.',
                           hint='Send "parameters": {...}, or leave it out.')
    return parameters


def json_kind(value: Any) -> str:
    """What ``value`` is, in JSON's words: an object, an array, a string, a number, a boolean or null."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (dict, "an object"), (list, "an array"), (str, "a string"),
                       ((int, float), "a number")):
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


def _convert(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                key = _convert(key, where)
                if not isinstance(key, (str, int, float, bool)):
                    raise ResponseError(f"The prediction output has a {type(key).__name__} key at {where}.")
            out[str(key) if not isinstance(key, str) else key] = _convert(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_convert(item, f"{where}[{i}]") for i, item in enumerate(value)]
    tolist = getattr(value, "tolist", None)  # NumPy arrays and scalars, without importing NumPy
    if callable(tolist) and type(value).__module__ == "numpy":
        return _convert(tolist(), where)
    raise ResponseError(
        f"The prediction output is not JSON: {where} is a {type(value).__module__}.{type(value).__qualname__}.",
        hint="Return lists, dicts, strings, numbers, booleans or None (NumPy arrays are converted).",
    )


def to_jsonable(value: Any, where: str = "predictions") -> Any:
    """Convert a predictor's output to plain JSON types, with the output policy above."""
    if type(value) is list and _plain_leaves(value):  # the common shape, already plain: as it is
        return value
    return _convert(value, where)


_EXACT = frozenset({str, int, bool, type(None)})


def _plain_leaves(items: list[Any]) -> bool:
    """Whether ``items`` are exact str/int/bool/None, or all finite floats (types taken in C)."""
    types = set(map(type, items))
    return types <= _EXACT or (types == {float} and all(map(math.isfinite, items)))


_LEAVES = frozenset({str, int, float, bool, type(None)})


def _plain(predictions: Any, extra: Mapping[str, Any] | None) -> bool:
    """Whether the body is of the common shapes orjson writes as the standard library does, bar the
    spelling of numbers and escapes: a list of exact str/int/float/bool/None, or a list of such lists
    (no subclasses, tuples or NumPy), and ``extra`` values that are str. Types are taken in C."""
    if type(predictions) is not list or (extra and not set(map(type, extra.values())) <= {str}):
        return False
    types = set(map(type, predictions))
    if types <= _LEAVES:
        return True
    return types == {list} and set(map(type, chain.from_iterable(predictions))) <= _LEAVES


def _fast_dumps(predictions: Any, extra: Mapping[str, Any] | None) -> bytes | None:
    """orjson's encoding of the body when it means the same as the standard library's, else None."""
    if not _plain(predictions, extra):
        return None
    body = {"predictions": predictions, **(extra or {})}
    try:
        out = orjson.dumps(body)
    except orjson.JSONEncodeError:  # integers past 64 bits, lone surrogates
        return None
    # orjson writes NaN and the infinities as null; the output policy writes strings: the slow path decides.
    return None if b"null" in out else out


def dumps_response(predictions: Any, *, extra: Mapping[str, Any] | None = None) -> bytes:
    """Encode ``{"predictions": ...}`` (plus ``extra`` fields) as compact UTF-8 JSON."""
    fast = _fast_dumps(predictions, extra)
    if fast is not None:
        return fast
    body = {"predictions": predictions, **(extra or {})}
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        body["predictions"] = to_jsonable(predictions)
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
