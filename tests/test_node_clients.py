"""Google's own client libraries, and curl, against a real node serving the deployed ZeroCenterer sample.

The sample is trained, deployed with ``cprsdk deploy`` into a registry folder as ``iris/v1`` and
served by a real node on a loopback port; every answer is compared with the same predictor loaded
in-process. The last test runs ``cprsdk serve`` as a Vertex AI custom container (the ``AIP_*``
variables) in a subprocess.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cprsdk import load_predictor
from cprsdk.cli import main
from cprsdk.testing import RunningNode, free_port, running_node
from helpers import anonymous_credentials, cprsdk_serve, http, read_jsonl

VERSION = "projects/p/models/iris/versions/v1"
TOKEN = "a-clients-test-token-long-enough"
ENDPOINT = "projects/p/locations/us-central1/endpoints/iris"


@pytest.fixture(scope="module")
def instances(trained_sample: Path) -> list[list[float]]:
    rows = read_jsonl(trained_sample / "sample.jsonl")
    return [*rows, [5, 3, 1, 0]]  # whole numbers: JSON ints from the ml client, doubles from Vertex


@pytest.fixture(scope="module")
def expected(trained_sample: Path, instances: list[list[float]]) -> dict[str, Any]:
    """The predictions of the sample loaded in this process: labels, and probabilities."""
    names = ("predictor", "preprocess")
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}  # another test's `predictor`
    try:
        predictor = load_predictor("predictor.MyPredictor", trained_sample / "model", paths=[trained_sample])
        labels = predictor.predict(instances)
        probabilities = np.asarray(predictor.predict(instances, probabilities=True)).tolist()
    finally:
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    assert set(labels) == {"setosa", "versicolor", "virginica"}
    return {"labels": labels, "probabilities": probabilities}


@pytest.fixture(scope="module")
def node(trained_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    registry = str(tmp_path_factory.mktemp("clients-registry") / "registry")
    assert main(["deploy", str(trained_sample), "--model", "iris", "--version", "v1", "--registry", registry,
                 "--format", "json"]) == 0
    with running_node(registry=registry, poll_interval=0.2, admin_token=TOKEN) as running:
        yield running


@pytest.fixture(scope="module")
def ml(node: RunningNode) -> Iterator[Any]:
    """google-api-python-client's ``ml`` v1 client, built offline from its bundled discovery document.

    It bears the node's admin token, which the model and version reads need.
    """
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build

    credentials = Credentials(token=TOKEN)  # type: ignore[no-untyped-call]  # google-auth leaves it untyped
    client = build("ml", "v1", static_discovery=True, client_options={"api_endpoint": node.url},
                   credentials=credentials)
    yield client
    client.close()


@pytest.fixture
def vertex(node: RunningNode) -> Iterator[Any]:
    """google-cloud-aiplatform's PredictionServiceClient over REST, pointed at the node."""
    # Imported by name, out of mypy's sight: once mypy follows this typed package it takes google.cloud
    # for a typed namespace, and `from google.cloud import storage` (cprsdk/storage/_gcs.py) stops resolving.
    aiplatform_v1: Any = importlib.import_module("google.cloud.aiplatform_v1")
    with aiplatform_v1.PredictionServiceClient(transport="rest", client_options={"api_endpoint": node.url},
                                               credentials=anonymous_credentials()) as client:
        yield client


def _close(actual: Any, wanted: Any) -> bool:
    return bool(np.shape(actual) == np.shape(wanted) and np.allclose(actual, wanted, rtol=1e-9, atol=1e-12))


# ---------------------------------------------------------------------------- ml v1


def test_ml_v1_client_predicts_as_in_process(ml: Any, instances: list[list[float]],
                                             expected: dict[str, Any]) -> None:
    projects = ml.projects()
    answer = projects.predict(name=VERSION, body={"instances": instances}).execute()
    assert answer == {"predictions": expected["labels"]}

    default = projects.predict(name="projects/p/models/iris", body={"instances": instances}).execute()
    assert default == {"predictions": expected["labels"]}

    # every other top-level field of the body reaches predict as a keyword argument
    kwargs = projects.predict(name=VERSION, body={"instances": instances, "probabilities": True}).execute()
    assert _close(kwargs["predictions"], expected["probabilities"])


