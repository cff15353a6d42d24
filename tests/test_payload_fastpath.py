"""parse_json's fast path (orjson) keeps the input policy: same values, same refusals, same messages.

Each case is checked against the standard library's ``json.loads`` with the policy applied by
hand, i.e. what parse_json answered before it had a fast path.
"""

from __future__ import annotations

import enum
import json
import math
import random
import uuid
from typing import Any

import numpy as np
import pytest

from cprsdk import RequestError, ResponseError
from cprsdk.runtime.payload import MAX_DEPTH, MAX_INT_DIGITS, dumps_response, parse_json, parse_json_lines, to_jsonable


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types, -0.0 told from 0.0 (``==`` alone calls 1 == 1.0 and -0.0 == 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _message(body: bytes | str) -> str:
    with pytest.raises(RequestError) as info:
        parse_json(body)
    assert info.value.status_code == 400
    return str(info.value)


@pytest.mark.parametrize("digits", [18, 19, 20, 21, 30, MAX_INT_DIGITS])
@pytest.mark.parametrize("sign", ["", "-"])
def test_integers_past_64_bits_stay_exact_up_to_the_digit_limit(digits: int, sign: str) -> None:
    text = sign + "9" * digits
    value = parse_json(f'{{"instances": [{text}, [{text}]], "k": {text}}}'.encode())
    assert _same(value, {"instances": [int(text), [int(text)]], "k": int(text)})


def test_integers_over_the_digit_limit_are_refused_with_the_policy_message() -> None:
    message = _message(b'{"instances": [-' + b"1" * (MAX_INT_DIGITS + 1) + b"]}")
    assert f"an integer with {MAX_INT_DIGITS + 1} digits; at most {MAX_INT_DIGITS} are accepted" in message


@pytest.mark.parametrize("text", ["1e400", "-1e400", "1" + "0" * 400 + ".5", "[1E+999]"])
def test_numbers_that_overflow_a_double_are_refused(text: str) -> None:
    assert "which overflows a double" in _message(text.encode())


@pytest.mark.parametrize(("text", "expected"), [
    ("-0", 0), ("-0.0", -0.0), ("0.0", 0.0), ("1e-400", 0.0), ("-1e-400", -0.0), ("1E2", 100.0),
    ("18446744073709551615", 18446744073709551615), ("-9223372036854775808", -9223372036854775808),
    ("0.1234567890123456789012", 0.1234567890123456789012), ("1234567890123456789.5", 1234567890123456789.5),
])
def test_numbers_keep_their_type_value_and_sign(text: str, expected: Any) -> None:
    assert _same(parse_json(text.encode()), expected)
    assert _same(parse_json(f"[{text}]"), [expected])


def test_duplicate_keys_keep_the_last_value_as_before() -> None:
    assert parse_json(b'{"instances": [1], "k": 1, "k": 2}') == {"instances": [1], "k": 2}


def test_lone_surrogates_escaped_or_raw_are_accepted_as_before() -> None:
    assert parse_json(b'{"instances": ["\\ud800", "\\udc00x"]}') == {"instances": ["\ud800", "\udc00x"]}
    assert parse_json('["\ud800"]') == ["\ud800"]


def test_a_utf8_byte_order_mark_and_utf16_bodies_are_read_as_before() -> None:
    assert parse_json(b'\xef\xbb\xbf{"instances": [1]}') == {"instances": [1]}
    assert parse_json('{"instances": ["é"]}'.encode("utf-16")) == {"instances": ["é"]}


@pytest.mark.parametrize("body", [b'{"instances": [1]} x', b'{"instances": [1]}{}', b"", b"  ", b'["a\x01"]',
                                  b'{"a": 1,}', b"[1,]", b"\xff", b'"\xc3"'])
def test_bad_json_gets_the_same_message_as_before(body: bytes) -> None:
    with pytest.raises(ValueError) as reference:
        json.loads(body)
    assert _message(body) == f"The request body is not valid JSON: {reference.value}."


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH])
def test_nesting_up_to_the_limit_is_accepted(depth: int) -> None:
    body = "[" * depth + "]" * depth
    assert parse_json(body.encode()) == json.loads(body)
    mixed = '{"a": ' * depth + "1" + "}" * depth
    assert parse_json(mixed) == json.loads(mixed)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1025, 5000])
def test_nesting_past_the_limit_is_refused(depth: int) -> None:
    message = _message(b'{"a": ' * (depth - 1) + b"[]" + b"}" * (depth - 1))
    assert message == f"The request is nested more than {MAX_DEPTH} levels deep."
    assert "nested more than" in _message(b"[" * depth + b"]" * depth)


@pytest.mark.parametrize("text", ["[[[[", "]]]]", '\\"[[[[', "{{{{", "\\\\"])
def test_brackets_inside_strings_do_not_count_as_nesting(text: str) -> None:
    inner = json.dumps(text * 40)
    ok = '{"s": ' + inner + ', "t": ' + "[" * (MAX_DEPTH - 1) + inner + "]" * (MAX_DEPTH - 1) + "}"
    assert parse_json(ok.encode()) == json.loads(ok)
    deep = '{"s": ' + inner + ', "t": ' + "[" * MAX_DEPTH + inner + "]" * MAX_DEPTH + "}"
    assert _message(deep.encode()) == f"The request is nested more than {MAX_DEPTH} levels deep."


