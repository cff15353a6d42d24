"""Request bodies in, JSON out: the input and output policies of cprsdk.runtime.payload."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cprsdk import RequestError, ResponseError
from cprsdk.runtime.payload import MAX_DEPTH, dumps_response, parse_json, split_request, to_jsonable


def test_other_fields_become_kwargs() -> None:
    instances, kwargs = split_request(parse_json(b'{"instances": [[1, 2]], "signature": "x", "k": 3}'))
    assert instances == [[1, 2]]
    assert kwargs == {"signature": "x", "k": 3}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "The request body is not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got an array"),
        (b'{"inputs": [1]}', 'The request has no "instances" field.'),
        (b'{"instances": {"a": 1}}', '"instances" must be a list, got an object.'),
        (b'{"instances": []}', '"instances" is empty'),
        (b'{"instances": [NaN]}', "contains NaN, which is not valid JSON"),
        (b'{"instances": [Infinity]}', "contains Infinity"),
        (b'{"instances": [' + b"9" * 50 + b"]}", "an integer with 50 digits"),
        (b'{"instances": ' + b"[" * (MAX_DEPTH + 5) + b"]" * (MAX_DEPTH + 5) + b"}", "nested more than"),
        (b'{"instances": ' + b"[" * 100000 + b"]" * 100000 + b"}", "nested more than"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"instances": [[1e999, 1]]}', "The request contains the number 1e999, which overflows a double."),
    ],
)
def test_bad_bodies_are_400_with_a_distinct_message(body: bytes, message: str) -> None:
    with pytest.raises(RequestError) as info:
        split_request(parse_json(body))
    assert info.value.status_code == 400
    assert message in str(info.value)


def test_numpy_is_converted_and_non_finite_floats_follow_the_policy() -> None:
    out = to_jsonable({"a": np.arange(3), "b": np.float32(0.5), "c": [np.int64(7), float("inf"), -math.inf],
                       "d": (1, np.bool_(False)), "e": np.float64("nan")})
    assert out == {"a": [0, 1, 2], "b": 0.5, "c": [7, "Infinity", "-Infinity"], "d": [1, False], "e": "NaN"}
    json.dumps(out, allow_nan=False)


def test_non_json_output_names_type_and_place() -> None:
    with pytest.raises(ResponseError) as info:
        to_jsonable([{"ok": 1}, {"labels": {"a"}}])
    assert "predictions[1]['labels'] is a builtins.set" in info.value.message


def test_dumps_response_fast_path_and_fallback_agree() -> None:
    plain = dumps_response([1, 2.5, "x"])
    assert json.loads(plain) == {"predictions": [1, 2.5, "x"]}
    converted = dumps_response(np.array([[1.0, float("nan")]]))
    assert json.loads(converted) == {"predictions": [[1.0, "NaN"]]}
