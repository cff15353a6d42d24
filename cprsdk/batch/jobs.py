"""Batch prediction jobs: every input record ends as a prediction or an error line.

Layout under the job's ``--output`` URI (any store :func:`cprsdk.storage.open_store` opens)::

    _job.json                   the job's spec, written once (a rerun with the same --output resumes)
    predictions/part-NNNNN.jsonl  {"instance": ..., "prediction": ...} (or {"key": ..., "prediction": ...})
    errors/part-NNNNN.jsonl       {"input": "data.jsonl:17", "errorType": ..., "message": ...}
    _views/part-NNNNN.*.csv       the shard's rows of the CSV views (encoded by the worker)
    _committed/part-NNNNN.json    the shard's commit marker, written last, with its counts
    results.csv, errors.csv     the CSV views (input reference, output) / (input reference, type, message)
    summary.json                succeeded / failed / incomplete, adding up to the input records
    _STOP                       asks a running job to stop after the shards in flight

Records are numbered deterministically (inputs sorted, then lines or rows in order) and cut into
shards of ``shard_size``; a shard is committed by its marker, so a stopped or killed job resumes
by recomputing only the shards without one, and never duplicates a line.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cprsdk.errors import ConfigError, CprError, NotFound
from cprsdk.storage import Store, open_store

__all__ = ["JobSpec", "JobSummary", "job_id", "job_status", "list_jobs", "run_job", "sources_from_registry", "stop_job"]

_GLOB = set("*?[")
_SUFFIX_TYPES = {".json": "application/json", ".csv": "text/csv", ".npy": "application/x-npy", ".txt": "text/plain",
                 ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}


@dataclass(frozen=True)
class JobSpec:
    """Everything a job needs; it is written to ``_job.json`` and must match on a rerun."""

    inputs: tuple[str, ...]
    output: str
    prediction_class: str
    model_dir: str
    sites: tuple[str, ...]
    data_format: str = "jsonl"  # jsonl | csv | files
    batch_size: int = 64
    workers: int = 1
    shard_size: int = 1000
    max_error_rate: float = 1.0
    key_field: str | None = None
    engine: str = "local"  # local | dask
    scheduler: str | None = None
    source: dict[str, Any] = field(default_factory=dict)  # model/version or local paths, for people

    def fingerprint(self) -> dict[str, Any]:
        keep = ("inputs", "data_format", "shard_size", "key_field", "prediction_class")
        stored: dict[str, Any] = json.loads(json.dumps({k: v for k, v in asdict(self).items() if k in keep}))
        return stored  # as _job.json holds it (tuples become lists)


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


# ---------------------------------------------------------------- reading inputs


@dataclass(frozen=True)
class _Record:
    ref: str  # "uri:line" or "uri" (files)
    payload: Any  # a JSON line's text, a CSV row (list of str), or a file's bytes
    content_type: str = ""


def _expand(uri: str) -> list[tuple[Store, str]]:
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


def _records(store: Store, key: str, data_format: str, key_field: str | None) -> Iterator[_Record]:
    uri = store.url(key)
    if data_format == "files":
        yield _Record(uri, store.read(key).data, _SUFFIX_TYPES.get(Path(key).suffix.lower(), "application/octet-stream"))
        return
    text = store.read(key).data.decode("utf-8")
    if data_format == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield _Record(f"{uri}:{number}", line)
        return
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None:
        return
    for number, row in enumerate(rows, start=2):
        if row:
            yield _Record(f"{uri}:{number}", {"header": header, "row": row})


def _read_inputs(spec: JobSpec) -> tuple[list[_Record], list[dict[str, Any]]]:
    """Every record, in a deterministic order, and the inputs that could not be read at all."""
    records: list[_Record] = []
    unreadable: list[dict[str, Any]] = []
    objects: list[tuple[Store, str]] = []
    for uri in spec.inputs:
        found = _expand(uri)
        if not found:
            raise ConfigError(f"--input {uri} matches no object.", hint="Check the URI or the glob.")
        objects.extend(found)
    for store, key in sorted(objects, key=lambda item: item[0].url(item[1])):
        try:
            records.extend(_records(store, key, spec.data_format, spec.key_field))
        except (UnicodeDecodeError, CprError, OSError) as exc:
            unreadable.append({"input": store.url(key), "errorType": type(exc).__name__, "message": str(exc)})
    return records, unreadable


# ---------------------------------------------------------------- scoring (in a worker process)

_LOADED: dict[tuple[str, str, tuple[str, ...]], Any] = {}


def _adapter(spec: dict[str, Any]) -> Any:
    key = (spec["prediction_class"], spec["model_dir"], tuple(spec["sites"]))
    if key not in _LOADED:  # once per worker process
        for site in reversed(spec["sites"]):
            if site not in sys.path:
                sys.path.insert(0, site)
        from cprsdk.runtime.adapters import load_adapter

        _LOADED[key] = load_adapter(spec["prediction_class"], spec["model_dir"])
    return _LOADED[key]


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _instance(record: dict[str, Any], data_format: str, key_field: str | None) -> tuple[Any, Any]:
    """(key or None, instance) of a JSON line or CSV row; raises on a malformed record."""
    if data_format == "csv":
        values = dict(zip(record["header"], record["row"]))
        if len(record["row"]) != len(record["header"]):
            raise ValueError(f"the row has {len(record['row'])} fields, the header {len(record['header'])}")
        key = values.pop(key_field) if key_field else None
        return key, [_number(v) for v in values.values()]
    from cprsdk.runtime.payload import parse_json

    value = parse_json(record["line"])
    if key_field:
        if not isinstance(value, dict) or key_field not in value:
            raise ValueError(f"the record has no key field {key_field!r}")
        value = dict(value)
        return value.pop(key_field), value
    return None, value


def _error(ref: str, exc: BaseException) -> dict[str, Any]:
    message = exc.message if isinstance(exc, CprError) else str(exc)
    return {"input": ref, "errorType": type(exc).__name__, "message": message}


def _predict_many(adapter: Any, instances: list[Any]) -> list[Any]:
    answer = json.loads(adapter.handle_json({"instances": instances}, vertex=False, version=""))
    predictions = answer.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(instances):
        got = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
        raise ValueError(f"predict returned {got} outputs for {len(instances)} instances")
    return predictions


def score_shard(spec: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Score one shard and encode its output files in the worker (the parent only writes bytes).

    Returns the prediction and error JSON lines, the shard's rows of results.csv and errors.csv,
    and its counts. A failing batch is retried one record at a time.
    """
    results, errors = _score_lists(spec, records)
    return {"predictions": _jsonl(results), "errors": _jsonl(errors), "succeeded": len(results),
            "failed": len(errors), "results_csv": _csv_rows([[r["input"], json.dumps(r["prediction"])] for r in results]),
            "errors_csv": _csv_rows([[e["input"], e["errorType"], e["message"]] for e in errors])}


