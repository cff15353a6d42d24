"""The node's HTTP API as a raw ASGI application (``create_app``).

Routes (DESIGN 3.4): AI Platform v1 predict, management (models, versions, operations, jobs: all
behind the admin token, reads included); Vertex AI endpoint predict and get; KServe V1 (its model
GET is the unauthenticated readiness view of a model); ``/healthz``, ``/readyz`` (its ``versions``
map is the unauthenticated readiness view of each version), ``/metrics``. Every error is Google's
envelope; every response carries ``X-Request-ID``. Query strings (``?alt=json``) are ignored.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from cprsdk.errors import CprError, Overloaded, RequestError, error_bytes
from cprsdk.node.jobs import JobRoutes
from cprsdk.node.logthrottle import LogThrottle
from cprsdk.node.management import Management
from cprsdk.node.metrics import Metrics, render_batches
from cprsdk.node.protocol import MODE_AIP, MODE_RAW, MODE_VERTEX, raw_body, split_raw
from cprsdk.node.routes import match_route, request_id_of
from cprsdk.node.versions import VersionManager
from cprsdk.runtime.payload import parse_json, parse_request

__all__ = ["NodeOptions", "create_app"]

log = logging.getLogger("cprsdk.node")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = (b"content-type", b"application/json")


@dataclass
class NodeOptions:
    max_body_bytes: int = 1_500_000
    admin_token: str | None = None  # management routes are off without one
    allowed_prefixes: tuple[str, ...] = ()  # where management may point a version's artifacts
    access_log: bool = False
    health_route: str | None = None  # AIP_HEALTH_ROUTE
    predict_route: str | None = None  # AIP_PREDICT_ROUTE: Vertex body, the only model's default version
    max_records: int = 1000  # operations and finished jobs kept in memory, the newest


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: tuple[tuple[bytes, bytes], ...] = ()  # extra headers (Retry-After)


def _error(exc: CprError) -> _Response:
    lines = str(exc).strip().splitlines()  # a multi-line message never reaches a client
    if len(lines) > 1:
        log.info("error answered by its first line: %s", exc)
    extra = ((b"retry-after", str(exc.retry_after).encode()),) if isinstance(exc, Overloaded) else ()
    return _Response(exc.status_code, error_bytes(exc.status_code, lines[0] if lines else type(exc).__name__),
                     headers=extra)


def _log_line(scope: Scope, request_id: str, status: int, elapsed: float) -> dict[str, Any]:
    return {"requestId": request_id, "method": scope["method"], "path": scope["path"], "status": status,
            "ms": round(elapsed * 1000, 3)}


class Node:
    """The ASGI callable; state lives in the VersionManager."""

    def __init__(self, manager: VersionManager, options: NodeOptions,
                 on_startup: Callable[[VersionManager], Awaitable[None]] | None = None) -> None:
        self.manager = manager
        self.options = options
        self.on_startup = on_startup
        self.stats = Metrics()
        self.management = Management(manager, options.admin_token, options.allowed_prefixes, options.max_records)
        self.jobs = JobRoutes(self.management, options.max_records)
        self.draining = False
        self._throttle = LogThrottle(log, interval=manager.lifecycle.log_interval)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.on_startup is not None:
                    await self.on_startup(self.manager)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.draining = True
                await self.manager.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        request_id = request_id_of(scope)
        self.stats.in_flight += 1
        route = "unknown"
        try:
            route, handler, args = self._route(scope["method"], scope["path"])
            response = await handler(scope, receive, *args)
        except CprError as exc:
            response = _error(exc)
        except Exception as exc:  # never a 500 without the envelope
            log.exception("request %s failed", request_id)
            response = _Response(500, error_bytes(500, f"Internal error: {type(exc).__name__}"))
        finally:
            self.stats.in_flight -= 1
        await send({"type": "http.response.start", "status": response.status, "headers": [
            (b"content-type", response.content_type), (b"content-length", str(len(response.body)).encode()),
            (b"x-request-id", request_id.encode()), *response.headers]})
        await send({"type": "http.response.body", "body": response.body})
        elapsed = time.perf_counter() - start
        self.stats.observe(route, response.status, elapsed)
        if self.options.access_log:
            log.info(json.dumps(_log_line(scope, request_id, response.status, elapsed)))
        elif response.status >= 500 and route not in ("readyz", "healthz"):  # at most one a route and status
            repeated = self._throttle.check((route, response.status))
            if repeated is not None:
                line = _log_line(scope, request_id, response.status, elapsed)
                log.info(json.dumps({**line, "repeated": repeated} if repeated else line))

    def _route(self, method: str, path: str) -> tuple[str, Callable[..., Awaitable[_Response]], tuple[str, ...]]:
        if self.options.predict_route and path == self.options.predict_route and method == "POST":
            return "vertex_predict", self.aip_env_predict, ()
        if self.options.health_route and path == self.options.health_route and method == "GET":
            return "readyz", self.readyz, ()
        name, args = match_route(method, path)
        return name, getattr(self, name), args

    # ---------------------------------------------------------------- bodies

    async def _json_body(self, scope: Scope, receive: Receive) -> bytes:
        content_type = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type != b"application/json":
            raise RequestError(
                f"Content-Type must be application/json, got {content_type.decode('latin-1') or 'none'}.",
                status_code=415, hint="Send the body as JSON with Content-Type: application/json, or use :rawPredict.")
        return await self._body(receive)

    async def _body(self, receive: Receive) -> bytes:
        limit = self.options.max_body_bytes
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError("The client went away.", status_code=499)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(f"The request body is over the {limit} byte limit.", status_code=413,
                                   hint="Send fewer instances per request.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _predict(self, scope: Scope, receive: Receive, model: str, version: str | None,
                       mode: int) -> _Response:
        body = await self._json_body(scope, receive)
        target = self.manager.ready_version(model, version)
        assert target.pool is not None

        def instances() -> int:  # asked only for a request that waits to be batched; else the worker parses
            return len(parse_request(body, vertex=mode == MODE_VERTEX)["instances"])

        try:
            status, answer = await target.pool.predict(body, mode, instances=instances)
        except Overloaded as exc:
            return _error(exc)
        return _Response(status, answer)

    async def _raw_predict(self, scope: Scope, receive: Receive, model: str, version: str | None) -> _Response:
        headers = dict(scope["headers"])
        meta = json.dumps({"contentType": headers.get(b"content-type", b"").decode("latin-1"),
                           "accept": headers.get(b"accept", b"").decode("latin-1")}).encode()
        body = await self._body(receive)
        target = self.manager.ready_version(model, version)
        assert target.pool is not None
        try:
            status, answer = await target.pool.predict(raw_body(meta, body), MODE_RAW)
        except Overloaded as exc:
            return _error(exc)
        if status != 200:
            return _Response(status, answer)
        content_type, data = split_raw(answer)
        return _Response(status, data, content_type or b"application/octet-stream")

    async def aip_raw_predict(self, scope: Scope, receive: Receive, project: str, model: str,
                              version: str) -> _Response:
        return await self._raw_predict(scope, receive, model, version)

    async def aip_raw_predict_default(self, scope: Scope, receive: Receive, project: str, model: str) -> _Response:
        return await self._raw_predict(scope, receive, model, None)

    def _only_version(self) -> tuple[str, str]:
        live = [key for key, v in self.manager.versions.items() if v.state != "DELETING"]
        if len(live) != 1:
            raise RequestError(f"/invocations and /ping need a node with exactly one version; this one has "
                               f"{len(live)}.",
                               status_code=404, hint="Use the :rawPredict route of the version you mean.")
        return live[0]

    async def invocations(self, scope: Scope, receive: Receive) -> _Response:
        model, version = self._only_version()
        return await self._raw_predict(scope, receive, model, version)

    async def ping(self, scope: Scope, receive: Receive) -> _Response:
        model, version = self._only_version()
        state = self.manager.versions[(model, version)].public_state
        return _Response(200 if state == "READY" else 503, json.dumps({"status": state}).encode())

    # ---------------------------------------------------------------- predict routes

    async def aip_predict(self, scope: Scope, receive: Receive, project: str, model: str, version: str) -> _Response:
        return await self._predict(scope, receive, model, version, MODE_AIP)

    async def aip_predict_default(self, scope: Scope, receive: Receive, project: str, model: str) -> _Response:
        return await self._predict(scope, receive, model, None, MODE_AIP)

    async def vertex_predict(self, scope: Scope, receive: Receive, project: str, location: str,
                             endpoint: str) -> _Response:
        return await self._predict(scope, receive, endpoint, None, MODE_VERTEX)

    async def aip_env_predict(self, scope: Scope, receive: Receive) -> _Response:
        models = sorted(self.manager.defaults)
        if len(models) != 1:
            raise RequestError("AIP_PREDICT_ROUTE needs a node with exactly one model.", status_code=404)
        return await self._predict(scope, receive, models[0], None, MODE_VERTEX)

    async def kserve_predict(self, scope: Scope, receive: Receive, model: str) -> _Response:
        return await self._predict(scope, receive, model, None, MODE_AIP)

    # ---------------------------------------------------------------- reads (token)

    async def aip_version(self, scope: Scope, receive: Receive, project: str, model: str, version: str) -> _Response:
        self.management.check_token(dict(scope["headers"]), model=model, version=version)
        found = self.manager.get(model, version)
        return _ok(found.resource(project, is_default=self.manager.is_default(found)))

    async def aip_versions(self, scope: Scope, receive: Receive, project: str, model: str) -> _Response:
        self.management.check_token(dict(scope["headers"]), model=model)
        found = [v for (m, _), v in sorted(self.manager.versions.items()) if m == model]
        if not found and model not in self.manager.defaults:
            raise RequestError(f"Model {model!r} is not on this node.", status_code=404)
        return _ok({"versions": [v.resource(project, is_default=self.manager.is_default(v)) for v in found]})

    async def aip_model(self, scope: Scope, receive: Receive, project: str, model: str) -> _Response:
        self.management.check_token(dict(scope["headers"]), model=model)
        if model not in self.manager.defaults:
            raise RequestError(f"Model {model!r} is not on this node.", status_code=404)
        return _ok(self._model_resource(project, model))

    async def aip_models(self, scope: Scope, receive: Receive, project: str) -> _Response:
        self.management.check_token(dict(scope["headers"]))
        return _ok({"models": [self._model_resource(project, m) for m in sorted(self.manager.defaults)]})

    def _model_resource(self, project: str, model: str) -> dict[str, Any]:
        data: dict[str, Any] = {"name": f"projects/{project}/models/{model}"}
        default = self.manager.defaults.get(model)
        if default and (model, default) in self.manager.versions:
            version = self.manager.versions[(model, default)]
            data["defaultVersion"] = version.resource(project, is_default=True)
        return data

    async def vertex_endpoint(self, scope: Scope, receive: Receive, project: str, location: str,
                              endpoint: str) -> _Response:
        version = self.manager.get(endpoint, None)
        name = f"projects/{project}/locations/{location}/endpoints/{endpoint}"
        return _ok({"name": name, "displayName": endpoint, "deployedModels": [{
            "id": version.name, "model": f"projects/{project}/locations/{location}/models/{endpoint}",
            "displayName": f"{endpoint}/{version.name}"}], "trafficSplit": {version.name: 100}})

    async def kserve_model(self, scope: Scope, receive: Receive, model: str) -> _Response:
        version = self.manager.get(model, None)
        return _ok({"name": model, "ready": version.serving})

    # ---------------------------------------------------------------- management (token)

    async def _mgmt_body(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        body = parse_json(await self._json_body(scope, receive))
        if not isinstance(body, dict):
            raise RequestError(f"The request body must be a JSON object, got {type(body).__name__}.")
        return body

    async def mgmt_create_model(self, scope: Scope, receive: Receive, project: str) -> _Response:
        registry = self.management.authorize(dict(scope["headers"]))
        return _ok(await self.management.create_model(registry, project, await self._mgmt_body(scope, receive)))

    async def mgmt_delete_model(self, scope: Scope, receive: Receive, project: str, model: str) -> _Response:
        registry = self.management.authorize(dict(scope["headers"]), model=model)
        return _ok(await self.management.delete_model(registry, project, model))

    async def mgmt_create_version(self, scope: Scope, receive: Receive, project: str, model: str) -> _Response:
        registry = self.management.authorize(dict(scope["headers"]), model=model)
        body = await self._mgmt_body(scope, receive)
        return _ok(await self.management.create_version(registry, project, model, body))

    async def mgmt_delete_version(self, scope: Scope, receive: Receive, project: str, model: str,
                                  version: str) -> _Response:
        registry = self.management.authorize(dict(scope["headers"]), model=model, version=version)
        return _ok(await self.management.delete_version(registry, project, model, version))

    async def mgmt_set_default(self, scope: Scope, receive: Receive, project: str, model: str,
                               version: str) -> _Response:
        registry = self.management.authorize(dict(scope["headers"]), model=model, version=version)
        return _ok(await self.management.set_default(registry, project, model, version))

    async def mgmt_operation(self, scope: Scope, receive: Receive, project: str, op_id: str) -> _Response:
        self.management.authorize(dict(scope["headers"]))
        return _ok(self.management.operation(project, op_id))

    async def jobs_create(self, scope: Scope, receive: Receive, project: str) -> _Response:
        registry = self.management.authorize(dict(scope["headers"]))
        return _ok(await self.jobs.create_job(registry, project, await self._mgmt_body(scope, receive)))

    async def jobs_list(self, scope: Scope, receive: Receive, project: str) -> _Response:
        self.management.authorize(dict(scope["headers"]))
        return _ok({"jobs": [self.jobs.get_job(j) for j in sorted(self.jobs.jobs)]})

    async def jobs_get(self, scope: Scope, receive: Receive, project: str, job: str) -> _Response:
        self.management.authorize(dict(scope["headers"]))
        return _ok(self.jobs.get_job(job))

    async def jobs_cancel(self, scope: Scope, receive: Receive, project: str, job: str) -> _Response:
        self.management.authorize(dict(scope["headers"]))
        return _ok(await self.jobs.cancel_job(job))

    # ---------------------------------------------------------------- operations

    async def healthz(self, scope: Scope, receive: Receive) -> _Response:
        return _ok({"status": "alive"})

    async def readyz(self, scope: Scope, receive: Receive) -> _Response:
        states = {f"{m}/{v}": version.public_state for (m, v), version in sorted(self.manager.versions.items())}
        ready = self.manager.ready and not self.draining
        body = {"status": "ready" if ready else ("draining" if self.draining else "not ready"), "versions": states}
        return _Response(200 if ready else 503, json.dumps(body).encode())

    async def metrics(self, scope: Scope, receive: Receive) -> _Response:
        batches = render_batches(({"model": m, "version": v}, version.pool.dispatch.stats)
                                 for (m, v), version in sorted(self.manager.versions.items())
                                 if version.pool is not None and version.pool.dispatch.batching)
        return _Response(200, self.stats.render(self._gauges) + batches, b"text/plain; version=0.0.4")

    async def openapi(self, scope: Scope, receive: Receive) -> _Response:
        from cprsdk import __version__
        from cprsdk.node.openapi import document

        return _ok(document(type(self), predict_route=self.options.predict_route,
                            health_route=self.options.health_route, version=__version__))

    def _gauges(self) -> Iterable[tuple[str, str, dict[str, str], float]]:
        versions = sorted(self.manager.versions.items())
        for (m, v), version in versions:
            for state in ("CREATING", "READY", "FAILED", "DELETING", "RESTARTING", "BACKOFF", "CRASH_LOOP"):
                yield ("cprsdk_version_state", "1 for the state each version is in (as /readyz shows it).",
                       {"model": m, "version": v, "state": state}, float(version.public_state == state))
        for (m, v), version in versions:
            yield ("cprsdk_queue_depth", "Requests sent to a version's workers and not yet answered.",
                   {"model": m, "version": v}, float(version.pool.pending if version.pool else 0))


def _ok(data: Any) -> _Response:
    return _Response(200, json.dumps(data).encode())


def create_app(manager: VersionManager, options: NodeOptions | None = None, *,
               on_startup: Callable[[VersionManager], Awaitable[None]] | None = None) -> Node:
    """The node's ASGI application over ``manager``'s versions.

    ``on_startup`` runs in the server's event loop before the first request (it adds the local
    version or starts watching the registry).
    """
    opts = options or NodeOptions(
        health_route=os.environ.get("AIP_HEALTH_ROUTE"), predict_route=os.environ.get("AIP_PREDICT_ROUTE"))
    return Node(manager, opts, on_startup)
