"""Run a predictor in a fresh interpreter, with its packages installed as a node installs them.

The parent sends one JSON job on stdin; the child (``python -I``: no user site, no PYTHONPATH,
no current directory on the path) puts the installed package folders first on ``sys.path``,
does the job and writes one JSON answer to the stdout it was given. Anything the user's code
prints goes to stderr, so it can never corrupt the answer.

Jobs: ``check`` (import the prediction class, resolve the globals pickles reference),
``load`` (load the version as a worker does, timed, with the child's peak memory; then, if a
body is given, one smoke prediction whose answer must be JSON) and ``predict`` (load, then
``predict`` on one request body).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from cprsdk.errors import CprError, error_body
from cprsdk.runtime.breakages import describe_failure
from cprsdk.runtime.child import child_argv, enter

__all__ = ["child_main", "run_job"]


def run_job(job: dict[str, Any], *, cwd: Path, timeout: float | None = None) -> dict[str, Any]:
    """Run ``job`` in a fresh ``python -I`` and return its JSON answer."""
    proc = subprocess.run(
        child_argv("cprsdk.runtime.sandbox:child_main"),
        input=json.dumps(job).encode(),
        capture_output=True,
        cwd=cwd,
        timeout=timeout,
    )
    log = proc.stderr.decode("utf-8", "replace")
    try:
        answer: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        tail = "\n".join(log.strip().splitlines()[-20:])
        last = tail.splitlines()[-1].strip() if tail else ""
        message = (f"The predictor process exited with code {proc.returncode} without an answer"
                   + (f"; its last output: {last}" if last else "") + ".")
        answer = {"status": 500, "body": error_body(500, message), "log_tail": tail}
    answer["log"] = log
    return answer


# ---------------------------------------------------------------- child side


def _locate(module_name: str) -> str | None:
    """Where ``module_name`` would be imported from, without running any of it (None: unknown)."""
    parts = module_name.split(".")
    if parts[0] in sys.builtin_module_names:
        return "builtin" if len(parts) == 1 else None
    spec = importlib.machinery.PathFinder.find_spec(parts[0])
    for index in range(1, len(parts)):
        if spec is None or not spec.submodule_search_locations:
            return None
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: index + 1]),
                                                        list(spec.submodule_search_locations))
    return (spec.origin or "namespace") if spec is not None else None


def _what(target: Any) -> dict[str, str]:
    """What a resolved global is (class, function or object) and the module that defined it (its type's)."""
    kind = "class" if isinstance(target, type) else "function" if callable(target) else "object"
    owner = target if kind != "object" else type(target)
    return {"kind": kind, "defined_in": str(getattr(owner, "__module__", None) or "")}


def _resolve_ref(module_name: str, name: str, sites: list[str]) -> dict[str, Any]:
    """Import what a pickle references (only names the pickle policy let through get here)."""
    result: dict[str, Any] = {"module": module_name, "name": name}
    top = module_name.split(".")[0]
    if importlib.machinery.PathFinder.find_spec(top, sites) is None and _locate(module_name) is None and \
            importlib.machinery.PathFinder.find_spec(top) is None and top not in sys.builtin_module_names:
        return {**result, "status": "missing-module", "detail": f"No module named {top!r}"}
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        return {**result, "status": "missing-module", "detail": f"No module named {exc.name!r}"}
    except Exception as exc:
        failure = describe_failure(exc, sites=sites)
        detail = failure.sentence() + (f" {failure.hint}" if failure.hint else "")
        return {**result, "status": "import-error", "detail": detail}
    target: Any = module
    for part in name.split("."):
        if not hasattr(target, part):
            return {**result, "status": "missing-name", "detail": f"{module_name} has no {name!r}"}
        target = getattr(target, part)
    origin = getattr(module, "__file__", None) or ""
    in_package = any(origin.startswith(site + os.sep) for site in sites)
    return {**result, "status": "ok", "origin": "package" if in_package else "runtime", **_what(target)}


def _resolved_style(name: str, sites: list[str]) -> str:
    """The adapter style of ``name``; any exception its import raises becomes one readable error."""
    from cprsdk.runtime.adapters import resolve_style
    from cprsdk.runtime.predictor import import_error

    try:
        return resolve_style(name)
    except CprError:
        raise
    except (Exception, SystemExit) as exc:  # SystemExit: user code that calls sys.exit() at import time
        traceback.print_exc()
        raise import_error(name, exc, paths=sites) from None


def _check(job: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {"status": 200, "class": None, "references": []}
    if job.get("prediction_class"):
        try:
            _resolved_style(job["prediction_class"], job["sites"])
            answer["class"] = {"status": "ok"}
        except CprError as exc:
            answer["class"] = {"status": "error", "message": exc.message, "hint": exc.hint}
    answer["references"] = [_resolve_ref(m, n, job["sites"]) for m, n in job.get("references", [])]
    return answer


def _predict(job: dict[str, Any]) -> dict[str, Any]:
    import base64

    from cprsdk.runtime.adapters import load_adapter

    timings: dict[str, float] = {}
    start = time.perf_counter()
    _resolved_style(job["prediction_class"], job["sites"])
    timings["import"] = time.perf_counter() - start
    start = time.perf_counter()
    adapter = load_adapter(job["prediction_class"], job["model_dir"], formatter=job.get("formatter"),
                           formatter_args=job.get("formatter_args"))
    timings["from_path"] = time.perf_counter() - start
    start = time.perf_counter()
    try:
        if "raw" in job:
            data, content_type = adapter.handle_raw(base64.b64decode(job["raw"]), job["content_type"],
                                                    job.get("accept") or "")
            answer: dict[str, Any] = {"status": 200, "raw": base64.b64encode(data).decode(),
                                      "content_type": content_type}
        else:
            answer = {"status": 200, "body": json.loads(adapter.handle_json(job["body"], vertex=False, version=""))}
    except CprError:
        raise
    except Exception as exc:
        traceback.print_exc()
        message = f"Prediction failed: {type(exc).__name__}: {exc}"
        return {"status": 500, "body": error_body(500, message), "timings": timings}
    timings["predict"] = time.perf_counter() - start
    return {**answer, "timings": timings}


def _load(job: dict[str, Any]) -> dict[str, Any]:
    import resource

    from cprsdk.runtime.adapters import load_adapter

    start = time.perf_counter()
    try:
        adapter = load_adapter(job["prediction_class"], job["model_dir"])
    except CprError as exc:
        if exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__)
        return {"status": exc.status_code, "stage": "load", "message": exc.message}
    answer: dict[str, Any] = {"status": 200, "seconds": time.perf_counter() - start}
    if job.get("body") is not None:
        start = time.perf_counter()
        try:
            answer["smoke"] = json.loads(adapter.handle_json(job["body"], vertex=False, version=""))
        except CprError as exc:
            return {"status": exc.status_code, "stage": "smoke", "message": str(exc)}
        except Exception as exc:
            traceback.print_exc()
            return {"status": 500, "stage": "smoke", "message": f"predict raised {type(exc).__name__}: {exc}"}
        answer["smoke_seconds"] = time.perf_counter() - start
    answer["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return answer


_JOBS = {"check": _check, "load": _load, "predict": _predict}


def child_main() -> None:
    job = json.loads(sys.stdin.read())
    answer_fd = enter(job["sites"], job.get("prediction_class") or "cprsdk", take_stdout=True)
    assert answer_fd is not None
    try:
        answer = _JOBS[job["kind"]](job)
    except CprError as exc:
        if exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__)
        answer = {"status": exc.status_code, "body": error_body(exc.status_code, str(exc))}
    except Exception as exc:  # never die without an answer: say what was raised
        traceback.print_exc()
        answer = {"status": 500, "body": error_body(500, f"{type(exc).__name__}: {exc}")}
    with os.fdopen(answer_fd, "w") as out:
        json.dump(answer, out)
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: with big libraries loaded it costs a fifth of a second
