"""Batch prediction jobs: every input record ends as a prediction or an error line.

Layout under the job's ``--output`` URI (any store :func:`cprsdk.storage.open_store` opens)::

    _job.json                   the job's spec, written once (a rerun with the same --output resumes)
    predictions/part-NNNNN.jsonl  {"instance": ..., "prediction": ...} (or {"key": ..., "prediction": ...})
    errors/part-NNNNN.jsonl       {"input": "data.jsonl:17", "errorType": ..., "message": ...} (shards with errors)
    _views/part-NNNNN.*.csv       the shard's rows of the CSV views (encoded by the worker)
    _committed/part-NNNNN.json    the shard's commit marker, written last, with its counts
    results.csv, errors.csv     the CSV views (input reference, output) / (input reference, type, message)
    summary.json                succeeded / failed / incomplete, adding up to the input records
    _STOP                       asks a running job to stop after the shards in flight

Modules: ``inputs`` (objects and records), ``scoring`` (a shard, in a worker), ``engines`` (where
shards run), ``commits`` (the files above), ``index`` (jobs by id on this machine).

Records are numbered deterministically (inputs sorted, then lines or rows in order) and cut into
shards of ``shard_size``; a shard is committed by its marker, so a stopped or killed job resumes
by recomputing only the shards without one, and never duplicates a line.
"""

from __future__ import annotations

import collections
import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cprsdk.batch import outputs
from cprsdk.batch.commits import commit, committed, start, write_views
from cprsdk.batch.engines import Engine
from cprsdk.batch.inputs import InputObject, list_objects
from cprsdk.batch.instances import InstanceConfig
from cprsdk.batch.scoring import lost_record, merge_shards
from cprsdk.batch.scratch import scratch_folder
from cprsdk.batch.shards import count, plan, read_shard
from cprsdk.batch.watchdog import timed_out_message
from cprsdk.errors import WorkerLost
from cprsdk.runtime.resolved import ResolvedVersion
from cprsdk.storage import Store, open_store

__all__ = ["JobSpec", "JobSummary", "job_id", "run_job"]


@dataclass(frozen=True)
class JobSpec:
    """Everything a job needs; it is written to ``_job.json`` and must match on a rerun."""

    inputs: tuple[str, ...]
    output: str
    version: ResolvedVersion
    data_format: str = "jsonl"  # jsonl | csv | parquet | files
    batch_size: int = 64
    workers: int = 1
    shard_size: int = 1000
    max_error_rate: float = 1.0
    key_field: str | None = None
    instance_type: str | None = None  # object | array | None (as the input gives it); see instances.py
    included_fields: tuple[str, ...] = ()
    excluded_fields: tuple[str, ...] = ()
    output_format: str = "jsonl"  # jsonl | parquet
    output_compression: str = "none"  # none | gzip
    record_timeout: float | None = None  # seconds one predict call may take (None: no limit)
    engine: str = "local"  # local | dask
    scheduler: str | None = None
    source: dict[str, Any] = field(default_factory=dict)  # model/version or local paths, for people

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["version"] = self.version.to_json()
        stored: dict[str, Any] = json.loads(json.dumps(data))
        return stored  # tuples become lists, as _job.json holds them

    def fingerprint(self, objects: Sequence[InputObject]) -> dict[str, Any]:
        """What a resumed run must find unchanged: the exact input objects, the version, the output's shape."""
        return {"objects": [o.identity() for o in objects], "version": self.version.digest,
                "prediction_class": self.version.prediction_class, "data_format": self.data_format,
                "shard_size": self.shard_size, "key_field": self.key_field, **self._output_shape()}

    def _output_shape(self) -> dict[str, Any]:
        """The settings beyond the first ones that shape the output (absent while at their defaults, so that
        the fingerprints of jobs started before they existed still match)."""
        shape = {"instance_type": self.instance_type, "included_fields": list(self.included_fields),
                 "excluded_fields": list(self.excluded_fields), "output_format": self.output_format,
                 "output_compression": self.output_compression}
        defaults: dict[str, Any] = {"instance_type": None, "included_fields": [], "excluded_fields": [],
                                    "output_format": "jsonl", "output_compression": "none"}
        return {k: v for k, v in shape.items() if v != defaults[k]}

    def check(self) -> None:
        """Refuse settings that cannot work together, before anything is read or written."""
        InstanceConfig.of(self.to_json()).check(self.data_format)
        outputs.check(self.to_json())
        if self.data_format == "parquet":
            outputs.check({"output_format": "parquet"})  # reading Parquet needs pyarrow too

    def worker_payload(self) -> dict[str, Any]:
        """What a worker needs to score a shard (sent with every shard)."""
        return {**self.to_json(), "prediction_class": self.version.prediction_class,
                "model_dir": str(self.version.model_dir), "sites": [str(s) for s in self.version.sites],
                "digest": self.version.digest}