def test_ml_v1_client_reads_the_version_and_the_model(ml: Any, node: RunningNode) -> None:
    versions = ml.projects().models().versions()
    version = versions.get(name=VERSION).execute()
    assert version["name"] == VERSION and version["state"] == "READY" and version["isDefault"] is True
    assert version["predictionClass"] == "predictor.MyPredictor"
    assert "errorMessage" not in version

    listed = versions.list(parent="projects/p/models/iris").execute()
    assert [v["name"] for v in listed["versions"]] == [VERSION]
    assert listed["versions"][0]["state"] == "READY"

    model = ml.projects().models().get(name="projects/p/models/iris").execute()
    assert model["name"] == "projects/p/models/iris" and model["defaultVersion"]["name"] == VERSION


def test_ml_v1_client_raises_http_error_with_the_nodes_message(ml: Any, instances: list[list[float]]) -> None:
    from googleapiclient.errors import HttpError

    with pytest.raises(HttpError) as raised:
        ml.projects().predict(name="projects/p/models/nope/versions/v1", body={"instances": instances}).execute()
    assert raised.value.status_code == 404
    assert "Version 'v1' of model 'nope' is not on this node." in str(raised.value)
    envelope = json.loads(raised.value.content)["error"]
    assert envelope["code"] == 404 and envelope["status"] == "NOT_FOUND"

    with pytest.raises(HttpError) as raised:
        ml.projects().predict(name="projects/p/models/nope", body={"instances": instances}).execute()
    assert raised.value.status_code == 404 and "Model 'nope' has no default version" in str(raised.value)

    with pytest.raises(HttpError) as raised:
        ml.projects().models().versions().get(name="projects/p/models/iris/versions/v9").execute()
    assert raised.value.status_code == 404 and "Version 'v9' of model 'iris'" in str(raised.value)

    with pytest.raises(HttpError) as raised:  # a 400 from the request rules, through the same client
        ml.projects().predict(name=VERSION, body={"instances": []}).execute()
    assert raised.value.status_code == 400 and "instances" in str(raised.value)


# ---------------------------------------------------------------------------- Vertex AI


def _values(data: list[Any]) -> list[Any]:
    from google.protobuf import json_format, struct_pb2

    return [json_format.ParseDict(item, struct_pb2.Value()) for item in data]


def _parameters(data: dict[str, Any]) -> Any:
    from google.protobuf import json_format, struct_pb2

    return json_format.ParseDict(data, struct_pb2.Value())


def _predictions(response: Any) -> list[Any]:
    from google.protobuf import json_format

    predictions: list[Any] = json_format.MessageToDict(type(response).pb(response))["predictions"]
    return predictions


def test_vertex_client_predicts_as_in_process(vertex: Any, instances: list[list[float]],
                                              expected: dict[str, Any]) -> None:
    response = vertex.predict(endpoint=ENDPOINT, instances=_values(instances))
    assert _predictions(response) == expected["labels"]
    assert response.deployed_model_id == "v1"

    # Vertex sends every number as a double, and `parameters` become keyword arguments
    response = vertex.predict(endpoint=ENDPOINT, instances=_values(instances),
                              parameters=_parameters({"probabilities": True}))
    assert _close(_predictions(response), expected["probabilities"])
    assert response.deployed_model_id == "v1"


def test_vertex_client_raises_not_found_with_the_nodes_message(vertex: Any, instances: list[list[float]]) -> None:
    from google.api_core import exceptions

    with pytest.raises(exceptions.NotFound) as raised:
        vertex.predict(endpoint="projects/p/locations/us-central1/endpoints/nope", instances=_values(instances))
    assert "Model 'nope' has no default version on this node." in raised.value.message


# ---------------------------------------------------------------------------- curl


