"""The node's OpenAPI document: valid OpenAPI 3, every route, and schemathesis against a real node."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from cprsdk.cli import main
from cprsdk.node.routes import ROUTES
from cprsdk.testing import RunningNode, running_node
from helpers import http, label_project

TOKEN = "an-openapi-test-token-long-enough"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    root = tmp_path_factory.mktemp("openapi")
    registry = str(root / "registry")
    project = label_project(root, "fine")
    assert main(["deploy", str(project), "--model", "fine", "--version", "v1", "--registry", registry,
                 "--format", "json"]) == 0
    with running_node(registry=registry, poll_interval=0.2, admin_token=TOKEN,
                      allowed_prefixes=(str(root / "allowed"),)) as running:
        yield running


def _document(node: RunningNode) -> dict[str, Any]:
    answer = http(node.url, "GET", "/openapi.json")  # no token
    assert answer.status == 200
    document: dict[str, Any] = answer.json()
    return document


def test_the_document_is_valid_openapi_3_and_lists_every_route(node: RunningNode) -> None:
    document = _document(node)
    validate(document)  # raises on any violation of the OpenAPI 3.0 schema
    operations = {op["operationId"]: (verb.upper(), path) for path, item in document["paths"].items()
                  for verb, op in item.items()}
    assert set(operations) == {name for _, _, name in ROUTES}
    assert operations["aip_predict"] == ("POST", "/v1/projects/{project}/models/{model}/versions/{version}:predict")
    assert operations["kserve_model"] == ("GET", "/v1/models/{model}")
    assert "security" in document["paths"]["/v1/projects/{project}/models"]["post"]
    assert "security" not in document["paths"]["/v1/models/{model}"]["get"]  # the unauthenticated view
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def test_the_document_names_the_vertex_environment_routes(tmp_path: Path) -> None:
    project = label_project(tmp_path, "fine")
    with running_node(model_dir=project / "model", packages=[project], prediction_class="predictor.MyPredictor",
                      predict_route="/predict", health_route="/health") as running:
        paths = _document(running)["paths"]
    assert paths["/predict"]["post"]["operationId"] == "aip_env_predict"
    assert paths["/health"]["get"]["operationId"] == "aip_env_health"


# Path values of the served version, so that generated bodies reach its worker too
_REAL = {"project": "p", "location": "l", "model": "fine", "version": "v1", "endpoint": "fine", "job": "j1"}


def _strategy(operation: Any) -> Any:
    """Valid input with random names, valid input aimed at the real version, and invalid input."""
    strategies = [operation.as_strategy()]
    params = {p["name"] for p in operation.definition.raw.get("parameters", [])}
    if params and operation.method.upper() != "DELETE":  # deleting the real model would end the run
        strategies.append(operation.as_strategy(path_parameters={k: v for k, v in _REAL.items() if k in params}))
    body = operation.definition.raw.get("requestBody", {}).get("content", {})
    if params or "application/json" in body:  # a binary body has no invalid form
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    return st.one_of(strategies)


def _fuzz(operation: Any, node: RunningNode, failures: list[str]) -> None:
    @given(case=_strategy(operation))
    @settings(max_examples=20, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        response = case.call(base_url=node.url, headers=AUTH, timeout=30)
        try:
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                                     response_schema_conformance])
            if response.status_code >= 300:
                error = response.json()["error"]
                assert error["code"] == response.status_code and error["message"] and error["status"]
        except Exception as exc:  # an AssertionError, or schemathesis's group of failed checks
            failures.append(f"{operation.label} {response.status_code} {response.text[:300]}: {exc}")
            raise

    recorded = len(failures)
    try:
        run()
    except Exception:
        if len(failures) == recorded:  # not a failed check: a broken strategy or test
            raise


def test_no_route_answers_500_and_every_error_is_the_envelope(node: RunningNode) -> None:
    schema = schemathesis.openapi.from_url(f"{node.url}/openapi.json")
    failures: list[str] = []
    # an Err (an operation schemathesis cannot read) has no .ok() and fails the test
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) == len(ROUTES) - 1  # schemathesis leaves out the document's own route
    for operation in operations:
        _fuzz(operation, node, failures)
    assert not failures, "\n".join(failures)


def test_bodies_of_the_wrong_shape_are_400s(node: RunningNode) -> None:
    allowed = node.app.options.allowed_prefixes[0]
    body = {"name": "v2", "deploymentUri": f"{allowed}/model", "packageUris": [f"{allowed}/p.tar.gz"],
            "predictionClass": "predictor.MyPredictor", "labels": ["a", "b"]}
    answer = http(node.url, "POST", "/v1/projects/p/models/fine/versions", json.dumps(body).encode(), AUTH)
    assert answer.status == 400, answer.data  # was a 500 (a TypeError)
    assert "labels must be an object of string values, got ['a', 'b']" in answer.json()["error"]["message"]
