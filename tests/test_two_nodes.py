"""Several `cprsdk serve` nodes on one registry: the registry is the only source of truth.

Two node processes (each in a process group of its own) watch one file:// registry. A deploy
becomes READY on both, a delete drains it from both, and SIGKILL of one node leaves the other
answering predictions.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main
from cprsdk.testing import free_port
from helpers import cprsdk_serve, http, label_project, wait_until

TOKEN = "a-two-nodes-test-token-long-enough"

def _project(root: Path, label: str) -> Path:
    """A bare project whose predictions are ``label`` for every instance."""
    return label_project(root, label, folder=f"project-{label}", name=f"labels-{label.lower()}")


def _deploy(project: Path, registry: str, version: str) -> None:
    assert main(["deploy", str(project), "--model", "labels", "--version", version, "--registry", registry,
                 "--format", "json"]) == 0


def _states(url: str) -> dict[str, str]:
    """The node's ``/readyz`` versions map (``model/version`` -> state); it answers JSON when 503 too."""
    states: dict[str, str] = http(url, "GET", "/readyz").json(empty={}).get("versions", {})
    return states


def _wait_state(url: str, key: str, state: str | None) -> None:
    """Wait until the node at ``url`` lists ``key`` (``model/version``) in ``state`` (None: not listed)."""
    wait_until(lambda: _states(url).get(key) == state, what=f"{key} to be {state or 'gone'} on {url}")


def _predict(url: str, instances: list[Any], version: str | None = None) -> Any:
    """The predictions of POST :predict (the default version when ``version`` is None)."""
    path = "/v1/projects/p/models/labels" + (f"/versions/{version}" if version else "") + ":predict"
    answer = http(url, "POST", path, body=json.dumps({"instances": instances}).encode(),
                  headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status == 200, answer.data
    return answer.json()["predictions"]


@contextlib.contextmanager
def _node(registry: str, token_file: Path, log: Path) -> Iterator[tuple[str, int]]:
    """One `cprsdk serve` node on ``registry``: its URL and its process group id, once alive."""
    port = free_port()
    args = ["--registry", registry, "--port", str(port), "--poll-interval", "0.2",
            "--admin-token-file", str(token_file)]
    with cprsdk_serve(args, port=port, log=log, ready_path="/healthz") as proc:
        yield f"http://127.0.0.1:{port}", proc.pid


def test_two_nodes_follow_one_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = (tmp_path / "registry").as_uri()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    _deploy(_project(tmp_path, "A"), registry, "a")
    with _node(registry, token_file, tmp_path / "one.log") as (one, one_pgid), \
            _node(registry, token_file, tmp_path / "two.log") as (two, _):
        for url in (one, two):
            _wait_state(url, "labels/a", "READY")
            assert _predict(url, [1, 2]) == ["A", "A"]

        _deploy(_project(tmp_path, "B"), registry, "b")  # a new deploy: READY on both nodes
        for url in (one, two):
            _wait_state(url, "labels/b", "READY")
            assert _predict(url, [1], version="b") == ["B"]
            assert _predict(url, [1]) == ["A"]  # still the default

        assert main(["versions", "set-default", "b", "--model", "labels", "--registry", registry]) == 0
        assert main(["versions", "delete", "a", "--model", "labels", "--registry", registry]) == 0
        for url in (one, two):
            _wait_state(url, "labels/a", None)  # drained: no longer listed
            assert _predict(url, [1, 2, 3]) == ["B", "B", "B"]
            gone = http(url, "POST", "/v1/projects/p/models/labels/versions/a:predict", body=b'{"instances": [1]}')
            assert gone.status == 404, gone.data

        os.killpg(one_pgid, signal.SIGKILL)  # one node dies without draining
        wait_until(lambda: not _answers(one), what="the killed node to stop answering")
        assert [_predict(two, [n]) for n in range(5)] == [["B"]] * 5
        assert _states(two) == {"labels/b": "READY"}
    capsys.readouterr()


def _answers(url: str) -> bool:
    try:
        http(url, "GET", "/healthz", timeout=2)
    except OSError:
        return False
    return True