def _curl(tmp_path: Path, url: str, body: Any, *headers: str) -> tuple[int, dict[str, str], Any]:
    head, out = tmp_path / "head.txt", tmp_path / "body.json"
    argv = ["curl", "-sS", "-X", "POST", "-H", "Content-Type: application/json", "-D", str(head), "-o", str(out),
            "-w", "%{http_code}", "-d", json.dumps(body)]
    for header in headers:
        argv += ["-H", header]
    done = subprocess.run([*argv, url], capture_output=True, text=True, timeout=60, check=True)
    fields = [line.split(":", 1) for line in head.read_text().splitlines()[1:] if ":" in line]
    return int(done.stdout), {k.strip().lower(): v.strip() for k, v in fields}, json.loads(out.read_text())


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_predicts_as_in_process(node: RunningNode, tmp_path: Path, instances: list[list[float]],
                                     expected: dict[str, Any]) -> None:
    status, headers, body = _curl(tmp_path, f"{node.url}/v1/{VERSION}:predict", {"instances": instances},
                                  "X-Request-ID: curl-test-1")
    assert (status, body) == (200, {"predictions": expected["labels"]})
    assert headers["x-request-id"] == "curl-test-1" and headers["content-type"] == "application/json"

    status, _, body = _curl(tmp_path, f"{node.url}/v1/projects/p/models/iris:predict",
                            {"instances": instances, "probabilities": True})
    assert status == 200 and _close(body["predictions"], expected["probabilities"])

    status, _, body = _curl(tmp_path, f"{node.url}/v1/{ENDPOINT}:predict",
                            {"instances": instances, "parameters": {"probabilities": True}})
    assert status == 200 and body["deployedModelId"] == "v1"
    assert _close(body["predictions"], expected["probabilities"])

    status, headers, body = _curl(tmp_path, f"{node.url}/v1/projects/p/models/nope/versions/v1:predict",
                                  {"instances": instances})
    assert status == 404 and len(headers["x-request-id"]) >= 16
    assert body == {"error": {"code": 404, "message": "Version 'v1' of model 'nope' is not on this node.",
                              "status": "NOT_FOUND"}}


# ---------------------------------------------------------------------------- Vertex custom container


def _http(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    answer = http(f"http://127.0.0.1:{port}", method, path, None if body is None else json.dumps(body).encode(),
                  timeout=30)
    return answer.status, answer.json()


def test_cprsdk_serve_runs_as_a_vertex_custom_container(trained_sample: Path, tmp_path: Path,
                                                        instances: list[list[float]],
                                                        expected: dict[str, Any]) -> None:
    port = free_port()
    env = {"AIP_HTTP_PORT": str(port), "AIP_HEALTH_ROUTE": "/health", "AIP_PREDICT_ROUTE": "/predict",
           "AIP_STORAGE_URI": (trained_sample / "model").as_uri()}
    log = tmp_path / "serve.log"
    work = tmp_path / "cwd"  # no cprsdk settings here: the model comes from AIP_STORAGE_URI alone
    work.mkdir()
    with cprsdk_serve(["--package", str(trained_sample), "--prediction-class", "predictor.MyPredictor"],
                      port=port, log=log, ready_path="/health", cwd=work, env=env) as proc:
        status, body = _http(port, "POST", "/predict", {"instances": instances})
        assert status == 200, body
        assert body == {"predictions": expected["labels"], "deployedModelId": "v1"}

        status, body = _http(port, "POST", "/predict",
                             {"instances": [[float(x) for x in row] for row in instances],
                              "parameters": {"probabilities": True}})
        assert status == 200 and body["deployedModelId"] == "v1"
        assert _close(body["predictions"], expected["probabilities"])

        status, body = _http(port, "POST", "/predict", {"instances": instances, "parameters": [1]})
        assert status == 400 and '"parameters" must be an object' in body["error"]["message"]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()


def test_a_signal_to_the_whole_process_group_still_drains_in_flight_requests(behaviours: Path,
                                                                            tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with cprsdk_serve(["--port", str(port), "--model-dir", str(behaviours / "model"), "--package", str(behaviours),
                       "--prediction-class", "hangs.Hangs"], port=port, log=log, cwd=tmp_path) as proc:
        answers: list[tuple[int, Any]] = []
        slow = threading.Thread(target=lambda: answers.append(
            _http(port, "POST", "/v1/projects/p/models/default:predict", {"instances": [2]})))
        slow.start()
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGTERM)  # as a terminal's Ctrl-C or systemd would: every process
        slow.join(30)
        assert answers == [(200, {"predictions": ["woke"]})], log.read_text()
        assert proc.wait(60) == 0, log.read_text()
