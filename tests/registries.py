"""Registry fixtures (a pytest plugin, see conftest.py): one per kind of store in turn."""

from __future__ import annotations

import pytest

from cprsdk.registry.registry import Registry


@pytest.fixture
def registry(store_uri: str) -> Registry:
    """An empty registry on each store of tests/servers.py in turn: gcs, s3, memory, file."""
    return Registry(store_uri)
