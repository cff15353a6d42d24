"""Prediction request bodies in, JSON responses out.

Input policy: a body is a JSON object; ``instances`` is a non-empty list; every other top-level
field becomes a keyword argument of ``predict``. NaN and Infinity literals, integers longer than
``MAX_INT_DIGITS`` digits and nesting deeper than ``MAX_DEPTH`` are refused with a 400.

Output policy: NumPy arrays and scalars become lists and numbers, tuples become lists, and
non-finite floats become the strings "NaN", "Infinity" and "-Infinity" (the protobuf JSON
mapping, which Google's clients read back as doubles). Anything else that is not JSON is an
error naming its type and where it sits in the output.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from cprsdk.errors import RequestError, ResponseError

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "dumps_response", "parse_json", "split_request", "to_jsonable"]

MAX_DEPTH = 64
MAX_INT_DIGITS = 40


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
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def parse_json(body: bytes | str) -> Any:
    """Parse a request body with the input policy above; raises :class:`RequestError`."""
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
            f"The request body must be a JSON object, got {type(body).__name__}.",
            hint='Send {"instances": [...]}.',
        )
    if "instances" not in body:
        raise RequestError('The request has no "instances" field.', hint='Send {"instances": [...]}.')
    instances = body["instances"]
    if not isinstance(instances, list):
        raise RequestError(f'"instances" must be a list, got {type(instances).__name__}.')
    if not instances:
        raise RequestError('"instances" is empty; send at least one instance.')
    kwargs = {k: v for k, v in body.items() if k != "instances"}
    return instances, kwargs


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
    return _convert(value, where)


def dumps_response(predictions: Any, *, extra: Mapping[str, Any] | None = None) -> bytes:
    """Encode ``{"predictions": ...}`` (plus ``extra`` fields) as compact UTF-8 JSON."""
    body = {"predictions": predictions, **(extra or {})}
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        body["predictions"] = to_jsonable(predictions)
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
