"""A registry with a corrupt manifest, and names in management URLs that are not names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main
from cprsdk.registry.registry import Registry
from cprsdk.testing import RunningNode, running_node
from helpers import http, label_project, wait_until

TOKEN = "a-registry-faults-token-long-enough"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

def _project(root: Path, label: str) -> Path:
    return label_project(root, label, name=f"p_{label}")


def _deploy(project: Path, registry: str, version: str) -> None:
    assert main(["deploy", str(project), "--model", "iris", "--version", version, "--registry", registry,
                 "--format", "json"]) == 0


def _state(node: RunningNode, version: str) -> dict[str, Any]:
    answer = http(node.url, "GET", f"/v1/projects/p/models/iris/versions/{version}", headers=AUTH)
    body: dict[str, Any] = answer.json() if answer.status == 200 else {"state": "ABSENT"}
    return body


@pytest.fixture
def registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A file:// registry with iris v1 (good) and v2, whose manifest is then truncated on disk."""
    uri = f"file://{(tmp_path / 'registry').as_posix()}"
    _deploy(_project(tmp_path, "one"), uri, "v1")
    _deploy(_project(tmp_path, "two"), uri, "v2")
    manifest = tmp_path / "registry" / "models" / "iris" / "versions" / "v2.json"
    manifest.write_bytes(manifest.read_bytes()[:40])
    capsys.readouterr()
    return uri


def test_a_corrupt_manifest_fails_its_version_and_nothing_else(registry: str, tmp_path: Path) -> None:
    with running_node(registry=registry, poll_interval=0.2, admin_token=TOKEN) as node:
        assert node.client.predict("iris", [1], version="v1") == ["one"]
        broken = _state(node, "v2")
        assert broken["state"] == "FAILED"
        assert "models/iris/versions/v2.json" in broken["errorMessage"]
        assert "cprsdk versions delete v2 --model iris" in broken["errorMessage"]
        _deploy(_project(tmp_path, "three"), registry, "v3")  # later deploys keep appearing
        wait_until(lambda: _state(node, "v3")["state"] == "READY", timeout=120, what="iris/v3 READY")
        assert node.client.predict("iris", [1], version="v3") == ["three"]
        assert http(node.url, "GET", "/readyz").json()["versions"] == {
            "iris/v1": "READY", "iris/v2": "FAILED", "iris/v3": "READY"}
        assert main(["versions", "delete", "v2", "--model", "iris", "--registry", registry]) == 0
        wait_until(lambda: _state(node, "v2")["state"] == "ABSENT", what="iris/v2 to go")


def test_versions_list_and_describe_show_a_broken_manifest(registry: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["versions", "list", "--model", "iris", "--registry", registry]) == 0
    out, err = capsys.readouterr()
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:] if line.strip()}
    assert rows == {"v1": "PUBLISHED", "v2": "BROKEN"}
    assert "ERROR: The manifest of version 'v2' of model 'iris' is broken" in err and "Traceback" not in err
    assert main(["versions", "list", "--model", "iris", "--registry", registry, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["name"], v["state"]) for v in listed] == [("v1", "PUBLISHED"), ("v2", "BROKEN")]
    assert main(["versions", "describe", "v2", "--model", "iris", "--registry", registry]) == 1
    out, err = capsys.readouterr()
    described = json.loads(out)
    assert described["state"] == "BROKEN" and "models/iris/versions/v2.json" in described["errorMessage"]
    assert "is not valid JSON" in described["errorMessage"] and "Traceback" not in err
    assert [m.name for m in Registry(registry).list_versions("iris")] == ["v1"]


@pytest.mark.parametrize("name", ["..", "%00", "x" * 5000, "1abc", "a-b"])
def test_names_in_management_urls_are_validated(name: str, tmp_path: Path) -> None:
    with running_node(registry=str(tmp_path / "registry"), wait_ready=False, admin_token=TOKEN) as node:
        for method, path in (("GET", f"/v1/projects/p/models/{name}"),
                             ("GET", f"/v1/projects/p/models/{name}/versions"),
                             ("GET", f"/v1/projects/p/models/iris/versions/{name}"),
                             ("GET", f"/v1/projects/p/models/{name}/versions/v1"),
                             ("DELETE", f"/v1/projects/p/models/{name}"),
                             ("DELETE", f"/v1/projects/p/models/iris/versions/{name}"),
                             ("POST", f"/v1/projects/p/models/{name}/versions"),
                             ("POST", f"/v1/projects/p/models/iris/versions/{name}:setDefault"),
                             ("POST", "/v1/projects/p/models")):
            body = json.dumps({"name": name}).encode() if method == "POST" else None
            answer = http(node.url, method, path, body, AUTH)
            assert answer.status == 400, (method, path[:80], answer.data[:300])
            assert "name" in answer.json()["error"]["message"] and "is not valid" in answer.json()["error"]["message"]


def test_a_corrupt_model_record_hides_only_its_own_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = str(tmp_path / "registry")
    _deploy(_project(tmp_path, "good"), registry, "v1")
    Registry(registry).create_model("broken")
    (tmp_path / "registry" / "models" / "broken" / "model.json").write_text('{"defaultVersion": ')  # truncated
    assert [m.name for m in Registry(registry).list_models()] == ["iris"]
    assert main(["versions", "list", "--model", "broken", "--registry", registry]) == 1
    assert "models/broken/model.json is not valid JSON" in capsys.readouterr().err
    with running_node(registry=registry, poll_interval=0.2) as node:
        answer = http(node.url, "POST", "/v1/projects/p/models/iris:predict", b'{"instances": [1]}')
        assert answer.status == 200 and answer.json()["predictions"] == ["good"]