def _reference(body: bytes) -> Any:
    """What parse_json answered before its fast path: json.loads with the policy's hooks."""
    def refuse(text: str) -> Any:
        raise AssertionError(text)
    return json.loads(body, parse_constant=refuse,
                      parse_int=lambda t: int(t) if len(t.lstrip("-")) <= MAX_INT_DIGITS else refuse(t))


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.choice([0, -1, 2**63, -(2**63), 2**64 - 1, 2**64, -(2**64) - 1, 10**39,
                           rng.randrange(-10**6, 10**6)])
    if kind == 1:
        return rng.choice([rng.uniform(-1e6, 1e6), rng.gauss(0, 1) * 10 ** rng.randrange(-320, 300), -0.0, 5e-324])
    if kind == 2:
        return "".join(rng.choice(["a", "é", "\u2028", "\"", "\\", "\n", "😀", "1234567890"]) for _ in range(5))
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return rng.random()
    if kind in (5, 6):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{rng.randrange(5)}": _random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def test_random_bodies_parse_to_exactly_what_the_standard_library_gives() -> None:
    rng = random.Random(12)
    for _ in range(2000):
        value = {"instances": [_random_value(rng) for _ in range(rng.randrange(1, 5))]}
        for body in (json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode()):
            assert _same(parse_json(body), _reference(body)), body


def test_responses_still_carry_non_finite_floats_as_strings() -> None:
    body = dumps_response([float("nan"), float("inf"), None, 1.5], extra={"deployedModelId": "v1"})
    assert json.loads(body) == {"predictions": ["NaN", "Infinity", None, 1.5], "deployedModelId": "v1"}


def _reference_dumps(predictions: Any, extra: dict[str, Any] | None = None) -> Any:
    """What clients read before dumps_response had a fast path: the standard library's output, parsed."""
    body = {"predictions": to_jsonable(predictions), **(extra or {})}
    return json.loads(json.dumps(body, allow_nan=False))


class Colour(enum.Enum):
    RED = 1


class Size(enum.IntEnum):
    BIG = 2


class Label(str):
    pass


@pytest.mark.parametrize("predictions", [
    ["setosa", "versicolor"], [1, -0.0, 1e-05, 1e16, 5e-324, 2**63, -(2**63)], [2**64, -(2**70), 10**39],
    [[0.1, 0.2, 0.7], [1.0, float("nan"), None]], [float("inf"), float("-inf"), None], ["é", "😀", "\u2028", '"\\'],
    ["\ud800"], [Size.BIG, True], [Label("x")], [("a", 1)], [{"label": "a", "score": 0.5}],
    np.array([[0.5, 1.5]], dtype=np.float32), [np.int64(3), np.float64(0.25)], [[], [[1]]],
])
def test_responses_mean_what_they_meant_before_the_fast_path(predictions: Any) -> None:
    for extra in (None, {"deployedModelId": "v1"}):
        assert _same(json.loads(dumps_response(predictions, extra=extra)), _reference_dumps(predictions, extra))


@pytest.mark.parametrize("predictions", [[Colour.RED], [uuid.UUID(int=1)]])
def test_values_that_are_not_json_are_still_refused_by_type(predictions: Any) -> None:
    with pytest.raises(ResponseError) as info:
        dumps_response(predictions)
    assert f"predictions[0] is a {type(predictions[0]).__module__}." in info.value.message


def test_random_plain_predictions_encode_to_the_same_values() -> None:
    rng = random.Random(7)
    for _ in range(1000):
        predictions = [_random_value(rng, depth=3) for _ in range(rng.randrange(1, 6))]
        if rng.random() < 0.5:
            predictions = [predictions, [_random_value(rng, depth=4)]]
        assert _same(json.loads(dumps_response(predictions)), _reference_dumps(predictions))


def _line_outcome(line: bytes) -> Any:
    try:
        return ("value", parse_json(line))
    except RequestError as exc:
        return ("refused", exc.message)


def test_many_lines_parse_as_each_would_alone() -> None:
    """A batch shard's lines, parsed together, give each line's value or its own refusal."""
    rng = random.Random(5)
    odd = [b"[NaN]", b"{bad", b"1e400", b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), b'"\\ud800"',
           b"[" + b"9" * (MAX_INT_DIGITS + 1) + b"]", b"\xef\xbb\xbf[1]", b"[1] \r", b"  "]
    for round_ in range(300):
        lines = [json.dumps(_random_value(rng)).encode() for _ in range(rng.randrange(1, 8))]
        lines += rng.sample(odd, rng.randrange(3))
        if round_ % 3 == 0:  # a 19-digit run anywhere sends every line the slow way
            lines.append(b"[1234567890123456789]")
        rng.shuffle(lines)
        got = parse_json_lines(lines)
        for line, value in zip(lines, got, strict=True):
            expected = _line_outcome(line)
            if expected[0] == "value":
                assert not isinstance(value, BaseException) and _same(value, expected[1]), line
            else:
                assert isinstance(value, RequestError) and value.message == expected[1], line


def test_plain_predictions_pass_as_they_are_and_the_rest_is_still_converted() -> None:
    plain = ["setosa", 1, True, None]
    assert to_jsonable(plain) is plain
    floats = [0.5, -0.0, 1e300]
    assert to_jsonable(floats) is floats
    assert to_jsonable([0.5, float("nan"), float("-inf")]) == [0.5, "NaN", "-Infinity"]
    assert to_jsonable([np.float32(0.5), 2]) == [0.5, 2] and type(to_jsonable([np.int64(3)])[0]) is int
    assert to_jsonable([Label("x")]) == ["x"] and type(to_jsonable([Label("x")])[0]) is Label
