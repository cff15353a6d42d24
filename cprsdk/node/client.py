"""A small client for a prediction node's AI Platform routes (``cprsdk predict``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from cprsdk.errors import NodeError, NodeUnreachable, error_body

__all__ = ["NodeClient", "NodeResponse"]


@dataclass(frozen=True)
class NodeResponse:
    status: int
    body: Any
    request_id: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class NodeClient:
    """``NodeClient("http://127.0.0.1:8080").predict("iris", [[5.1, 3.5, 1.4, 0.2]])``."""

    def __init__(self, endpoint: str, *, project: str = "local", timeout: float = 120.0,
                 token: str | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.project = project
        self.timeout = timeout
        self.token = token  # the node's admin token, for management routes (reads included)

    def request(self, method: str, path: str, body: Any = None) -> NodeResponse:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(f"{self.endpoint}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return NodeResponse(resp.status, json.loads(resp.read() or b"null"), resp.headers.get("x-request-id"))
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = error_body(exc.code, raw.decode("utf-8", "replace"))
            return NodeResponse(exc.code, payload, exc.headers.get("x-request-id"))
        except (urllib.error.URLError, OSError) as exc:
            raise NodeUnreachable(f"No prediction node answered at {self.endpoint} ({getattr(exc, 'reason', exc)}).",
                                  hint="Start one with `cprsdk serve`, or pass --endpoint URL.") from None

    def predict_body(self, model: str, body: dict[str, Any], version: str | None = None) -> NodeResponse:
        path = f"/v1/projects/{self.project}/models/{model}"
        path += f"/versions/{version}:predict" if version else ":predict"
        return self.request("POST", path, body)

    def predict(self, model: str, instances: list[Any], version: str | None = None, **kwargs: Any) -> Any:
        """The predictions, or :class:`NodeError` with the node's message and status."""
        response = self.predict_body(model, {"instances": instances, **kwargs}, version)
        if not response.ok:
            error = (response.body or {}).get("error", {}) if isinstance(response.body, dict) else {}
            raise NodeError(error.get("message") or f"HTTP {response.status}", status_code=response.status)
        return response.body["predictions"]

    def raw_predict(self, model: str, data: bytes, content_type: str, *, version: str | None = None,
                    accept: str | None = None) -> tuple[int, bytes, str]:
        """POST a raw body to ``:rawPredict``; (status, body, content type)."""
        path = f"/v1/projects/{self.project}/models/{model}"
        path += f"/versions/{version}:rawPredict" if version else ":rawPredict"
        headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
        req = urllib.request.Request(f"{self.endpoint}{path}", data=data, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.read(), resp.headers.get("content-type", "")
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read(), exc.headers.get("content-type", "")
        except (urllib.error.URLError, OSError) as exc:
            raise NodeUnreachable(f"No prediction node answered at {self.endpoint} ({getattr(exc, 'reason', exc)}).",
                                  hint="Start one with `cprsdk serve`, or pass --endpoint URL.") from None

    def version(self, model: str, version: str) -> NodeResponse:
        return self.request("GET", f"/v1/projects/{self.project}/models/{model}/versions/{version}")
