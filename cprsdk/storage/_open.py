"""``open_store(uri)``: pick the backend for a URI."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

from cprsdk.storage._base import Store
from cprsdk.storage._errors import StorageError

__all__ = ["open_store"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SUPPORTED = "gs://BUCKET/PREFIX, s3://BUCKET/PREFIX, file:///PATH (or a plain path), memory://PREFIX"


def open_store(uri: str) -> Store:
    """The store rooted at ``uri``.

    ``gs://`` (and ``gcs://``) go through google-cloud-storage; everything else through fsspec:
    plain paths and ``file://`` as a local store, ``memory://``, ``s3://`` with s3fs installed, and
    any other protocol fsspec knows. Backends read their own configuration from the environment.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise StorageError(f"a storage URI is required, got {uri!r}.", hint=f"Use {_SUPPORTED}.")
    uri = uri.strip()
    match = _SCHEME.match(uri)
    if "::" in uri or (match and match.group(1).lower() not in ("gs", "gcs", "file", "memory", "s3", "s3a")):
        return _open_other(uri)
    if match is None:
        return _open_local(uri)
    scheme, rest = match.group(1).lower(), uri[match.end() :]
    if scheme in ("gs", "gcs"):
        return _open_gcs(uri, rest)
    if scheme == "file":
        return _open_local(rest)
    if scheme == "memory":
        return _open_memory(uri)
    return _open_s3(uri)


def _require(module: str, scheme: str, install: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise StorageError(
            f"{scheme}:// URIs need {module}, which is not installed.", hint=f"Install it with: {install}"
        ) from exc


def _open_local(path: str) -> Store:
    from cprsdk.storage._local import LocalStore

    if not path:
        raise StorageError("file:// URI names no folder; use file:///ABSOLUTE/PATH or a plain path.")
    return LocalStore(root=Path(os.path.abspath(os.path.expanduser(path))))


def _open_gcs(uri: str, rest: str) -> Store:
    _require("google.cloud.storage", "gs", "pip install google-cloud-storage")
    from cprsdk.storage._gcs import GcsStore

    bucket, _, root = rest.partition("/")
    if not bucket:
        raise StorageError(f"{uri!r} names no bucket; use gs://BUCKET/PREFIX.")
    return GcsStore(bucket=bucket, root=root.strip("/"))


def _open_memory(uri: str) -> Store:
    from fsspec.core import url_to_fs  # type: ignore[import-untyped]

    from cprsdk.storage._fsspec import MemoryStore

    fs, root = url_to_fs(uri)
    root = root.strip("/")
    return MemoryStore(fs=fs, root="/" + root, uri="memory://" + root)


def _open_s3(uri: str) -> Store:
    _require("s3fs", "s3", "pip install 'cprsdk[s3]'")
    from fsspec.core import url_to_fs

    from cprsdk.storage._s3 import S3Store

    fs, root = url_to_fs(uri, use_listings_cache=False)
    if not root.strip("/"):
        raise StorageError(f"{uri!r} names no bucket; use s3://BUCKET/PREFIX.")
    return S3Store(fs=fs, root=root.strip("/"), uri="s3://" + root.strip("/"))


def _open_other(uri: str) -> Store:
    import fsspec  # type: ignore[import-untyped]
    from fsspec.core import url_to_fs

    from cprsdk.storage._fsspec import FsspecStore

    for scheme in re.findall(r"(?:^|::)([A-Za-z][A-Za-z0-9+.-]*)://", uri):
        try:
            fsspec.get_filesystem_class(scheme.lower())
        except ImportError as exc:
            raise StorageError(f"{scheme}:// URIs need a backend that is not installed: {exc}") from exc
        except ValueError as exc:
            raise StorageError(
                f"unknown storage scheme {scheme!r} in {uri!r}.",
                hint=f"Use {_SUPPORTED}, or a protocol fsspec knows (fsspec.available_protocols()).",
            ) from exc
    fs, root = url_to_fs(uri)
    return FsspecStore(fs=fs, root=root, uri=uri.rstrip("/"))
