"""A node serving a registry: isolation between versions, lifecycle, defaults, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main
from cprsdk.errors import CprError
from cprsdk.node.client import NodeClient
from cprsdk.testing import RunningNode, free_port, running_node
from helpers import LABEL_PREDICTOR, PROJECTS, cprsdk_serve, http, wait_until


def _project(root: Path, name: str, predictor: str, cls: str = "MyPredictor") -> Path:
    """A bare project whose module is always `predictor`: ``predictor`` is its source, ``cls`` its class."""
    project = root / name
    (project / "model").mkdir(parents=True)
    (project / "model" / "weights.txt").write_text(name)
    (project / "predictor.py").write_text(predictor)
    (project / "cprsdk.toml").write_text(f'name = "{name}"\nprediction_class = "predictor.{cls}"\n')
    return project


TWIN = LABEL_PREDICTOR

# A predictor whose from_path raises, as the `predictor` module of one more version.
FAILS = (PROJECTS / "behaviours" / "from_path_raises.py").read_text()


def _deploy(project: Path, registry: str, model: str, version: str, *extra: str) -> None:
    assert main(["deploy", str(project), "--model", model, "--version", version, "--registry", registry,
                 "--format", "json", *extra]) == 0


TOKEN = "a-registry-test-token-long-enough"


def _state(node: RunningNode, model: str, version: str) -> dict[str, Any]:
    """The node's Version resource (a read that needs the admin token), or state ABSENT."""
    answer = http(node.url, "GET", f"/v1/projects/p/models/{model}/versions/{version}",
                  headers={"Authorization": f"Bearer {TOKEN}"})
    body: dict[str, Any] = answer.json() if answer.status == 200 else {"state": "ABSENT"}
    return body


def test_versions_with_the_same_module_names_stay_isolated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = str(tmp_path / "registry")
    _deploy(_project(tmp_path, "twin-a", TWIN.format(label="A")), registry, "twins", "a")
    _deploy(_project(tmp_path, "twin-b", TWIN.format(label="B")), registry, "twins", "b")
    _deploy(_project(tmp_path, "broken", FAILS, "FromPathRaises"), registry, "twins", "broken",
            "--skip-load-check")  # published anyway, so that the node's FAILED state is what is tested
    with running_node(registry=registry, poll_interval=0.2, admin_token=TOKEN) as node:
        wait_until(lambda: _state(node, "twins", "broken")["state"] == "FAILED", what="twins/broken FAILED")
        assert node.client.predict("twins", [1], version="a") == ["A"]
        assert node.client.predict("twins", [1], version="b") == ["B"]
        assert node.client.predict("twins", [1]) == ["A"]  # the first version is the default
        failed = _state(node, "twins", "broken")
        assert "raised FileNotFoundError: model.joblib is missing from the model directory" in failed["errorMessage"]

        assert main(["versions", "set-default", "b", "--model", "twins", "--registry", registry]) == 0
        wait_until(lambda: node.client.predict("twins", [1]) == ["B"], what="the default to become b")

        assert main(["versions", "delete", "a", "--model", "twins", "--registry", registry]) == 0
        wait_until(lambda: _state(node, "twins", "a")["state"] == "ABSENT", what="twins/a to go")
        assert node.client.predict("twins", [1], version="b") == ["B"]
    capsys.readouterr()


