"""A batch job's inputs: URIs, folders and globs expanded to objects (their records: ``shards.py``).

Records are numbered deterministically: objects sorted by URI, then lines (JSON lines) or rows
(CSV with a header, numbered from 2; Parquet, numbered from 1) in order; whole files are one record
each. JSON lines and CSV may be gzip-compressed (a name ending in ``.gz``, or gzip's magic bytes).
"""

from __future__ import annotations

import base64
import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cprsdk.errors import ConfigError
from cprsdk.storage import ObjectInfo, Store, open_store

__all__ = ["InputObject", "content_type", "expand", "list_objects", "plain"]

_GLOB = set("*?[")
_SUFFIX_TYPES = {".json": "application/json", ".csv": "text/csv", ".npy": "application/x-npy", ".txt": "text/plain",
                 ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}


@dataclass(frozen=True)
class InputObject:
    """One input object as listed: where it is, and what identifies its content (size, token)."""

    store: Store
    info: ObjectInfo

    @property
    def url(self) -> str:
        return self.store.url(self.info.key)

    def identity(self) -> list[Any]:
        """What a resumed job must find unchanged: URL, size, and the store's version token."""
        return [self.url, self.info.size, self.info.token]


def expand(uri: str) -> list[InputObject]:
    """Every object an input URI names: one object, a folder, or a glob."""
    if "://" not in uri:
        uri = os.path.abspath(uri)
    if any(c in _GLOB for c in uri):
        base = uri[: min(uri.index(c) for c in _GLOB if c in uri)].rpartition("/")[0]
        store = open_store(base)
        pattern = uri[len(base) + 1:]
        return [InputObject(store, i) for i in store.list() if fnmatch.fnmatch(i.key, pattern)]
    parent, _, leaf = uri.rstrip("/").rpartition("/")
    if parent:
        store = open_store(parent)
        info = store.stat(leaf)
        if info is not None:
            return [InputObject(store, info)]
    folder = open_store(uri)
    return [InputObject(folder, i) for i in folder.list()]


def list_objects(uris: Sequence[str]) -> list[InputObject]:
    """The objects of every input URI, in a deterministic order (by URL)."""
    objects: list[InputObject] = []
    for uri in uris:
        found = expand(uri)
        if not found:
            raise ConfigError(f"--input {uri} matches no object.", hint="Check the URI or the glob.")
        objects.extend(found)
    return sorted(objects, key=lambda o: o.url)


def plain(value: Any) -> Any:
    """A Parquet value as JSON can hold it."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def content_type(uri: str) -> str:
    """The content type of a whole-file record, by its name's suffix."""
    return _SUFFIX_TYPES.get(Path(uri).suffix.lower(), "application/octet-stream")
