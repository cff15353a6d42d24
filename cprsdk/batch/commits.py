"""A job's records under its ``--output``: the spec written once, shards committed by a marker
written last, and the CSV views joined from the committed shards (layout in ``jobs.py``)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from cprsdk.batch.scoring import csv_rows
from cprsdk.errors import ConfigError, NotFound
from cprsdk.storage import Store

__all__ = ["commit", "committed", "start", "write_views"]


def start(store: Store, spec: Any, job: str) -> None:
    """Write _job.json once; a rerun must describe the same job."""
    record = {"id": job, "spec": spec.to_json(), "fingerprint": spec.fingerprint(),
              "createTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        existing = json.loads(store.read("_job.json").data)
    except NotFound:
        store.write("_job.json", json.dumps(record, indent=2).encode(), if_absent=True)
        return
    if existing.get("fingerprint") != spec.fingerprint():
        raise ConfigError(f"{spec.output} holds another job's output (different inputs or format).",
                          hint="Use a new --output, or the same inputs and --data-format to resume that job.")


def committed(store: Store) -> dict[int, dict[str, Any]]:
    found = {}
    for info in store.list("_committed/"):
        name = info.key.rsplit("/", 1)[1]
        if name.startswith("part-") and name.endswith(".json"):
            found[int(name[5:10])] = json.loads(store.read(info.key).data)
    return found


def commit(store: Store, index: int, shard: dict[str, Any]) -> None:
    """The shard's files, its rows of the CSV views, then its commit marker, last."""
    name = f"part-{index:05d}"
    store.write(f"predictions/{name}.jsonl", shard["predictions"])
    store.write(f"errors/{name}.jsonl", shard["errors"])
    store.write(f"_views/{name}.results.csv", shard["results_csv"])
    store.write(f"_views/{name}.errors.csv", shard["errors_csv"])
    counts = {"succeeded": shard["succeeded"], "failed": shard["failed"]}
    store.write(f"_committed/{name}.json", json.dumps(counts).encode())


def write_views(store: Store, unreadable: list[dict[str, Any]], shards: Sequence[int]) -> None:
    """results.csv and errors.csv: a header, then each committed shard's rows, in shard order."""
    results = [b"input,output\n"] + [store.read(f"_views/part-{i:05d}.results.csv").data for i in shards]
    store.write("results.csv", b"".join(results))
    errors = [b"input,error_type,message\n",
              csv_rows([[u["input"], u["errorType"], u["message"]] for u in unreadable])]
    errors += [store.read(f"_views/part-{i:05d}.errors.csv").data for i in shards]
    store.write("errors.csv", b"".join(errors))
