"""Real storage servers for tests, as pytest fixtures (registered in conftest.py).

- ``gcs_emulator``: gcp-storage-emulator (in memory) on a free loopback port, for the session;
  ``gcs_uri`` points STORAGE_EMULATOR_HOST at it and makes a fresh bucket per test.
- ``moto_endpoint``: moto's S3 server on a free loopback port, for the session; ``s3_uri`` sets
  AWS_ENDPOINT_URL and test credentials, clears s3fs's instance cache and makes a fresh bucket.
- ``memory_uri``: ``memory://`` with fsspec's in-memory filesystem emptied before and after.
- ``file_uri``: a ``file://`` folder under tmp_path.
- ``store_uri``: each of the four in turn (parametrized, ids gcs/s3/memory/file).
"""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cprsdk.testing import free_port
from helpers import anonymous_credentials

# Import the client and server stacks (and the stdlib parts they need, ssl and asyncio above all)
# before any test runs. tests/scenario.py's autouse `_forget_user_modules` drops every module first
# imported during a test unless it lives in site-packages, which includes the standard library; a
# second copy of `ssl` then makes aiohttp (under s3fs) fail with "ssl should be SSLContext".
for _stack in ("aiohttp", "boto3", "fsspec.asyn", "gcp_storage_emulator.server", "google.cloud.storage",
               "moto.server", "s3fs"):
    importlib.import_module(_stack)

STORE_KINDS = ["gcs", "s3", "memory", "file"]


def gcs_client() -> Any:
    """A google-cloud-storage client for the emulator that STORAGE_EMULATOR_HOST names; close it after use."""
    import google.cloud.storage as storage  # type: ignore[import-untyped]

    return storage.Client(project="cprsdk-test", credentials=anonymous_credentials())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of an in-memory gcp-storage-emulator (it ignores ifGenerationMatch)."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def gcs_uri(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    bucket = unique("cprsdk-test")
    client = gcs_client()
    client.create_bucket(bucket)
    client.close()
    return f"gs://{bucket}/root"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of moto's S3 server (it honours If-None-Match and If-Match)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_uri(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import boto3
    import s3fs

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = unique("cprsdk-test")
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    client.close()
    yield f"s3://{bucket}/root"
    s3fs.S3FileSystem.clear_instance_cache()


def _clear_memory() -> None:
    from fsspec.implementations.memory import MemoryFileSystem  # type: ignore[import-untyped]

    MemoryFileSystem.store.clear()
    MemoryFileSystem.pseudo_dirs[:] = [""]


@pytest.fixture
def memory_uri() -> Iterator[str]:
    _clear_memory()
    yield f"memory://{unique('test')}/root"
    _clear_memory()


@pytest.fixture
def file_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"file://{tmp_path_factory.mktemp('store').as_posix()}/root"


@pytest.fixture(params=STORE_KINDS)
def store_uri(request: pytest.FixtureRequest) -> str:
    """The root URI of an empty store of each kind in turn."""
    return str(request.getfixturevalue(f"{request.param}_uri"))
