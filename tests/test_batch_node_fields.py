"""Node batch jobs: each predictionInput field is checked, and a wrong one is a 400 naming it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cprsdk.testing import RunningNode, running_node
from helpers import http

TOKEN = "a-test-token-that-is-long-enough"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fields")


@pytest.fixture(scope="module")
def node(root: Path) -> Iterator[RunningNode]:
    with running_node(registry=str(root / "registry"), wait_ready=False, admin_token=TOKEN,
                      allowed_prefixes=(f"file://{root.as_posix()}",)) as running:
        yield running


def _create(node: RunningNode, root: Path, job: str, **fields: Any) -> tuple[int, dict[str, Any]]:
    given = {"dataFormat": "JSON", "inputPaths": [f"file://{root}/in.jsonl"], "outputPath": f"file://{root}/{job}",
             "modelName": "projects/p/models/absent", **fields}
    body = json.dumps({"jobId": job, "predictionInput": given}).encode()
    answer = http(node.url, "POST", "/v1/projects/p/jobs", body, {"Authorization": f"Bearer {TOKEN}"})
    return answer.status, json.loads(answer.data)


@pytest.mark.parametrize(("field", "value", "says"), [
    ("batchSize", 0, "predictionInput.batchSize must be an integer of at least 1, got 0"),
    ("batchSize", -1, "predictionInput.batchSize must be an integer of at least 1, got -1"),
    ("batchSize", "abc", "predictionInput.batchSize must be an integer of at least 1, got 'abc'"),
    ("batchSize", 2.5, "predictionInput.batchSize must be an integer of at least 1, got 2.5"),
    ("batchSize", True, "predictionInput.batchSize must be an integer of at least 1, got True"),
    ("maxWorkerCount", 0, "predictionInput.maxWorkerCount must be an integer from 1 to 32, got 0"),
    ("maxWorkerCount", 33, "predictionInput.maxWorkerCount must be an integer from 1 to 32, got 33"),
    ("maxWorkerCount", "many", "predictionInput.maxWorkerCount must be an integer from 1 to 32, got 'many'"),
    ("dataFormat", 3, "predictionInput.dataFormat must be a string, got 3"),
    ("dataFormat", "XML", "predictionInput.dataFormat 'XML' is not supported"),
    ("inputPaths", "one/path", "predictionInput.inputPaths must be a non-empty list of non-empty strings"),
    ("inputPaths", [], "predictionInput.inputPaths must be a non-empty list of non-empty strings"),
    ("inputPaths", [7], "predictionInput.inputPaths must be a non-empty list of non-empty strings"),
    ("outputPath", ["a"], "predictionInput.outputPath must be a string, got ['a']"),
    ("modelName", {"name": "iris"}, "predictionInput.modelName must be a string"),
    ("instanceConfig", "array", "predictionInput.instanceConfig must be a JSON object, got 'array'"),
    ("instanceConfig", {"includedFields": "a"}, "predictionInput.instanceConfig.includedFields must be a list"),
    ("instanceConfig", {"instanceType": "table"}, "--instance-type 'table' is not one of object, array"),
    ("instanceConfig", {"includedFields": ["a"], "excludedFields": ["b"]}, "both given; Vertex AI allows one"),
    ("outputDataFormat", "XML", "predictionInput.outputDataFormat 'XML' is not supported"),
    ("recordTimeout", 0, "predictionInput.recordTimeout must be a number of seconds above 0, got 0"),
    ("recordTimeout", "soon", "predictionInput.recordTimeout must be a number of seconds above 0, got 'soon'"),
])
def test_a_wrong_field_is_a_400_naming_it(node: RunningNode, root: Path, field: str, value: Any, says: str) -> None:
    status, answer = _create(node, root, f"bad_{field}", **{field: value})
    assert status == 400, answer
    assert says in answer["error"]["message"]


def test_integers_as_strings_pass_the_checks(node: RunningNode, root: Path) -> None:
    """The discovery clients send int64 fields as strings: "8" is a batch size; the job then fails on the model."""
    status, answer = _create(node, root, "strings", batchSize="8", maxWorkerCount="2", recordTimeout="30s")
    assert status == 404 and "absent" in answer["error"]["message"], answer
