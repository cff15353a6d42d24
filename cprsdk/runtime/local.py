"""``cprsdk local predict``: one request through the predictor, run exactly as a node runs it."""

from __future__ import annotations

import base64
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cprsdk.config import Settings
from cprsdk.errors import ConfigError, RequestError
from cprsdk.runtime.payload import parse_json, split_request
from cprsdk.runtime.resolved import resolve_local
from cprsdk.runtime.sandbox import run_job

__all__ = ["LocalResult", "local_predict", "read_request"]


@dataclass(frozen=True)
class LocalResult:
    status: int
    body: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    log: str = ""
    raw: bytes | None = None  # the answer to a raw request
    content_type: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


def _read_text(path: str) -> str:
    if path == "-":
        import sys

        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"Input file {path} does not exist.") from None
    except UnicodeDecodeError:
        raise RequestError(f"Input file {path} is not UTF-8 text.") from None


def read_request(
    *, json_instances: str | None = None, json_request: str | None = None,
    text_instances: str | None = None, kwargs: str | None = None,
) -> dict[str, Any]:
    """Build a request body from the gcloud-style input flags (exactly one of the three)."""
    given = [f for f, v in (("--json-instances", json_instances), ("--json-request", json_request),
                            ("--text-instances", text_instances)) if v is not None]
    if len(given) != 1:
        raise ConfigError(
            "Give exactly one of --json-instances, --json-request or --text-instances"
            + (f" (got {', '.join(given)})." if given else "."),
        )
    if json_request is not None:
        body = parse_json(_read_text(json_request))
    elif json_instances is not None:
        instances = []
        for number, line in enumerate(_read_text(json_instances).splitlines(), start=1):
            if line.strip():
                try:
                    instances.append(parse_json(line))
                except RequestError as exc:
                    raise RequestError(f"{json_instances} line {number}: {exc.message}") from None
        body = {"instances": instances}
    else:
        text = _read_text(str(text_instances))
        body = {"instances": [line for line in text.splitlines() if line.strip()]}
    if kwargs is not None:
        extra = parse_json(kwargs)
        if not isinstance(extra, dict) or "instances" in extra:
            raise ConfigError(f"--kwargs must be a JSON object without 'instances', got {kwargs!r}.")
        if not isinstance(body, dict):
            raise RequestError("The request body must be a JSON object.")
        body = {**body, **extra}
    split_request(body)
    return body  # type: ignore[no-any-return]


def local_predict(settings: Settings, body: dict[str, Any] | None, *, timeout: float | None = None,
                  raw: bytes | None = None, content_type: str = "application/json", accept: str = "",
                  formatter: str | None = None, formatter_args: dict[str, Any] | None = None) -> LocalResult:
    """Install the packages as a node would, then load and predict in a fresh process.

    ``body`` is a JSON request (``:predict``); or ``raw`` bytes with their content type
    (``:rawPredict``, for SageMaker and hook-style predictors).
    """
    start = time.perf_counter()
    version = resolve_local(settings, output_formatter=formatter, formatter_args=formatter_args)
    timings: dict[str, float] = {"build_and_install": time.perf_counter() - start}
    with tempfile.TemporaryDirectory(prefix="cprsdk-local-") as tmp:
        work = Path(tmp)
        job: dict[str, Any] = {"kind": "predict", "sites": [str(s) for s in version.sites],
                               "prediction_class": version.prediction_class, "model_dir": str(version.model_dir),
                               "body": body, "formatter": formatter, "formatter_args": formatter_args or {}}
        if raw is not None:
            job.update(raw=base64.b64encode(raw).decode(), content_type=content_type, accept=accept)
        answer = run_job(job, cwd=work, timeout=timeout)
    timings.update(answer.get("timings", {}))
    log = answer.get("log", "")
    if answer.get("log_tail"):
        log = log or answer["log_tail"]
    raw_answer = base64.b64decode(answer["raw"]) if "raw" in answer else None
    return LocalResult(status=int(answer["status"]), body=answer.get("body", {}), timings=timings, log=log,
                       raw=raw_answer, content_type=answer.get("content_type"))

