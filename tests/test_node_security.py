"""The node under attack: artifact URIs outside the allowed prefixes, reads without the token, what leaves it."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main
from cprsdk.testing import RunningNode, running_node
from helpers import copy_project, http, wait_until

TOKEN = "a-security-test-token-long-enough"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def bucket(trained_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local 'bucket': allowed/ holds the sample's model and sdist, secret/ sits beside it, linked from allowed/."""
    root = tmp_path_factory.mktemp("security")
    allowed, secret = root / "allowed", root / "secret"
    assert main(["package", str(trained_sample), "--out", str(allowed / "dist"), "-q"]) == 0
    (allowed / "model").mkdir()
    for path in (trained_sample / "model").iterdir():
        (allowed / "model" / path.name).write_bytes(path.read_bytes())
    secret.mkdir()
    (secret / "creds.csv").write_text("user,password\nroot,hunter2\n")
    (allowed / "link").symlink_to(secret, target_is_directory=True)
    return root


@pytest.fixture
def node(bucket: Path, tmp_path: Path) -> Iterator[RunningNode]:
    prefixes = (str(bucket / "allowed"), "gs://b/allowed")
    with running_node(registry=str(tmp_path / "registry"), poll_interval=0.2, wait_ready=False,
                      admin_token=TOKEN, allowed_prefixes=prefixes) as running:
        yield running


def _call(node: RunningNode, method: str, path: str, body: Any = None,
          headers: dict[str, str] | None = None) -> tuple[int, Any]:
    answer = http(node.url, method, path, None if body is None else json.dumps(body).encode(), headers)
    return answer.status, answer.json(empty={})


def _version_body(bucket: Path, origin: str, package: str | None = None) -> dict[str, Any]:
    sdist = next((bucket / "allowed" / "dist").glob("*.tar.gz"))
    return {"name": "v1", "deploymentUri": origin, "packageUris": [package or sdist.as_posix()],
            "predictionClass": "predictor.MyPredictor"}


def _bypasses(bucket: Path) -> list[str]:
    allowed = (bucket / "allowed").as_posix()
    return [f"{allowed}/../secret", f"file://{allowed}/../secret", f"{allowed}/link",
            f"file://{allowed}/link/creds.csv", f"file://{allowed}/%2e%2e/secret", f"{allowed}%2f..%2fsecret",
            f"{allowed}/..%5csecret", f"{allowed}//../secret", f"{allowed}-other", "gs://b/allowed-other",
            "gs://b/allowed/../secret", "gs://b/allowed//x", "gs://b/allowed/./x", "gs://b/allowed/%2E%2E/secret",
            "gs://b/allowed%2fx", "gs://other/allowed"]


def test_artifact_uris_that_leave_the_allowed_prefixes_are_refused(node: RunningNode, bucket: Path) -> None:
    assert _call(node, "POST", "/v1/projects/p/models", {"name": "iris"}, AUTH)[0] == 200
    for uri in _bypasses(bucket):
        status, body = _call(node, "POST", "/v1/projects/p/models/iris/versions",
                             _version_body(bucket, uri), AUTH)
        assert status == 403, (uri, body)
        assert "is not under an allowed prefix" in body["error"]["message"]
        status, body = _call(node, "POST", "/v1/projects/p/models/iris/versions",
                             _version_body(bucket, str(bucket / "allowed" / "model"), uri), AUTH)
        assert status == 403, (uri, body)


def test_batch_job_uris_obey_the_same_rule(node: RunningNode, bucket: Path) -> None:
    allowed = (bucket / "allowed").as_posix()
    for uri in _bypasses(bucket):
        for given in ({"inputPaths": [uri], "outputPath": f"{allowed}/out"},
                      {"inputPaths": [f"{allowed}/rows.jsonl"], "outputPath": uri}):
            body = {"jobId": "j1", "predictionInput": {"dataFormat": "JSON", "modelName": "projects/p/models/iris",
                                                       **given}}
            status, answer = _call(node, "POST", "/v1/projects/p/jobs", body, AUTH)
            assert status == 403 and "is not under an allowed prefix" in answer["error"]["message"], (uri, answer)
    assert not (bucket / "secret" / "out").exists()


def test_a_legitimate_uri_is_accepted_and_the_version_loads(node: RunningNode, bucket: Path) -> None:
    assert _call(node, "POST", "/v1/projects/p/models", {"name": "iris"}, AUTH)[0] == 200
    origin = f"file://{(bucket / 'allowed').as_posix()}/./model/"
    status, operation = _call(node, "POST", "/v1/projects/p/models/iris/versions", _version_body(bucket, origin), AUTH)
    assert status == 200, operation
    deadline = time.monotonic() + 120
    while not operation.get("done"):
        assert time.monotonic() < deadline, operation
        time.sleep(0.2)
        operation = _call(node, "GET", f"/v1/{operation['name']}", headers=AUTH)[1]
    assert "error" not in operation, operation
    wait_until(lambda: http(node.url, "GET", "/readyz").status == 200, timeout=120, interval=0.2, what="iris/v1 READY")
    assert node.client.predict("iris", [[6.7, 3.0, 5.2, 2.3]]) == ["virginica"]


READS = ("/v1/projects/p/models", "/v1/projects/p/models/iris", "/v1/projects/p/models/iris/versions",
         "/v1/projects/p/models/iris/versions/v1", "/v1/projects/p/operations/create_version_1_1",
         "/v1/projects/p/jobs", "/v1/projects/p/jobs/j1")


