"""Scoring a shard of records, in a worker process (local pool or Dask): the version's adapter,
loaded once per process, predicts batches; a failing batch is retried one record at a time, and
the shard's output files are encoded here so that the parent only writes bytes.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from cprsdk.batch import outputs
from cprsdk.batch.instances import InstanceConfig, from_columns, from_line
from cprsdk.batch.watchdog import guard, watching
from cprsdk.errors import CprError
from cprsdk.runtime.child import enter

__all__ = ["csv_rows", "loaded", "lost_record", "merge_shards", "score_shard"]


_LOADED: dict[str, Any] = {}  # version digest -> adapter, in this worker process
_OWN_MODULES: dict[str, tuple[tuple[str, ...], set[str]]] = {}  # digest -> (its sites, modules imported from them)


def loaded(spec: dict[str, Any]) -> Any:
    """The version's adapter, loaded once per worker process.

    A Dask worker outlives jobs: before a second version loads, the modules the first one imported
    from its own folders are forgotten, so two versions that both ship ``predictor.py`` never
    share a module.
    """
    digest = spec["digest"]
    if digest not in _LOADED:
        for other in list(_LOADED):
            _forget(other)
        from cprsdk.runtime.adapters import load_adapter

        before = set(sys.modules)
        enter(spec["sites"], spec["prediction_class"])
        _LOADED[digest] = load_adapter(spec["prediction_class"], spec["model_dir"])
        sites = tuple(spec["sites"])
        _OWN_MODULES[digest] = (sites, {name for name in set(sys.modules) - before
                                        if str(getattr(sys.modules[name], "__file__", None) or "").startswith(sites)})
    return _LOADED[digest]


def _forget(digest: str) -> None:
    _LOADED.pop(digest, None)
    sites, modules = _OWN_MODULES.pop(digest, ((), set()))
    for name in modules:
        sys.modules.pop(name, None)
    sys.path[:] = [p for p in sys.path if p not in sites]


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _from_row(header: list[str], row: list[Any], data_format: str, config: InstanceConfig) -> tuple[Any, Any, Any]:
    """(key or None, instance, the record as output) of a CSV or Parquet row; raises if malformed."""
    if len(row) != len(header):
        raise ValueError(f"the row has {len(row)} fields, the header {len(header)}")
    if data_format == "csv":
        row = [v if name == config.key_field else _number(v) for name, v in zip(header, row, strict=True)]
    return from_columns(header, row, config)


def error(ref: str, exc: BaseException) -> dict[str, Any]:
    message = exc.message if isinstance(exc, CprError) else str(exc)
    return {"input": ref, "errorType": type(exc).__name__, "message": message}


def _predict_many(adapter: Any, instances: list[Any], timeout: float | None) -> list[Any]:
    """The predictions of one call, as the node's answer holds them (its JSON types, its output policy)."""
    from cprsdk.runtime.adapters import CprAdapter
    from cprsdk.runtime.frameworks import FrameworkAdapter
    from cprsdk.runtime.payload import to_jsonable

    with guard(timeout):  # past it, the watchdog ends this process (see watchdog.py)
        if isinstance(adapter, (CprAdapter, FrameworkAdapter)):  # no JSON round trip for the plain forms
            call = adapter.predictor.predict if isinstance(adapter, CprAdapter) else adapter.predict
            predictions = to_jsonable(call(instances))
        else:
            answer = json.loads(adapter.handle_json({"instances": instances}, vertex=False, version=""))
            predictions = answer.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(instances):
        got = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
        raise ValueError(f"predict returned {got} outputs for {len(instances)} instances")
    return predictions


