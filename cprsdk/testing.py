"""Start a real prediction node in a test: ``cprsdk.testing.running_node`` and a pytest fixture.

    from cprsdk.testing import running_node

    def test_my_predictor(tmp_path):
        with running_node(model_dir="model", packages=["."], prediction_class="predictor.MyPredictor") as node:
            assert node.client.predict("default", [[1, 2, 3]]) == [...]

The node runs uvicorn in a background thread on a free loopback port, exactly as ``cprsdk serve``
would, and stops (draining its workers) when the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cprsdk.errors import CprError, NodeUnreachable, WaitTimeout
from cprsdk.node.client import NodeClient

__all__ = ["RunningNode", "free_port", "node_fixture", "running_node"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RunningNode:
    url: str
    client: NodeClient
    app: Any


def _wait_ready(client: NodeClient, deadline: float, thread: threading.Thread, *, ready: bool) -> None:
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise NodeUnreachable("The node stopped while starting; see the log above.")
        with contextlib.suppress(CprError):
            response = client.request("GET", "/readyz")
            if response.ok or not ready:
                return
            versions = (response.body or {}).get("versions", {})
            if versions and all(state == "FAILED" for state in versions.values()):
                return  # every version failed: let the test see the errors
        time.sleep(0.05)
    raise WaitTimeout("The node did not become ready in time.", hint="Raise ready_timeout, or see the log above.")


@contextlib.contextmanager
def running_node(*, registry: str | None = None, model_dir: str | Path | None = None,
                 packages: Sequence[str | Path] = (), prediction_class: str | None = None,
                 ready_timeout: float = 120.0, wait_ready: bool = True, **options: Any) -> Iterator[RunningNode]:
    """A node on a free port: single-version (model_dir, packages, prediction_class) or registry.

    It returns once ``/readyz`` answers 200 (or every version FAILED); with ``wait_ready=False``,
    as soon as the node answers at all (a node over an empty registry is never ready).
    """
    import uvicorn

    from cprsdk.config import load_settings
    from cprsdk.node.httplimits import limited_protocol
    from cprsdk.node.server import ServeOptions, build_node

    local = None
    if model_dir is not None:
        local = load_settings(".", {"model_dir": str(Path(model_dir).resolve()), "prediction_class": prediction_class,
                                    "packages": [str(Path(p).resolve()) for p in packages]})
    serve = replace(ServeOptions(port=free_port(), registry=registry, local=local), **options)
    node = build_node(serve)
    server = uvicorn.Server(uvicorn.Config(node, host="127.0.0.1", port=serve.port, log_level="warning",
                                           lifespan="on", http=limited_protocol(serve.http_limits)))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{serve.port}"
    client = NodeClient(url)
    try:
        _wait_ready(client, time.monotonic() + ready_timeout, thread, ready=wait_ready)
        yield RunningNode(url, client, node)
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def node_fixture(**kwargs: Any) -> Any:
    """A pytest fixture factory: ``node = cprsdk.testing.node_fixture(model_dir=..., ...)``."""
    import pytest

    @pytest.fixture
    def _node() -> Iterator[RunningNode]:
        with running_node(**kwargs) as node:
            yield node

    return _node