@dataclass(frozen=True)
class JobSummary:
    job: str
    state: str  # SUCCEEDED | FAILED | STOPPED | RUNNING
    total: int
    succeeded: int
    failed: int
    incomplete: int
    shards: int
    committed_shards: int
    output: str
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def job_id(output: str) -> str:
    """A job is named by its output: the same --output is the same job."""
    return "job-" + hashlib.sha256(output.rstrip("/").encode()).hexdigest()[:12]


def run_job(spec: JobSpec, *, progress: Callable[[int, int], None] = lambda done, total: None,
            restart: bool = False) -> JobSummary:
    """Run (or resume) a job to the end, or until it is asked to stop.

    A rerun resumes only if the inputs, the version and the output's shape are unchanged; else it
    refuses, naming what changed. ``restart`` discards the job's earlier output and starts over.
    ``progress(done, total)`` is called with counts of records, after each committed shard.
    The inputs are scanned once for where shards begin; records are read shard by shard, by the
    workers with the local engine (see ``shards.py``), so memory does not grow with the input.
    """
    spec.check()
    store = open_store(spec.output)
    objects = list_objects(spec.inputs)
    start(store, job_id(spec.output), spec.to_json(), spec.fingerprint(objects), restart=restart)
    store.delete("_STOP")
    staging = scratch_folder("staging")
    engine = Engine(spec)  # its workers load the version while the inputs are scanned
    try:
        planned = plan(objects, spec.data_format, spec.shard_size, staging)
        done = committed(store)
        stopped = _score(store, spec, engine, planned.shards, done, lambda n: progress(n, planned.total))
    finally:
        engine.close()
        shutil.rmtree(staging, ignore_errors=True)
    return _finish(store, spec, planned.total + len(planned.unreadable), len(planned.shards), done,
                   planned.unreadable, stopped)


_Shards = list[list[dict[str, Any]]]


def _score(store: Store, spec: JobSpec, engine: Engine, shards: _Shards, done: dict[int, dict[str, Any]],
           progress: Callable[[int], None]) -> bool:
    """Score and commit every shard not committed yet, a few in flight per worker; True if asked to stop."""
    payload = spec.worker_payload()
    pending: dict[Any, int] = {}
    todo = collections.deque(i for i in range(len(shards)) if i not in done)
    scored = sum(count(shards[i]) for i in done if i < len(shards))  # records in committed shards
    progress(scored)
    stopped = False
    window = max(1, spec.workers) * 2
    with _Committer(store, outputs.suffixes(payload)) as committer:
        while todo or pending or committer.writing:
            while todo and len(pending) < window and committer.writing < window and not stopped:
                index = todo.popleft()
                pending[engine.submit_shard(payload, shards[index])] = index
            if pending:
                for index, shard in _next_finished(engine, payload, shards, pending):
                    committer.submit(index, shard)
            for index, counts in committer.collect(wait=not pending):
                done[index] = counts
                scored += count(shards[index])
            progress(scored)
            if not stopped and store.exists("_STOP"):
                stopped = True
                todo.clear()
    return stopped