def test_deploy_wait_sees_ready_and_predict_cli_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = str(tmp_path / "registry")
    project = _project(tmp_path, "waited", TWIN.format(label="W"))
    with running_node(registry=registry, poll_interval=0.2, wait_ready=False) as node:  # empty: never ready
        assert main(["deploy", str(project), "--model", "w", "--version", "v1", "--registry", registry,
                     "--wait", "--endpoint", node.url, "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "READY"
        (tmp_path / "rows.jsonl").write_text("[1]\n[2]\n")
        assert main(["predict", "--endpoint", node.url, "--model", "w", "--json-instances",
                     str(tmp_path / "rows.jsonl")]) == 0
        assert json.loads(capsys.readouterr().out) == {"predictions": ["W", "W"]}
        assert main(["predict", "--endpoint", node.url, "--model", "nope", "--json-instances",
                     str(tmp_path / "rows.jsonl")]) == 1
        assert json.loads(capsys.readouterr().out)["error"]["code"] == 404


def test_deploy_wait_with_the_token_reports_why_a_version_failed(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    registry = str(tmp_path / "registry")
    (tmp_path / "token.txt").write_text(TOKEN + "\n")
    project = _project(tmp_path, "broken", FAILS, "FromPathRaises")
    with running_node(registry=registry, poll_interval=0.2, wait_ready=False, admin_token=TOKEN) as node:
        assert main(["deploy", str(project), "--model", "w", "--version", "v1", "--registry", registry, "--wait",
                     "--endpoint", node.url, "--admin-token-file", str(tmp_path / "token.txt"),
                     "--skip-load-check"]) == 1
        assert "ERROR: " in capsys.readouterr().err
        assert "model.joblib is missing" in _state(node, "w", "v1")["errorMessage"]
        assert main(["deploy", str(project), "--model", "w", "--version", "v2", "--registry", registry,
                     "--wait", "--endpoint", node.url, "--skip-load-check"]) == 1  # no token: /readyz's state
        assert "pass --admin-token-file FILE to see why" in capsys.readouterr().err


def _ready(client: NodeClient) -> bool:
    try:
        return bool(client.request("GET", "/readyz").ok)
    except CprError:
        return False


def test_sigterm_drains_in_flight_requests_and_exits_zero(behaviours: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    registry = str(tmp_path / "registry")
    _deploy(behaviours, registry, "slow", "v1", "--prediction-class", "hangs.Hangs")
    capsys.readouterr()
    port = free_port()
    log = tmp_path / "serve.log"
    with cprsdk_serve(["--registry", registry, "--port", str(port)], port=port, log=log) as proc:
        client = NodeClient(f"http://127.0.0.1:{port}")
        answers: list[Any] = []
        slow = threading.Thread(target=lambda: answers.append(client.predict("slow", [2])))
        slow.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert not _ready(client)  # not ready at once: 503, or no longer accepting connections
        slow.join(30)
        assert answers == [["woke"]], log.read_text()
        assert proc.wait(60) == 0, log.read_text()


def _with_requirements(root: Path, name: str, dependencies: list[str]) -> Path:
    project = _project(root, name, TWIN.format(label=name))
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "0.1"\ndependencies = {json.dumps(dependencies)}\n\n'
        '[tool.setuptools]\npy-modules = ["predictor"]\n\n'
        '[tool.cprsdk]\nprediction_class = "predictor.MyPredictor"\n')
    (project / "cprsdk.toml").unlink()
    return project


def test_declared_requirements_are_met_or_the_version_fails_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = str(tmp_path / "registry")
    _deploy(_with_requirements(tmp_path, "needs_numpy", ["numpy>=1.0"]), registry, "reqs", "met")
    # The deploy checks install the requirement from a wheelhouse that the node, later, does not have.
    ghost = _project(tmp_path, "ghost", TWIN.format(label="ghost"))
    (ghost / "pyproject.toml").write_text('[project]\nname = "cprsdk-test-no-such-distribution"\nversion = "9.9.9"\n'
                                          '[tool.setuptools]\npy-modules = []\n')
    from cprsdk.packaging.build import build_distribution

    build_distribution(ghost, "wheel", tmp_path / "wheelhouse")
    with monkeypatch.context() as deploying:
        deploying.setenv("PIP_FIND_LINKS", f"{os.environ.get('PIP_FIND_LINKS', '')} {tmp_path / 'wheelhouse'}".strip())
        _deploy(_with_requirements(tmp_path, "needs_ghost", ["cprsdk-test-no-such-distribution==9.9.9"]),
                registry, "reqs", "unmet")
    monkeypatch.setenv("CPRSDK_CACHE_DIR", str(tmp_path / "node-cache"))
    capsys.readouterr()
    with running_node(registry=registry, poll_interval=0.2, admin_token=TOKEN) as node:
        wait_until(lambda: _state(node, "reqs", "unmet")["state"] == "FAILED", timeout=180, what="reqs/unmet FAILED")
        assert node.client.predict("reqs", [1], version="met") == ["needs_numpy"]
        message = _state(node, "reqs", "unmet")["errorMessage"]
        assert "requires cprsdk-test-no-such-distribution==9.9.9, which could not be installed" in message
