"""Reading a batch job's inputs: URIs, folders and globs expanded to objects, then records.

Records are numbered deterministically: objects sorted by URI, then lines (JSON lines) or rows
(CSV with a header, numbered from 2; Parquet, numbered from 1) in order; whole files are one record
each. JSON lines and CSV may be gzip-compressed (a name ending in ``.gz``, or gzip's magic bytes).
"""

from __future__ import annotations

import base64
import csv
import fnmatch
import gzip
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cprsdk.errors import ConfigError, CprError
from cprsdk.storage import ObjectInfo, Store, open_store

__all__ = ["InputObject", "Record", "expand", "list_objects", "read_inputs", "records", "wire"]

_GLOB = set("*?[")
_GZIP_MAGIC = b"\x1f\x8b"
_SUFFIX_TYPES = {".json": "application/json", ".csv": "text/csv", ".npy": "application/x-npy", ".txt": "text/plain",
                 ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}


@dataclass(frozen=True)
class Record:
    ref: str  # "uri:line" or "uri" (files)
    payload: Any  # a JSON line's text, a CSV row (list of str), or a file's bytes
    content_type: str = ""


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


def _text(key: str, data: bytes) -> str:
    """An object's text, gunzipped when its name ends in .gz or its bytes start with gzip's magic."""
    if key.endswith(".gz") or data[:2] == _GZIP_MAGIC:
        data = gzip.decompress(data)
    return data.decode("utf-8")


def records(store: Store, key: str, data_format: str, key_field: str | None = None) -> Iterator[Record]:
    """The records of one object, numbered: lines (JSON lines), rows from 2 (CSV), rows from 1 (Parquet)."""
    uri = store.url(key)
    if data_format == "files":
        yield Record(uri, store.read(key).data, _SUFFIX_TYPES.get(Path(key).suffix.lower(), "application/octet-stream"))
        return
    if data_format == "parquet":
        yield from _parquet_rows(uri, store.read(key).data)
        return
    text = _text(key, store.read(key).data)
    if data_format == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield Record(f"{uri}:{number}", line)
        return
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None:
        return
    for number, row in enumerate(rows, start=2):
        if row:
            yield Record(f"{uri}:{number}", {"header": header, "row": row})


def _parquet_rows(uri: str, data: bytes) -> Iterator[Record]:
    """A Parquet object's rows, read a row group at a time, values made JSON-able (dates as ISO text)."""
    from cprsdk.batch.outputs import parquet_module

    parquet = parquet_module().ParquetFile(io.BytesIO(data))
    header = list(parquet.schema_arrow.names)
    number = 0
    for group in range(parquet.num_row_groups):
        for row in parquet.read_row_group(group).to_pylist():
            number += 1
            yield Record(f"{uri}:{number}", {"header": header, "row": [_plain(row[n]) for n in header]})


def _plain(value: Any) -> Any:
    """A Parquet value as JSON can hold it."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def read_inputs(objects: Sequence[InputObject], data_format: str,
                key_field: str | None) -> tuple[list[Record], list[dict[str, Any]]]:
    """Every record of ``objects``, in order, and the inputs that could not be read at all."""
    found_records: list[Record] = []
    unreadable: list[dict[str, Any]] = []
    for obj in objects:
        try:
            found_records.extend(records(obj.store, obj.info.key, data_format, key_field))
        except (UnicodeDecodeError, CprError, OSError, EOFError, ValueError) as exc:  # ValueError: bad Parquet
            unreadable.append({"input": obj.url, "errorType": type(exc).__name__, "message": str(exc)})
    return found_records, unreadable


def wire(record: Record) -> dict[str, Any]:
    if isinstance(record.payload, bytes):
        return {"ref": record.ref, "hex": record.payload.hex(), "content_type": record.content_type}
    if isinstance(record.payload, dict):
        return {"ref": record.ref, **record.payload}
    return {"ref": record.ref, "line": record.payload}
