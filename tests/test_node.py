"""The prediction node over real HTTP: routes, request rules, and a predictor that misbehaves."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from cprsdk.testing import RunningNode, running_node
from helpers import copy_project, http


@pytest.fixture(scope="module")
def behaviours_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """projects/behaviours, copied once for this module's nodes."""
    return copy_project("behaviours", tmp_path_factory.mktemp("node") / "behaviours")


def _node(behaviours_dir: Path, cls: str, **options: Any) -> AbstractContextManager[RunningNode]:
    return running_node(model_dir=behaviours_dir / "model", packages=[behaviours_dir], prediction_class=cls,
                        **options)


@pytest.fixture(scope="module")
def echo(behaviours_dir: Path) -> Iterator[RunningNode]:
    with _node(behaviours_dir, "echo.Echo") as node:
        yield node


def _raw(node: RunningNode, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, chunked: bool = False) -> tuple[int, dict[str, Any], dict[str, str]]:
    answer = http(node.url, method, path, body, headers, chunked=chunked)
    return answer.status, answer.json(empty={}), answer.headers


PREDICT = "/v1/projects/any-project/models/default/versions/v1:predict"
TOKEN = "a-node-test-token-long-enough"
AUTH = {"Authorization": f"Bearer {TOKEN}"}  # the version reads need the admin token


def test_ai_platform_predict_passes_other_fields_as_kwargs(echo: RunningNode) -> None:
    status, body, headers = _raw(echo, "POST", PREDICT + "?alt=json",
                                 json.dumps({"instances": [1, {"a": 2}], "signature": "s"}).encode())
    assert status == 200
    assert body == {"predictions": [{"instance": 1, "greeting": "hello", "kwargs": {"signature": "s"}},
                                    {"instance": {"a": 2}, "greeting": "hello", "kwargs": {"signature": "s"}}]}
    assert len(headers["x-request-id"]) == 32


def test_default_version_vertex_and_kserve_routes(echo: RunningNode) -> None:
    assert echo.client.predict("default", ["x"]) == [{"instance": "x", "greeting": "hello", "kwargs": {}}]
    status, body, _ = _raw(echo, "POST", "/v1/projects/p/locations/us-central1/endpoints/default:predict",
                           json.dumps({"instances": [1.0], "parameters": {"k": 2.0}}).encode())
    assert status == 200
    assert body == {"predictions": [{"instance": 1.0, "greeting": "hello", "kwargs": {"k": 2.0}}],
                    "deployedModelId": "v1"}
    status, body, _ = _raw(echo, "POST", "/v1/models/default:predict", b'{"instances": [3]}')
    assert status == 200 and body["predictions"][0]["instance"] == 3
    assert _raw(echo, "GET", "/v1/models/default")[1] == {"name": "default", "ready": True}
    status, endpoint, _ = _raw(echo, "GET", "/v1/projects/p/locations/l/endpoints/default")
    assert endpoint["deployedModels"][0]["id"] == "v1"


def test_a_sane_request_id_is_kept_and_a_bad_one_replaced(echo: RunningNode) -> None:
    _, _, headers = _raw(echo, "GET", "/healthz", headers={"X-Request-ID": "trace-123"})
    assert headers["x-request-id"] == "trace-123"
    _, _, headers = _raw(echo, "GET", "/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert headers["x-request-id"] != "bad id\twith spaces" and len(headers["x-request-id"]) == 32


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "The request body is not valid JSON"),
        (b"[1]", 400, "must be a JSON object, got an array"),
        (b'{"inputs": [1]}', 400, 'The request has no "instances" field.'),
        (b'{"instances": 5}', 400, '"instances" must be a list, got a number.'),
        (b'{"instances": []}', 400, '"instances" is empty'),
        (b'{"instances": [NaN]}', 400, "contains NaN, which is not valid JSON. Send non-finite numbers as strings"),
        (b'{"instances": [' + b"1" * 5000 + b"]}", 400, "an integer with 5000 digits"),
        (b'{"instances": ' + b"[" * 10000 + b"]" * 10000 + b"}", 400, "nested more than"),
        (b'{"instances": ["' + b"x" * 1_600_000 + b'"]}', 413, "over the 1500000 byte limit"),
    ],
)
def test_bad_bodies_get_their_4xx(echo: RunningNode, body: bytes, status: int, message: str) -> None:
    got, payload, _ = _raw(echo, "POST", PREDICT, body)
    assert got == status
    assert message in payload["error"]["message"]
    assert payload["error"]["code"] == status


def test_body_limit_holds_without_content_length(echo: RunningNode) -> None:
    status, payload, _ = _raw(echo, "POST", PREDICT, b'{"instances": ["' + b"y" * 2_000_000 + b'"]}', chunked=True)
    assert status == 413 and payload["error"]["status"] == "INVALID_ARGUMENT"


def test_wrong_content_type_method_and_route(echo: RunningNode) -> None:
    status, payload, _ = _raw(echo, "POST", PREDICT, b"instances=1", headers={"Content-Type": "text/plain"})
    assert status == 415 and "Content-Type must be application/json, got text/plain" in payload["error"]["message"]
    assert _raw(echo, "GET", PREDICT)[0] == 405
    status, payload, _ = _raw(echo, "POST", "/v1/projects/p/models/nope:predict", b'{"instances": [1]}')
    assert status == 404 and payload["error"]["status"] == "NOT_FOUND"
    assert _raw(echo, "GET", "/nowhere")[0] == 404