class _Committer:
    """Shards committed by a few threads: a write mostly waits (on fsync, or on the network), and
    meanwhile the job keeps its workers fed. A failed write is raised by :meth:`collect`; leaving
    the block waits for the writes under way (each is atomic), so none is cut short."""

    def __init__(self, store: Store, suffixes: tuple[str, str], threads: int = 4) -> None:
        self._store, self._suffixes = store, suffixes
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="cprsdk-commit")
        self._running: dict[Future[None], tuple[int, dict[str, Any]]] = {}

    @property
    def writing(self) -> int:
        return len(self._running)

    def submit(self, index: int, shard: dict[str, Any]) -> None:
        counts = {"succeeded": shard["succeeded"], "failed": shard["failed"]}
        self._running[self._pool.submit(commit, self._store, index, shard, self._suffixes)] = (index, counts)

    def collect(self, *, wait: bool) -> list[tuple[int, dict[str, Any]]]:
        """The shards committed since the last call (``wait``: wait for one first, if any is being written)."""
        if wait and self._running:
            futures.wait(self._running, return_when=futures.FIRST_COMPLETED)
        finished = [future for future in self._running if future.done()]
        for future in finished:
            future.result()
        return [self._running.pop(future) for future in finished]

    def __enter__(self) -> _Committer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)


def _next_finished(engine: Engine, payload: dict[str, Any], shards: _Shards,
                   pending: dict[Any, int]) -> list[tuple[int, dict[str, Any]]]:
    """The oldest shard in flight, scored; if its worker died, every shard in flight, each scored alone."""
    future = next(iter(pending))
    index = pending.pop(future)
    try:
        return [(index, engine.result(future))]
    except WorkerLost:  # every shard in flight is lost with the worker: rerun each alone
        lost = [index, *pending.values()]
        pending.clear()
        engine.restart()
        return [(i, score_alone(engine, payload, read_shard(shards[i]))) for i in lost]


def score_alone(engine: Engine, payload: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Score ``records`` with nothing else in flight; if the worker dies, bisect down to the record at fault.

    That record becomes an error line naming how the worker exited (``WorkerExited``), or that it ran
    past ``--record-timeout`` (``RecordTimeout``); the others are scored as usual.
    """
    future = engine.submit(payload, records)
    try:
        return engine.result(future)  # type: ignore[no-any-return]
    except WorkerLost as exc:
        hung = engine.timed_out(future)
        engine.restart()
        if len(records) == 1 and hung:
            return lost_record(payload, records[0]["ref"], timed_out_message(payload["record_timeout"]),
                               "RecordTimeout")
        if len(records) == 1:
            return lost_record(payload, records[0]["ref"], f"{exc.message} while predicting this record")
        middle = len(records) // 2
        return merge_shards(payload, score_alone(engine, payload, records[:middle]),
                            score_alone(engine, payload, records[middle:]))


def _finish(store: Store, spec: JobSpec, total: int, shards: int, done: dict[int, dict[str, Any]],
            unreadable: list[dict[str, Any]], stopped: bool) -> JobSummary:
    succeeded = sum(d["succeeded"] for d in done.values())
    failed = sum(d["failed"] for d in done.values()) + len(unreadable)
    incomplete = total - succeeded - failed
    rate = failed / total if total else 0.0
    if stopped or incomplete:
        state, message = "STOPPED", "stopped before every shard was committed; run the same command to resume"
    elif total and not succeeded:
        state, message = "FAILED", f"every record failed ({failed} of {total}); see errors.csv"
    elif rate > spec.max_error_rate:
        state = "FAILED"
        message = f"{failed} of {total} records failed ({rate:.2%}), over --max-error-rate {spec.max_error_rate:g}"
    else:
        state, message = "SUCCEEDED", ""
    write_views(store, unreadable, done)
    summary = JobSummary(job_id(spec.output), state, total, succeeded, failed, incomplete, shards, len(done),
                         spec.output, message)
    store.write("summary.json", json.dumps(summary.to_json(), indent=2).encode())
    return summary
