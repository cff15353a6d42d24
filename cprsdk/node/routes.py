"""The node's route table: which verb and path go to which handler of :class:`cprsdk.node.app.Node`.

Patterns are tried in order. A path that matches with another verb is a 405, a path that matches
nothing a 404; the captured segments (project, model, version, ...) become the handler's
arguments. ``AIP_PREDICT_ROUTE`` and ``AIP_HEALTH_ROUTE`` are matched before this table, in the app.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

from cprsdk.errors import RequestError

__all__ = ["ROUTES", "match_route", "request_id_of"]

_SEG = r"([^/:]+)"
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(rf"^/v1/projects/{_SEG}/models/{_SEG}/versions/{_SEG}:predict$"), "aip_predict"),
    ("POST", re.compile(rf"^/v1/projects/{_SEG}/models/{_SEG}:predict$"), "aip_predict_default"),
    ("POST", re.compile(rf"^/v1/projects/{_SEG}/models/{_SEG}/versions/{_SEG}:rawPredict$"), "aip_raw_predict"),
    ("POST", re.compile(rf"^/v1/projects/{_SEG}/models/{_SEG}:rawPredict$"), "aip_raw_predict_default"),
    ("POST", re.compile(r"^/invocations$"), "invocations"),
    ("GET", re.compile(r"^/ping$"), "ping"),
    ("GET", re.compile(rf"^/v1/projects/{_SEG}/models/{_SEG}/versions/{_SEG}$"), "aip_version"),
    ("GET", re.compile(rf"^/v1/projects/{_SEG}/models/{_SEG}/versions$"), "aip_versions"),
    ("GET", re.compile(rf"^/v1/projects/{_SEG}/models/{_SEG}$"), "aip_model"),
    ("GET", re.compile(rf"^/v1/projects/{_SEG}/models$"), "aip_models"),
    ("POST", re.compile(rf"^/v1/projects/{_SEG}/locations/{_SEG}/endpoints/{_SEG}:predict$"), "vertex_predict"),
    ("GET", re.compile(rf"^/v1/projects/{_SEG}/locations/{_SEG}/endpoints/{_SEG}$"), "vertex_endpoint"),
    ("POST", re.compile(rf"^/v1/models/{_SEG}:predict$"), "kserve_predict"),
    ("GET", re.compile(rf"^/v1/models/{_SEG}$"), "kserve_model"),
    ("POST", re.compile(rf"^/v1/projects/{_SEG}/models$"), "mgmt_create_model"),
    ("DELETE", re.compile(rf"^/v1/projects/{_SEG}/models/{_SEG}$"), "mgmt_delete_model"),
    ("POST", re.compile(rf"^/v1/projects/{_SEG}/models/{_SEG}/versions$"), "mgmt_create_version"),
    ("DELETE", re.compile(rf"^/v1/projects/{_SEG}/models/{_SEG}/versions/{_SEG}$"), "mgmt_delete_version"),
    ("POST", re.compile(rf"^/v1/projects/{_SEG}/models/{_SEG}/versions/{_SEG}:setDefault$"), "mgmt_set_default"),
    ("GET", re.compile(rf"^/v1/projects/{_SEG}/operations/{_SEG}$"), "mgmt_operation"),
    ("POST", re.compile(rf"^/v1/projects/{_SEG}/jobs$"), "jobs_create"),
    ("GET", re.compile(rf"^/v1/projects/{_SEG}/jobs$"), "jobs_list"),
    ("GET", re.compile(rf"^/v1/projects/{_SEG}/jobs/{_SEG}$"), "jobs_get"),
    ("POST", re.compile(rf"^/v1/projects/{_SEG}/jobs/{_SEG}:cancel$"), "jobs_cancel"),
    ("GET", re.compile(r"^/healthz$"), "healthz"),
    ("GET", re.compile(r"^/readyz$"), "readyz"),
    ("GET", re.compile(r"^/metrics$"), "metrics"),
    ("GET", re.compile(r"^/openapi\.json$"), "openapi"),
)


def match_route(method: str, path: str) -> tuple[str, tuple[str, ...]]:
    """The handler name and captured segments for ``method path``; :class:`RequestError` 405 or 404."""
    allowed = False
    for verb, pattern, name in ROUTES:
        match = pattern.match(path)
        if match:
            if verb == method:
                return name, match.groups()
            allowed = True
    if allowed:
        raise RequestError(f"{method} is not allowed on {path}.", status_code=405)
    raise RequestError(f"No route for {method} {path}.", status_code=404)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(scope: Mapping[str, Any]) -> str:
    """The request's ``X-Request-Id`` when it is a sane one, else a new random id (32 hex digits)."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if _REQUEST_ID.match(text):
                return text
    return f"{random.getrandbits(128):032x}"  # reads as uuid4().hex does, at a tenth of its cost
