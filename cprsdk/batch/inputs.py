"""Reading a batch job's inputs: URIs, folders and globs expanded to objects, then records.

Records are numbered deterministically: objects sorted by URI, then lines (JSON lines) or rows
(CSV with a header, numbered from 2) in order; whole files are one record each.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cprsdk.errors import ConfigError, CprError
from cprsdk.storage import Store, open_store

__all__ = ["Record", "expand", "read_inputs", "records", "wire"]

_GLOB = set("*?[")
_SUFFIX_TYPES = {".json": "application/json", ".csv": "text/csv", ".npy": "application/x-npy", ".txt": "text/plain",
                 ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}


@dataclass(frozen=True)
class Record:
    ref: str  # "uri:line" or "uri" (files)
    payload: Any  # a JSON line's text, a CSV row (list of str), or a file's bytes
    content_type: str = ""


def expand(uri: str) -> list[tuple[Store, str]]:
    """(store, key) of every object an input URI names: one object, a folder, or a glob."""
    if "://" not in uri:
        uri = os.path.abspath(uri)
    if any(c in _GLOB for c in uri):
        base = uri[: min(uri.index(c) for c in _GLOB if c in uri)].rpartition("/")[0]
        store = open_store(base)
        pattern = uri[len(base) + 1:]
        return [(store, i.key) for i in store.list() if fnmatch.fnmatch(i.key, pattern)]
    parent, _, leaf = uri.rstrip("/").rpartition("/")
    if parent:
        store = open_store(parent)
        if store.stat(leaf) is not None:
            return [(store, leaf)]
    folder = open_store(uri)
    return [(folder, i.key) for i in folder.list()]


def records(store: Store, key: str, data_format: str, key_field: str | None) -> Iterator[Record]:
    uri = store.url(key)
    if data_format == "files":
        yield Record(uri, store.read(key).data, _SUFFIX_TYPES.get(Path(key).suffix.lower(), "application/octet-stream"))
        return
    text = store.read(key).data.decode("utf-8")
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


def read_inputs(uris: Sequence[str], data_format: str,
                key_field: str | None) -> tuple[list[Record], list[dict[str, Any]]]:
    """Every record, in a deterministic order, and the inputs that could not be read at all."""
    found_records: list[Record] = []
    unreadable: list[dict[str, Any]] = []
    objects: list[tuple[Store, str]] = []
    for uri in uris:
        found = expand(uri)
        if not found:
            raise ConfigError(f"--input {uri} matches no object.", hint="Check the URI or the glob.")
        objects.extend(found)
    for store, key in sorted(objects, key=lambda item: item[0].url(item[1])):
        try:
            found_records.extend(records(store, key, data_format, key_field))
        except (UnicodeDecodeError, CprError, OSError) as exc:
            unreadable.append({"input": store.url(key), "errorType": type(exc).__name__, "message": str(exc)})
    return found_records, unreadable


def wire(record: Record) -> dict[str, Any]:
    if isinstance(record.payload, bytes):
        return {"ref": record.ref, "hex": record.payload.hex(), "content_type": record.content_type}
    if isinstance(record.payload, dict):
        return {"ref": record.ref, **record.payload}
    return {"ref": record.ref, "line": record.payload}