def test_every_management_read_needs_the_token(trained_sample: Path, tmp_path: Path) -> None:
    registry = str(tmp_path / "registry")
    assert main(["deploy", str(trained_sample), "--model", "iris", "--version", "v1", "--registry", registry,
                 "--format", "json"]) == 0
    with running_node(registry=registry, poll_interval=0.2, admin_token=TOKEN) as node:
        for path in READS:
            for headers in ({}, {"Authorization": "Bearer not-the-token-but-long"}):
                status, body = _call(node, "GET", path, headers=headers)
                assert status == 401 and "A valid bearer token is required" in body["error"]["message"], path
        status, version = _call(node, "GET", "/v1/projects/p/models/iris/versions/v1", headers=AUTH)
        assert status == 200 and version["state"] == "READY" and version["deploymentUri"]
        assert _minimal_views_reveal_only_state(node) == {"iris/v1": "READY"}
    with running_node(registry=registry, poll_interval=0.2) as plain:  # no token file: management is off
        for path in READS:
            status, body = _call(plain, "GET", path, headers=AUTH)
            assert status == 403 and "--admin-token-file" in body["error"]["message"], path
        assert _minimal_views_reveal_only_state(plain) == {"iris/v1": "READY"}


def _minimal_views_reveal_only_state(node: RunningNode) -> dict[str, str]:
    """KServe's model GET and /readyz answer without a token, and carry no storage URI."""
    kserve = http(node.url, "GET", "/v1/models/iris")
    ready = http(node.url, "GET", "/readyz")
    assert kserve.status == 200 and kserve.json() == {"name": "iris", "ready": True}
    assert ready.status == 200 and set(ready.json()) == {"status", "versions"}
    versions: dict[str, str] = ready.json()["versions"]
    return versions


def test_a_native_multi_line_error_reaches_the_client_as_its_first_line(tmp_path: Path) -> None:
    behaviours = copy_project("behaviours", tmp_path / "behaviours")
    with running_node(model_dir=behaviours / "model", packages=[behaviours],
                      prediction_class="native_error.NativeError") as node:
        answer = http(node.url, "POST", "/v1/projects/p/models/default/versions/v1:predict", b'{"instances": [1]}')
    assert answer.status == 500
    message = answer.json()["error"]["message"]
    assert message == ("Prediction failed: XGBoostError: [10:42:17] <path>:1511: Check failed: booster <path> "
                       "is empty")
    assert "Stack trace" not in answer.data.decode() and "site-packages" not in answer.data.decode()


def test_a_version_that_fails_to_load_names_the_cause_not_the_cache(tmp_path: Path) -> None:
    registry = str(tmp_path / "registry")
    behaviours = copy_project("behaviours", tmp_path / "behaviours")
    assert main(["deploy", str(behaviours), "--model", "broken", "--version", "v1", "--registry", registry,
                 "--prediction-class", "from_path_raises.FromPathRaises", "--format", "json",
                 "--skip-load-check"]) == 0
    with running_node(registry=registry, poll_interval=0.2, admin_token=TOKEN) as node:
        cache = str(node.app.manager.cache)
        resource = _call(node, "GET", "/v1/projects/p/models/broken/versions/v1", headers=AUTH)[1]
        predicted = _call(node, "POST", "/v1/projects/p/models/broken:predict", {"instances": [1]})[1]
    assert resource["state"] == "FAILED", resource
    message = resource["errorMessage"]
    assert message == ("from_path_raises.FromPathRaises.from_path('<path>') raised FileNotFoundError: model.joblib "
                       "is missing from the model directory Fix the loading code or the model directory (the "
                       "traceback goes to the log).")
    assert cache not in predicted["error"]["message"] and "<path>" in predicted["error"]["message"]


def test_operations_and_finished_jobs_kept_in_memory_are_bounded(trained_sample: Path, bucket: Path,
                                                                 tmp_path: Path) -> None:
    registry = str(tmp_path / "registry")
    assert main(["deploy", str(trained_sample), "--model", "iris", "--version", "v1", "--registry", registry,
                 "--format", "json"]) == 0
    allowed = (bucket / "allowed").as_posix()
    with running_node(registry=registry, poll_interval=0.2, admin_token=TOKEN, allowed_prefixes=(allowed,),
                      max_records=3) as node:
        names = []
        for i in range(5):
            assert _call(node, "POST", "/v1/projects/p/models", {"name": f"m{i}"}, AUTH)[0] == 200
            status, operation = _call(node, "DELETE", f"/v1/projects/p/models/m{i}", headers=AUTH)
            assert status == 200 and operation["done"], operation
            names.append(operation["name"])
        kept = [_call(node, "GET", f"/v1/{name}", headers=AUTH)[0] for name in names]
        assert kept == [404, 404, 200, 200, 200]
        for i in range(5):
            body = {"jobId": f"job{i}", "predictionInput": {
                "dataFormat": "JSON", "inputPaths": [f"{allowed}/missing{i}.jsonl"], "outputPath": f"{allowed}/out{i}",
                "modelName": "projects/p/models/iris"}}
            assert _call(node, "POST", "/v1/projects/p/jobs", body, AUTH)[0] == 200
            wait_until(functools.partial(_job_ended, node, f"job{i}"), timeout=120, interval=0.2, what=f"job{i} to end")
        listed = _call(node, "GET", "/v1/projects/p/jobs", headers=AUTH)[1]["jobs"]
    assert [job["jobId"] for job in listed] == ["job2", "job3", "job4"]


def _job_ended(node: RunningNode, job: str) -> bool:
    return _call(node, "GET", f"/v1/projects/p/jobs/{job}", headers=AUTH)[1].get("state") in (
        "SUCCEEDED", "FAILED", "CANCELLED")
