"""Wheels are packages wherever sdists are: ``--package``, ``--package-uris`` and ``versions.create``.

AI Platform accepted wheels as package URIs. A wheel is installed as a wheel, and checked when it
is deployed (the clean import of the prediction class and the pickles' globals, as ``cprsdk
package`` checks an sdist), so a broken one is refused before it is published, not first on a node.
"""

from __future__ import annotations

import json
import shutil
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main
from cprsdk.packaging.build import build_distribution
from cprsdk.registry.registry import Registry
from cprsdk.runtime.predictor import load_predictor
from cprsdk.testing import RunningNode, running_node
from helpers import PROJECTS, copy_project, http, read_jsonl, run_python, wait_until

CLASS = "predictor.MyPredictor"
TOKEN = "a-test-token-that-is-long-enough"
INSTANCES = [[1.0, 2.0], [3.0, 4.5], [-1.0, 0.25]]


@pytest.fixture(autouse=True)
def _jobs_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def _built(case: str, root: Path) -> tuple[Path, Path]:
    """(the project folder with model/ written, the wheel built from it) for tests/projects/ok + ``case``."""
    src = copy_project("ok", root / case)
    shutil.copytree(PROJECTS / case, src, dirs_exist_ok=True)
    run_python(src, "make_model.py")
    wheel = build_distribution(src, "wheel", root / f"{case}-dist")
    return src, wheel


@pytest.fixture(scope="module")
def helper(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _built("wheel", tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="module")
def bucket(helper: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A file:// 'bucket' with the model directory and the wheel, as a legacy user staged them in gs://."""
    src, wheel = helper
    root = tmp_path_factory.mktemp("bucket")
    shutil.copytree(src / "model", root / "models" / "helper")
    (root / "staging").mkdir()
    shutil.copyfile(wheel, root / "staging" / wheel.name)
    return f"file://{root.as_posix()}"


def _in_process(src: Path) -> list[Any]:
    return list(load_predictor(CLASS, src / "model", paths=[src]).predict(INSTANCES).tolist())


def _deploy(registry: str, version: str, *argv: str) -> int:
    return main(["deploy", "--model", "helper", "--version", version, "--registry", registry,
                 "--prediction-class", CLASS, "--format", "json", *argv])


def _create_over_http(node: RunningNode, body: dict[str, Any]) -> dict[str, Any]:
    """``versions.create`` as Google's ml v1 client sends it; the finished Operation."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = http(node.url, "POST", "/v1/projects/p/models/helper/versions", json.dumps(body).encode(), auth)
    assert answer.status == 200, answer.data
    operation: dict[str, Any] = answer.json()
    deadline = time.monotonic() + 120
    while not operation.get("done"):
        assert time.monotonic() < deadline, operation
        time.sleep(0.2)
        operation = http(node.url, "GET", f"/v1/{operation['name']}", headers=auth).json()
    return operation


def _is_ready(node: RunningNode, version: str) -> bool:
    answer = http(node.url, "GET", f"/v1/projects/p/models/helper/versions/{version}",
                  headers={"Authorization": f"Bearer {TOKEN}"})
    return bool((answer.json() or {}).get("state") == "READY")


def _predict(node: RunningNode, version: str) -> list[Any]:
    response = node.client.request("POST", f"/v1/projects/p/models/helper/versions/{version}:predict",
                                   {"instances": INSTANCES})
    assert response.status == 200, response.body
    return list(response.body["predictions"])


def test_a_wheel_deploys_serves_and_runs_in_batch_and_local_predict(
    helper: tuple[Path, Path], bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, wheel = helper
    assert wheel.name == "helper-0.1-py3-none-any.whl"
    expected = _in_process(src)
    registry = str(tmp_path / "registry")
    assert _deploy(registry, "v1", "--package", str(wheel), "--model-dir", str(src / "model")) == 0
    assert [p["path"] for p in json.loads(capsys.readouterr().out)["manifest"]["packages"]] == [wheel.name]
    uri = f"{bucket}/staging/{wheel.name}"
    assert _deploy(registry, "v2", "--origin", f"{bucket}/models/helper", "--package-uris", uri) == 0
    assert json.loads(capsys.readouterr().out)["manifest"]["packageUris"] == [uri]
    with running_node(registry=registry, poll_interval=0.2, admin_token=TOKEN,
                      allowed_prefixes=(bucket,)) as node:
        body = {"name": "v3", "deploymentUri": f"{bucket}/models/helper", "packageUris": [uri],
                "predictionClass": CLASS, "framework": "SCIKIT_LEARN"}
        assert "error" not in _create_over_http(node, body)
        for version in ("v1", "v2", "v3"):
            wait_until(partial(_is_ready, node, version), timeout=120, what=f"{version} READY")
            assert _predict(node, version) == expected
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in INSTANCES))
    assert main(["batch", "predict", "--model", "helper", "--version", "v2", "--registry", registry,
                 "--input", str(data), "--output", str(tmp_path / "out")]) == 0
    lines = read_jsonl(tmp_path / "out" / "predictions" / "part-00000.jsonl")
    assert [line["prediction"] for line in lines] == expected
    capsys.readouterr()
    (tmp_path / "one.json").write_text(json.dumps({"instances": INSTANCES}))
    assert main(["local", "predict", "--package", str(wheel), "--model-dir", str(src / "model"),
                 "--prediction-class", CLASS, "--json-request", str(tmp_path / "one.json")]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"] == expected


def test_a_wheel_that_cannot_load_is_refused_at_deploy_time_on_every_door(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, wheel = _built("missing-module", tmp_path)  # its wheel leaves out scaler.py, which the pickle needs
    registry = str(tmp_path / "registry")
    assert _deploy(registry, "v1", "--package", str(wheel), "--model-dir", str(src / "model")) == 1
    err = capsys.readouterr().err
    assert "model/scaler.pkl needs scaler.Scaler, but module 'scaler' is neither in the package" in err
    shutil.copytree(src / "model", tmp_path / "bucket" / "model")
    shutil.copyfile(wheel, tmp_path / "bucket" / wheel.name)
    bucket = f"file://{(tmp_path / 'bucket').as_posix()}"
    assert _deploy(registry, "v1", "--origin", f"{bucket}/model", "--package-uris", f"{bucket}/{wheel.name}") == 1
    assert "model/scaler.pkl needs scaler.Scaler" in capsys.readouterr().err
    with running_node(registry=registry, poll_interval=0.2, wait_ready=False, admin_token=TOKEN,
                      allowed_prefixes=(bucket,)) as node:
        operation = _create_over_http(node, {"name": "v1", "deploymentUri": f"{bucket}/model",
                                             "packageUris": [f"{bucket}/{wheel.name}"], "predictionClass": CLASS})
    assert "model/scaler.pkl needs scaler.Scaler" in operation["error"]["message"]
    assert Registry(registry).list_models() == []  # nothing was published


def test_a_wheel_for_another_python_is_refused_with_its_tags(
    helper: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, wheel = helper
    other = tmp_path / "helper-0.1-cp37-cp37m-win_amd64.whl"
    shutil.copyfile(wheel, other)
    assert _deploy(str(tmp_path / "registry"), "v1", "--package", str(other), "--model-dir", str(src / "model")) == 1
    err = capsys.readouterr().err
    assert "helper-0.1-cp37-cp37m-win_amd64.whl is built for cp37-cp37m-win_amd64, which this Python (cp311" in err
    assert "deploy the sdist instead" in err