def _csv_rows(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def _score_lists(spec: dict[str, Any], records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    adapter = _adapter(spec)
    if spec["data_format"] == "files":
        return _score_files(adapter, records)
    good: list[tuple[str, Any, Any]] = []
    errors: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for record in records:
        try:
            key, instance = _instance(record, spec["data_format"], spec.get("key_field"))
            good.append((record["ref"], key, instance))
        except Exception as exc:
            errors.append(_error(record["ref"], exc))
    for start in range(0, len(good), spec["batch_size"]):
        batch = good[start:start + spec["batch_size"]]
        try:
            predictions = _predict_many(adapter, [b[2] for b in batch])
            outcome: list[Any] = list(predictions)
        except Exception:
            outcome = []
            for ref, _, instance in batch:  # isolate the bad record(s)
                try:
                    outcome.append(_predict_many(adapter, [instance])[0])
                except Exception as exc:
                    outcome.append(exc)
        for (ref, key, instance), prediction in zip(batch, outcome):
            if isinstance(prediction, BaseException):
                errors.append(_error(ref, prediction))
            else:
                head = {"key": key} if spec.get("key_field") else {"instance": instance}
                results.append({"input": ref, **head, "prediction": prediction})
    order = {r["ref"]: i for i, r in enumerate(records)}
    results.sort(key=lambda r: order[r["input"]])
    errors.sort(key=lambda e: order.get(e["input"], -1))
    return results, errors


def _score_files(adapter: Any, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Whole files, each a raw body decoded by its content type (the adapter's raw path)."""
    results, errors = [], []
    for record in records:
        try:
            body, kind = adapter.handle_raw(bytes.fromhex(record["hex"]), record["content_type"], "application/json")
            output = json.loads(body) if kind.startswith("application/json") else body.decode("utf-8", "replace")
            results.append({"input": record["ref"], "prediction": output})
        except Exception as exc:
            errors.append(_error(record["ref"], exc))
    return results, errors


def _wire(record: _Record) -> dict[str, Any]:
    if isinstance(record.payload, bytes):
        return {"ref": record.ref, "hex": record.payload.hex(), "content_type": record.content_type}
    if isinstance(record.payload, dict):
        return {"ref": record.ref, **record.payload}
    return {"ref": record.ref, "line": record.payload}


# ---------------------------------------------------------------- running


def _jsonl(lines: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


class _Engine:
    """Runs score_shard somewhere: local worker processes, or a Dask cluster."""

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self._client: Any = None
        self._pool: ProcessPoolExecutor | None = None
        if spec.engine == "dask":
            try:
                from distributed import Client  # type: ignore[import-not-found,unused-ignore]
            except ImportError:
                raise ConfigError("--engine dask needs Dask.", hint="pip install 'cprsdk[dask]'") from None
            self._client = (Client(spec.scheduler) if spec.scheduler  # type: ignore[no-untyped-call]
                            else Client(processes=True, n_workers=spec.workers))  # type: ignore[no-untyped-call]
        else:
            import multiprocessing

            self._pool = ProcessPoolExecutor(max_workers=spec.workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, payload: dict[str, Any], records: list[dict[str, Any]]) -> Any:
        if self._client is not None:
            return self._client.submit(score_shard, payload, records, pure=False)
        assert self._pool is not None
        return self._pool.submit(score_shard, payload, records)

    @staticmethod
    def result(future: Any) -> Any:
        return future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        if self._client is not None:
            self._client.close()


def _start(store: Store, spec: JobSpec) -> None:
    """Write _job.json once; a rerun must describe the same job."""
    record = {"id": job_id(spec.output), "spec": asdict(spec), "fingerprint": spec.fingerprint(),
              "createTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        existing = json.loads(store.read("_job.json").data)
    except NotFound:
        store.write("_job.json", json.dumps(record, indent=2).encode(), if_absent=True)
        return
    if existing.get("fingerprint") != spec.fingerprint():
        raise ConfigError(f"{spec.output} holds another job's output (different inputs or format).",
                          hint="Use a new --output, or the same inputs and --data-format to resume that job.")


def _committed(store: Store) -> dict[int, dict[str, Any]]:
    found = {}
    for info in store.list("_committed/"):
        name = info.key.rsplit("/", 1)[1]
        if name.startswith("part-") and name.endswith(".json"):
            found[int(name[5:10])] = json.loads(store.read(info.key).data)
    return found


def run_job(spec: JobSpec, *, progress: Callable[[int, int], None] = lambda done, total: None) -> JobSummary:
    """Run (or resume) a job to the end, or until it is asked to stop."""
    store = open_store(spec.output)
    _start(store, spec)
    store.delete("_STOP")
    records, unreadable = _read_inputs(spec)
    shards = [records[i:i + spec.shard_size] for i in range(0, len(records), spec.shard_size)]
    done = _committed(store)
    payload = {**asdict(spec), "sites": list(spec.sites)}
    engine = _Engine(spec)
    stopped = False
    try:
        pending: dict[Any, int] = {}
        todo = [i for i in range(len(shards)) if i not in done]
        progress(len(done), len(shards))
        while todo or pending:
            while todo and len(pending) < max(1, spec.workers) * 2 and not stopped:
                index = todo.pop(0)
                pending[engine.submit(payload, [_wire(r) for r in shards[index]])] = index
            future = next(iter(pending))
            index = pending.pop(future)
            shard = engine.result(future)
            _commit(store, index, shard)
            done[index] = {"succeeded": shard["succeeded"], "failed": shard["failed"]}
            progress(len(done), len(shards))
            if not stopped and store.exists("_STOP"):
                stopped, todo = True, []
    finally:
        engine.close()
    return _finish(store, spec, len(records) + len(unreadable), len(shards), done, unreadable, stopped)


def _commit(store: Store, index: int, shard: dict[str, Any]) -> None:
    """The shard's files, its rows of the CSV views, then its commit marker, last."""
    name = f"part-{index:05d}"
    store.write(f"predictions/{name}.jsonl", shard["predictions"])
    store.write(f"errors/{name}.jsonl", shard["errors"])
    store.write(f"_views/{name}.results.csv", shard["results_csv"])
    store.write(f"_views/{name}.errors.csv", shard["errors_csv"])
    store.write(f"_committed/{name}.json", json.dumps({"succeeded": shard["succeeded"], "failed": shard["failed"]}).encode())


def _finish(store: Store, spec: JobSpec, total: int, shards: int, done: dict[int, dict[str, Any]],
            unreadable: list[dict[str, Any]], stopped: bool) -> JobSummary:
    succeeded = sum(d["succeeded"] for d in done.values())
    failed = sum(d["failed"] for d in done.values()) + len(unreadable)
    incomplete = total - succeeded - failed
    rate = failed / total if total else 0.0
    if stopped or incomplete:
        state, message = "STOPPED", "stopped before every shard was committed; run the same command to resume"
    elif rate > spec.max_error_rate:
        state, message = "FAILED", f"{failed} of {total} records failed ({rate:.2%}), over --max-error-rate {spec.max_error_rate:g}"
    else:
        state, message = "SUCCEEDED", ""
    _write_views(store, unreadable, sorted(done))
    summary = JobSummary(job_id(spec.output), state, total, succeeded, failed, incomplete, shards, len(done),
                         spec.output, message)
    store.write("summary.json", json.dumps(summary.to_json(), indent=2).encode())
    return summary


def _write_views(store: Store, unreadable: list[dict[str, Any]], shards: Sequence[int]) -> None:
    """results.csv and errors.csv: a header, then each committed shard's rows, in shard order."""
    results = [b"input,output\n"] + [store.read(f"_views/part-{i:05d}.results.csv").data for i in shards]
    store.write("results.csv", b"".join(results))
    errors = [b"input,error_type,message\n",
              _csv_rows([[u["input"], u["errorType"], u["message"]] for u in unreadable])]
    errors += [store.read(f"_views/part-{i:05d}.errors.csv").data for i in shards]
    store.write("errors.csv", b"".join(errors))


def sources_from_registry(registry: Any, model: str, version: str | None) -> tuple[str, str, tuple[str, ...], dict[str, Any]]:
    """(prediction class, local model dir, package folders, description) of a deployed version."""
    from cprsdk.packaging.install import cache_dir, cached_site
    from cprsdk.registry.registry import fetch_version
    from cprsdk.packaging.requirements import ensure_requirements

    name = version or registry.get_model(model).default_version
    if name is None:
        raise ConfigError(f"Model {model!r} has no default version.", hint="Name a version.")
    manifest = registry.get_version(model, name)
    digest = hashlib.sha256(json.dumps(manifest.get("files", []), sort_keys=True).encode()).hexdigest()[:32]
    model_dir, sdists = fetch_version(registry, manifest, cache_dir() / "versions" / digest)
    site, _ = cached_site(sdists)
    return (manifest["predictionClass"], str(model_dir), tuple(str(p) for p in ensure_requirements(site)),
            {"model": model, "version": name, "registry": registry.uri})


# ---------------------------------------------------------------- status, list, stop


def _index_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "cprsdk" / "jobs"


def remember(spec: JobSpec) -> None:
    folder = _index_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{job_id(spec.output)}.json").write_text(json.dumps({"id": job_id(spec.output), "output": spec.output}))


def _output_of(job: str) -> str:
    path = _index_dir() / f"{job}.json"
    if not path.is_file():
        raise ConfigError(f"No job {job!r} on this machine.", hint="List them with `cprsdk batch list`.")
    return str(json.loads(path.read_text())["output"])


def job_status(job: str) -> dict[str, Any]:
    output = _output_of(job)
    store = open_store(output)
    try:
        return json.loads(store.read("summary.json").data)  # type: ignore[no-any-return]
    except NotFound:
        return {"job": job, "state": "RUNNING", "committed_shards": len(_committed(store)), "output": output}


def list_jobs() -> list[dict[str, Any]]:
    folder = _index_dir()
    return [job_status(p.stem) for p in sorted(folder.glob("job-*.json"))] if folder.is_dir() else []


def stop_job(job: str) -> None:
    open_store(_output_of(job)).write("_STOP", b"stop\n")


def results_csv(job: str) -> bytes:
    return open_store(_output_of(job)).read("results.csv").data
