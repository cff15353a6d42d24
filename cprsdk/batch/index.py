"""The jobs this machine started, by id (``cprsdk batch list|status|stop|results``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cprsdk.batch.commits import committed
from cprsdk.errors import ConfigError, NotFound
from cprsdk.storage import open_store

__all__ = ["job_status", "list_jobs", "remember", "results_csv", "stop_job"]


def index_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "cprsdk" / "jobs"


def remember(job: str, output: str) -> None:
    folder = index_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{job}.json").write_text(json.dumps({"id": job, "output": output}))


def output_of(job: str) -> str:
    path = index_dir() / f"{job}.json"
    if not path.is_file():
        raise ConfigError(f"No job {job!r} on this machine.", hint="List them with `cprsdk batch list`.")
    return str(json.loads(path.read_text())["output"])


def job_status(job: str) -> dict[str, Any]:
    output = output_of(job)
    store = open_store(output)
    try:
        return json.loads(store.read("summary.json").data)  # type: ignore[no-any-return]
    except NotFound:
        return {"job": job, "state": "RUNNING", "committed_shards": len(committed(store)), "output": output}


def list_jobs() -> list[dict[str, Any]]:
    folder = index_dir()
    return [job_status(p.stem) for p in sorted(folder.glob("job-*.json"))] if folder.is_dir() else []


def stop_job(job: str) -> None:
    open_store(output_of(job)).write("_STOP", b"stop\n")


def results_csv(job: str) -> bytes:
    return open_store(output_of(job)).read("results.csv").data