def score_shard(spec: dict[str, Any], records: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
    """Score one shard and encode its output files in the worker (the parent only writes bytes).

    ``records`` are the shard's records, or ``{"segments": ...}`` for the worker to read them itself.
    Returns the prediction and error JSON lines, the shard's rows of results.csv and errors.csv,
    and its counts. A failing batch is retried one record at a time.
    """
    with watching(spec):
        if spec["data_format"] == "files":
            if isinstance(records, dict):
                from cprsdk.batch.shards import read_shard

                records = read_shard(records["segments"])
            results, errors = _score_files(loaded(spec), records, spec.get("record_timeout"))
        else:
            results, errors = _score_records(spec, *_columns(spec["data_format"], records))
    return {"predictions": outputs.encode(spec, results), "errors": outputs.encode(spec, errors, errors=True),
            "succeeded": len(results),
            "failed": len(errors),
            "results_csv": csv_rows(zip([r["input"] for r in results],
                                        outputs.dumps_texts([r["prediction"] for r in results]), strict=True)),
            "errors_csv": csv_rows([[e["input"], e["errorType"], e["message"]] for e in errors])}


def csv_rows(rows: Iterable[Sequence[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


_Lines = list[dict[str, Any]]


def _columns(data_format: str, records: list[dict[str, Any]] | dict[str, Any]) -> tuple[list[str], list[Any]]:
    """(references, raw items) of a shard's records: JSON lines as bytes, rows as (header, values)."""
    if isinstance(records, dict):
        from cprsdk.batch.shards import read_lines, read_shard

        if data_format == "jsonl":
            return read_lines(records["segments"])
        records = read_shard(records["segments"])
    refs = [r["ref"] for r in records]
    if data_format == "jsonl":
        return refs, [r["line"].encode() if isinstance(r["line"], str) else r["line"] for r in records]
    return refs, [(r["header"], r["row"]) for r in records]


def _instances(spec: dict[str, Any], items: list[Any], config: InstanceConfig) -> list[Any]:
    """Each item's (key, instance, shown), or the exception that refused it."""
    if spec["data_format"] == "jsonl":
        from cprsdk.runtime.payload import parse_json_lines

        values = parse_json_lines(items)
        if config == InstanceConfig():  # records as they come
            return [v if isinstance(v, BaseException) else (None, v, v) for v in values]
        parsed: list[Any] = []
        for value in values:
            try:
                parsed.append(value if isinstance(value, BaseException) else from_line(value, config))
            except Exception as exc:
                parsed.append(exc)
        return parsed
    parsed = []
    for header, row in items:
        try:
            parsed.append(_from_row(header, row, spec["data_format"], config))
        except Exception as exc:
            parsed.append(exc)
    return parsed


def _score_records(spec: dict[str, Any], refs: list[str], items: list[Any]) -> tuple[_Lines, _Lines]:
    adapter = loaded(spec)
    config = InstanceConfig.of(spec)
    parsed = _instances(spec, items, config)
    failures: list[tuple[int, BaseException]] = [(i, p) for i, p in enumerate(parsed) if isinstance(p, BaseException)]
    good = [i for i, p in enumerate(parsed) if not isinstance(p, BaseException)] if failures else range(len(parsed))
    head = "key" if config.key_field else "instance"
    results: list[dict[str, Any]] = []
    timeout, size = spec.get("record_timeout"), spec["batch_size"]
    for start in range(0, len(good), size):
        batch = good[start:start + size]
        try:
            outcome: list[Any] = _predict_many(adapter, [parsed[i][1] for i in batch], timeout)
        except Exception:
            outcome = []
            for i in batch:  # isolate the bad record(s)
                try:
                    outcome.append(_predict_many(adapter, [parsed[i][1]], timeout)[0])
                except Exception as exc:
                    outcome.append(exc)
        for i, prediction in zip(batch, outcome, strict=True):
            if isinstance(prediction, BaseException):
                failures.append((i, prediction))
            else:
                key, _, shown = parsed[i]
                results.append({"input": refs[i], head: key if config.key_field else shown, "prediction": prediction})
    failures.sort(key=lambda f: f[0])
    return results, [error(refs[i], exc) for i, exc in failures]


def _score_files(adapter: Any, records: _Lines, timeout: float | None) -> tuple[_Lines, _Lines]:
    """Whole files, each a raw body decoded by its content type (the adapter's raw path)."""
    results, errors = [], []
    for record in records:
        try:
            with guard(timeout):
                body, kind = adapter.handle_raw(bytes.fromhex(record["hex"]), record["content_type"],
                                                "application/json")
            output = json.loads(body) if kind.startswith("application/json") else body.decode("utf-8", "replace")
            results.append({"input": record["ref"], "prediction": output})
        except Exception as exc:
            errors.append(error(record["ref"], exc))
    return results, errors


def lost_record(spec: dict[str, Any], ref: str, message: str, error_type: str = "WorkerExited") -> dict[str, Any]:
    """The output of a one-record shard whose worker died (``WorkerExited``) or hung (``RecordTimeout``)."""
    line = {"input": ref, "errorType": error_type, "message": message}
    return {"predictions": outputs.encode(spec, []), "errors": outputs.encode(spec, [line], errors=True),
            "succeeded": 0, "failed": 1, "results_csv": b"", "errors_csv": csv_rows([[ref, error_type, message]])}


def merge_shards(spec: dict[str, Any], first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two outputs of consecutive records as one: files joined in order, counts added."""
    merged = {key: first[key] + second[key] for key in first}
    merged["predictions"] = outputs.join(spec, first["predictions"], second["predictions"])
    merged["errors"] = outputs.join(spec, first["errors"], second["errors"], errors=True)
    return merged