def test_health_ready_and_metrics(echo: RunningNode) -> None:
    assert _raw(echo, "GET", "/healthz")[0] == 200
    status, body, _ = _raw(echo, "GET", "/readyz")
    assert status == 200 and body["versions"] == {"default/v1": "READY"}
    text = http(echo.url, "GET", "/metrics").data.decode()
    assert 'cprsdk_requests_total{route="healthz",status="200"}' in text
    assert 'cprsdk_version_state{model="default",version="v1",state="READY"} 1' in text
    assert "cprsdk_request_seconds_bucket" in text and "cprsdk_requests_in_flight" in text


@pytest.mark.parametrize(
    ("cls", "status", "message"),
    [
        ("raises.Raises", 500, "Prediction failed: ValueError: the model cannot handle negative ages"),
        ("chooses_status.ChoosesStatus", 422, "feature 'age' must be positive"),
        ("not_json.NotJson", 500, "predictions[0]['labels'] is a builtins.set"),
    ],
)
def test_predictor_errors_become_envelopes(behaviours_dir: Path, cls: str, status: int, message: str) -> None:
    with _node(behaviours_dir, cls) as node:
        got, body, _ = _raw(node, "POST", PREDICT, b'{"instances": [1]}')
    assert got == status and message in body["error"]["message"]
    assert "Traceback" not in json.dumps(body) and str(behaviours_dir) not in json.dumps(body)


@pytest.mark.parametrize("how", ["exit", "segfault"])
def test_a_crashing_worker_is_replaced(behaviours_dir: Path, how: str) -> None:
    with _node(behaviours_dir, "crashes.Crashes") as node:
        first = node.client.predict("default", ["ok"])
        status, body, _ = _raw(node, "POST", PREDICT, json.dumps({"instances": [how]}).encode())
        assert status == 500 and "exited" in body["error"]["message"]
        assert ("SIGSEGV" in body["error"]["message"]) == (how == "segfault")
        after = _retry_until_ok(node, b'{"instances": ["ok"]}')
        assert after["predictions"] != first  # a new process answers


def _retry_until_ok(node: RunningNode, body: bytes) -> dict[str, Any]:
    """The answer to the first POST of ``body`` to PREDICT that is a 200, within 60 s (a new worker starts)."""
    deadline = time.monotonic() + 60
    while True:
        status, answer, _ = _raw(node, "POST", PREDICT, body)
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, answer
            return answer
        time.sleep(0.1)


def test_a_prediction_over_the_timeout_is_504_and_the_worker_replaced(behaviours_dir: Path) -> None:
    with _node(behaviours_dir, "hangs.Hangs", predict_timeout=1.0) as node:
        status, body, _ = _raw(node, "POST", PREDICT, b'{"instances": [30]}')
        assert status == 504 and body["error"]["status"] == "DEADLINE_EXCEEDED"
        assert "longer than the 1 s timeout" in body["error"]["message"]
        assert _retry_until_ok(node, b'{"instances": [0]}') == {"predictions": ["woke"]}


def test_load_failures_and_load_timeout_mark_the_version_failed(behaviours_dir: Path) -> None:
    with _node(behaviours_dir, "from_path_raises.FromPathRaises", admin_token=TOKEN) as node:
        status, version, _ = _raw(node, "GET", "/v1/projects/p/models/default/versions/v1", headers=AUTH)
        assert version["state"] == "FAILED"
        assert "raised FileNotFoundError: model.joblib is missing" in version["errorMessage"]
        status, body, _ = _raw(node, "POST", PREDICT, b'{"instances": [1]}')
        assert status == 503 and "failed to load" in body["error"]["message"]
        assert _raw(node, "GET", "/readyz")[0] == 503
    with _node(behaviours_dir, "slow_load.SlowLoad", load_timeout=1.0, admin_token=TOKEN) as node:
        version = _raw(node, "GET", "/v1/projects/p/models/default/versions/v1", headers=AUTH)[1]
        assert version["state"] == "FAILED" and "load timeout of 1 s" in version["errorMessage"]


def test_user_prints_do_not_break_frames(behaviours_dir: Path) -> None:
    with _node(behaviours_dir, "prints.Prints") as node:
        assert node.client.predict("default", [1, 2, 3]) == [3]


def test_a_full_queue_answers_503_at_once(behaviours_dir: Path) -> None:
    with _node(behaviours_dir, "hangs.Hangs", max_pending=1) as node:
        slow = threading.Thread(target=lambda: _raw(node, "POST", PREDICT, b'{"instances": [2]}'))
        slow.start()
        time.sleep(0.3)
        start = time.monotonic()
        status, body, headers = _raw(node, "POST", PREDICT, b'{"instances": [0]}')
        elapsed = time.monotonic() - start
        slow.join()
    assert status == 503 and body["error"]["status"] == "UNAVAILABLE" and headers["retry-after"] == "1"
    assert "requests waiting; try again shortly" in body["error"]["message"]
    assert elapsed < 1.0  # answered without waiting for the slow request
