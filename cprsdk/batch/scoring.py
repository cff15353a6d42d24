"""Scoring a shard of records, in a worker process (local pool or Dask): the version's adapter,
loaded once per process, predicts batches; a failing batch is retried one record at a time, and
the shard's output files are encoded here so that the parent only writes bytes.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from typing import Any

from cprsdk.batch.watchdog import guard, watching
from cprsdk.errors import CprError
from cprsdk.runtime.child import enter

__all__ = ["csv_rows", "jsonl", "lost_record", "merge_shards", "score_shard"]


_LOADED: dict[str, Any] = {}  # version digest -> adapter, in this worker process
_OWN_MODULES: dict[str, tuple[tuple[str, ...], set[str]]] = {}  # digest -> (its sites, modules imported from them)


def _adapter(spec: dict[str, Any]) -> Any:
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


def _instance(record: dict[str, Any], data_format: str, key_field: str | None) -> tuple[Any, Any]:
    """(key or None, instance) of a JSON line or CSV row; raises on a malformed record."""
    if data_format == "csv":
        values = dict(zip(record["header"], record["row"], strict=False))  # lengths checked below
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


def error(ref: str, exc: BaseException) -> dict[str, Any]:
    message = exc.message if isinstance(exc, CprError) else str(exc)
    return {"input": ref, "errorType": type(exc).__name__, "message": message}


def _predict_many(adapter: Any, instances: list[Any], timeout: float | None) -> list[Any]:
    with guard(timeout):  # past it, the watchdog ends this process (see watchdog.py)
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
    with watching(spec):
        results, errors = _score_lists(spec, records)
    return {"predictions": jsonl(results), "errors": jsonl(errors), "succeeded": len(results),
            "failed": len(errors),
            "results_csv": csv_rows([[r["input"], json.dumps(r["prediction"])] for r in results]),
            "errors_csv": csv_rows([[e["input"], e["errorType"], e["message"]] for e in errors])}


def csv_rows(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


_Lines = list[dict[str, Any]]


def _score_lists(spec: dict[str, Any], records: _Lines) -> tuple[_Lines, _Lines]:
    adapter = _adapter(spec)
    if spec["data_format"] == "files":
        return _score_files(adapter, records, spec.get("record_timeout"))
    good: list[tuple[str, Any, Any]] = []
    errors: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for record in records:
        try:
            key, instance = _instance(record, spec["data_format"], spec.get("key_field"))
            good.append((record["ref"], key, instance))
        except Exception as exc:
            errors.append(error(record["ref"], exc))
    for start in range(0, len(good), spec["batch_size"]):
        batch = good[start:start + spec["batch_size"]]
        try:
            predictions = _predict_many(adapter, [b[2] for b in batch], spec.get("record_timeout"))
            outcome: list[Any] = list(predictions)
        except Exception:
            outcome = []
            for _, _, instance in batch:  # isolate the bad record(s)
                try:
                    outcome.append(_predict_many(adapter, [instance], spec.get("record_timeout"))[0])
                except Exception as exc:
                    outcome.append(exc)
        for (ref, key, instance), prediction in zip(batch, outcome, strict=True):
            if isinstance(prediction, BaseException):
                errors.append(error(ref, prediction))
            else:
                head = {"key": key} if spec.get("key_field") else {"instance": instance}
                results.append({"input": ref, **head, "prediction": prediction})
    order = {r["ref"]: i for i, r in enumerate(records)}
    results.sort(key=lambda r: order[r["input"]])
    errors.sort(key=lambda e: order.get(e["input"], -1))
    return results, errors


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


def jsonl(lines: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def lost_record(ref: str, message: str, error_type: str = "WorkerExited") -> dict[str, Any]:
    """The output of a one-record shard whose worker died (``WorkerExited``) or hung (``RecordTimeout``)."""
    line = {"input": ref, "errorType": error_type, "message": message}
    return {"predictions": b"", "errors": jsonl([line]), "succeeded": 0, "failed": 1, "results_csv": b"",
            "errors_csv": csv_rows([[ref, error_type, message]])}


def merge_shards(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two outputs of consecutive records as one: files joined in order, counts added."""
    return {key: first[key] + second[key] for key in first}

