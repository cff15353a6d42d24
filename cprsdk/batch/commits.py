"""A job's records under its ``--output``: the spec written once, shards committed by a marker
written last, and the CSV views joined from the committed shards (layout in ``jobs.py``)."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cprsdk.batch.scoring import csv_rows
from cprsdk.errors import AlreadyExists, ConfigError, NotFound
from cprsdk.storage import Store

__all__ = ["commit", "committed", "describe_changes", "start", "write_views"]


_SHAPING = (("prediction_class", "the prediction class"), ("data_format", "--data-format"),
            ("shard_size", "--shard-size"), ("key_field", "--key-field"), ("instance_type", "--instance-type"),
            ("included_fields", "--included-fields"), ("excluded_fields", "--excluded-fields"),
            ("output_format", "--output-format"), ("output_compression", "--output-compression"))
_JOB_FILES = ("predictions/", "errors/", "_views/", "_committed/")
_JOB_OBJECTS = ("results.csv", "errors.csv", "summary.json", "_STOP", "_job.json")


def start(store: Store, job: str, spec: dict[str, Any], fingerprint: dict[str, Any], *, restart: bool) -> None:
    """Write _job.json once; a rerun must find the same fingerprint (``restart``: discard and begin again)."""
    if restart:
        _discard(store)
    record = {"id": job, "spec": spec, "fingerprint": fingerprint,
              "createTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        existing = json.loads(store.read("_job.json").data)
    except NotFound:
        store.write("_job.json", json.dumps(record, indent=2).encode(), if_absent=True)
        return
    changes = describe_changes(existing.get("fingerprint") or {}, fingerprint)
    if changes:
        raise ConfigError(f"{store.uri} holds another job's output: {'; '.join(changes)}.",
                          hint="Rerun it unchanged to resume, or write to another output (batch predict --restart "
                               "starts over in this one).")


def _discard(store: Store) -> None:
    """Remove what a job wrote (and nothing else) from its output."""
    for prefix in _JOB_FILES:
        for info in store.list(prefix):
            store.delete(info.key)
    for key in _JOB_OBJECTS:
        store.delete(key)


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Sentences naming what differs between two job fingerprints (empty: the same job)."""
    changes = _object_changes(old.get("objects") or [], new.get("objects") or [])
    if old.get("version") != new.get("version"):
        changes.append(f"the version changed (digest {str(old.get('version'))[:12]} is now {str(new['version'])[:12]})")
    for key, flag in _SHAPING:
        if old.get(key) != new.get(key):
            changes.append(f"{flag} was {old.get(key)!r}, now {new.get(key)!r}")
    return changes


def _object_changes(old: list[list[Any]], new: list[list[Any]]) -> list[str]:
    before = {url: (size, token) for url, size, token in old}
    after = {url: (size, token) for url, size, token in new}
    changes = [f"input {url} is new" for url in after if url not in before]
    changes += [f"input {url} is gone" for url in before if url not in after]
    changes += [f"input {url} changed (size {before[url][0]} -> {after[url][0]})" for url in after
                if url in before and before[url] != after[url]]
    return changes


def committed(store: Store) -> dict[int, dict[str, Any]]:
    found = {}
    for info in store.list("_committed/"):
        name = info.key.rsplit("/", 1)[1]
        if name.startswith("part-") and name.endswith(".json"):
            found[int(name[5:10])] = json.loads(store.read(info.key).data)
    return found


def commit(store: Store, index: int, shard: dict[str, Any], suffixes: tuple[str, str] = (".jsonl", ".jsonl")) -> None:
    """The shard's files, its rows of the CSV views, then its commit marker, last.

    A shard without errors has no error files (those an earlier, killed attempt may have left are
    removed): most shards cost three writes, not five. Each is create-only first (no lock to take,
    see storage/_local.py); a file an earlier attempt left is overwritten.
    """
    name = f"part-{index:05d}"
    _put(store, f"predictions/{name}{suffixes[0]}", shard["predictions"])
    _put(store, f"_views/{name}.results.csv", shard["results_csv"])
    errors = ((f"errors/{name}{suffixes[1]}", shard["errors"]), (f"_views/{name}.errors.csv", shard["errors_csv"]))
    for key, data in errors:
        if shard["failed"]:
            _put(store, key, data)
        else:
            store.delete(key)
    counts = {"succeeded": shard["succeeded"], "failed": shard["failed"]}
    _put(store, f"_committed/{name}.json", json.dumps(counts).encode())


def _put(store: Store, key: str, data: bytes) -> None:
    try:
        store.write(key, data, if_absent=True)
    except AlreadyExists:
        store.write(key, data)


def write_views(store: Store, unreadable: list[dict[str, Any]], shards: Mapping[int, Mapping[str, Any]]) -> None:
    """results.csv and errors.csv: a header, then each committed shard's rows, in shard order
    (``shards``: the committed ones, with their counts).

    Each view is joined in a local temporary file, a shard at a time, then uploaded: a view as large
    as the input never sits in memory.
    """
    head = csv_rows([[u["input"], u["errorType"], u["message"]] for u in unreadable])
    for name, header, kind in (("results.csv", b"input,output\n", "results"),
                               ("errors.csv", b"input,error_type,message\n" + head, "errors")):
        with tempfile.TemporaryDirectory(prefix="cprsdk-views-") as folder:
            path = Path(folder) / name
            with open(path, "wb") as out:
                out.write(header)
                for i in sorted(shards):
                    if kind == "results" or shards[i].get("failed", 1):
                        out.write(store.read(f"_views/part-{i:05d}.{kind}.csv").data)
            store.upload_file(path, name)
