"""AI Platform v1 management routes, behind a bearer token.

Models create/delete, versions create/delete/setDefault and operations get, as Google's ``ml``
v1 client sends them, and the reads of models and versions (the app checks the token through
:meth:`Management.check_token`). They are off unless the node has an admin token; a version's artifact URIs
(``deploymentUri``, ``packageUris``) must sit under one of the allowed prefixes. Changes go to
the registry (the only source of truth) and the node picks them up on its next sync, which a
change triggers at once. Version creation runs ``cprsdk deploy --origin ... --package-uris ...``
in the background and is followed through an Operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cprsdk.config import Settings
from cprsdk.errors import ConfigError, CprError, RegistryError, RequestError
from cprsdk.node.versions import VersionManager
from cprsdk.node.worker import public_error
from cprsdk.registry.registry import Registry, utc_now, validate_name

__all__ = ["Management", "drop_oldest"]

log = logging.getLogger("cprsdk.node")

_KNOWN_VERSION_FIELDS = {"name", "deploymentUri", "packageUris", "predictionClass", "runtimeVersion",
                         "pythonVersion", "description", "labels", "framework"}


@dataclass
class _Operation:
    name: str
    metadata: dict[str, Any]
    done: bool = False
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def resource(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "metadata": self.metadata, "done": self.done}
        if self.error is not None:
            data["error"] = self.error
        elif self.response is not None:
            data["response"] = self.response
        return data


@dataclass
class Management:
    manager: VersionManager
    token: str | None = None
    allowed_prefixes: tuple[str, ...] = ()
    max_records: int = 1000  # operations kept in memory: the newest, finished ones dropped first
    operations: dict[str, _Operation] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def authorize(self, headers: dict[bytes, bytes], *, model: str | None = None,
                  version: str | None = None) -> Registry:
        """The registry to change, after checking the bearer token (and the names in the URL)."""
        self.check_token(headers, model=model, version=version)
        if self.manager.registry is None:
            raise RequestError("This node serves one local version; it has no registry to change.", status_code=400)
        return self.manager.registry

    def check_token(self, headers: dict[bytes, bytes], *, model: str | None = None,
                    version: str | None = None) -> None:
        """403 when management is off (no token file), 401 unless the request bears the token.

        Then the model and version names of the URL must be valid names (400), as AI Platform's were.
        """
        if self.token is None:
            raise RequestError("Management routes are off on this node.", status_code=403,
                               hint="Start it with --admin-token-file FILE to turn them on.")
        sent = headers.get(b"authorization", b"").decode("latin-1")
        if not hmac.compare_digest(sent.encode(), f"Bearer {self.token}".encode()):
            raise RequestError("A valid bearer token is required for this route.", status_code=401,
                               hint="Send Authorization: Bearer <the token in the node's --admin-token-file>.")
        if model is not None:
            validate_name("Model", model)
        if version is not None:
            validate_name("Version", version)

    def _operation(self, project: str, verb: str, target: str) -> _Operation:
        op = _Operation(f"projects/{project}/operations/{verb}_{next(self._ids)}_{int(time.time())}",
                        {"@type": "type.googleapis.com/google.cloud.ml.v1.OperationMetadata",
                         "createTime": utc_now(), "operationType": verb.upper(), "modelName": target})
        self.operations[op.name.rsplit("/", 1)[1]] = op
        drop_oldest(self.operations, self.max_records, lambda o: o.done)
        extra = len(self.operations) - self.max_records  # all still running: the oldest go anyway
        for key in list(self.operations)[:max(0, extra)]:
            del self.operations[key]
        return op

    def check_uri(self, field_name: str, uri: str) -> str:
        """``uri`` in its normalized form, if it sits under an allowed prefix; else a 403.

        Local paths and ``file://`` URIs are compared by realpath (symlinks followed); other schemes
        by bucket and key segments, refusing ``.``, ``..``, empty segments and encoded separators.
        """
        if not isinstance(uri, str) or not uri:
            raise RequestError(f"{field_name} must be a URI string, got {uri!r}.")
        refused = RequestError(f"{field_name} {uri!r} is not under an allowed prefix.", status_code=403,
                               hint="Name the artifact by its plain path (no '..', '//' or %-escapes) under "
                                    "a prefix given to the node with --allow-uri-prefix.")
        try:
            wanted = _normalized(uri)
        except ValueError:
            raise refused from None
        for prefix in self.allowed_prefixes:
            with contextlib.suppress(ValueError):
                if _is_under(wanted, _normalized(prefix)):
                    return _render(wanted)
        raise refused

    # ---------------------------------------------------------------- models

    async def create_model(self, registry: Registry, project: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        validate_name("Model", str(name))
        record = await asyncio.to_thread(registry.create_model, str(name), description=str(body.get("description", "")))
        await self.manager.sync()
        return {"name": f"projects/{project}/models/{record.name}", "description": record.description}

    async def delete_model(self, registry: Registry, project: str, model: str) -> dict[str, Any]:
        await asyncio.to_thread(registry.delete_model, model)
        op = self._operation(project, "delete_model", f"projects/{project}/models/{model}")
        op.done, op.response = True, {}
        await self.manager.sync()
        return op.resource()

    # ---------------------------------------------------------------- versions

    async def create_version(self, registry: Registry, project: str, model: str,
                             body: dict[str, Any]) -> dict[str, Any]:
        from cprsdk.registry.deploy import DeployRequest

        name = validate_name("Version", str(body.get("name")))
        origin = self.check_uri("deploymentUri", body.get("deploymentUri", ""))
        framework_only = bool(body.get("framework")) and not body.get("predictionClass")
        if framework_only:
            from cprsdk.runtime.frameworks import normalize_framework

            normalize_framework(str(body["framework"]), where="framework")
        packages = body.get("packageUris") or []
        if not isinstance(packages, list) or not (packages or framework_only):
            raise RequestError("packageUris must be a non-empty list of sdist URIs.")
        uris = tuple(self.check_uri("packageUris", u) for u in packages)
        _check_batching(body)
        if not body.get("predictionClass") and not framework_only:
            raise RequestError("predictionClass is required, e.g. predictor.MyPredictor "
                               "(or framework SCIKIT_LEARN / XGBOOST for a model file alone).")
        if await asyncio.to_thread(registry.version_exists, model, name):
            raise RegistryError(f"Version {name!r} of model {model!r} exists already.", status_code=409)
        request = DeployRequest(
            model=model, version=name, origin=origin, package_uris=uris, description=str(body.get("description", "")),
            runtime_version=body.get("runtimeVersion"), python_version=body.get("pythonVersion"),
            labels=_labels(body.get("labels")),
            extra={k: v for k, v in body.items() if k not in _KNOWN_VERSION_FIELDS},
        )
        given_class = body.get("predictionClass")
        settings = Settings(project_dir=Path.cwd(), prediction_class=str(given_class) if given_class else None,
                            framework=str(body["framework"]) if body.get("framework") else None)
        op = self._operation(project, "create_version", f"projects/{project}/models/{model}")
        op.metadata["version"] = {**body, "name": f"projects/{project}/models/{model}/versions/{name}"}
        asyncio.create_task(self._deploy(op, registry, settings, request, project))
        return op.resource()

    async def _deploy(self, op: _Operation, registry: Registry, settings: Settings, request: Any,
                      project: str) -> None:
        from cprsdk.registry.deploy import deploy

        try:
            await asyncio.to_thread(deploy, settings, request, registry=registry)
            await self.manager.sync()
            op.response = self.manager.get(request.model, request.version).resource(project, is_default=False)
        except (CprError, OSError) as exc:
            code = getattr(exc, "status_code", 500)
            op.error = {"code": 9 if code < 500 else 13, "message": public_error(exc)}
            log.error("operation %s failed: %s", op.name, exc)
        op.done = True

    async def delete_version(self, registry: Registry, project: str, model: str, version: str) -> dict[str, Any]:
        await asyncio.to_thread(registry.delete_version, model, version)
        op = self._operation(project, "delete_version", f"projects/{project}/models/{model}/versions/{version}")
        op.done, op.response = True, {}
        await self.manager.sync()
        return op.resource()

    async def set_default(self, registry: Registry, project: str, model: str, version: str) -> dict[str, Any]:
        await asyncio.to_thread(registry.set_default, model, version)
        await self.manager.sync()
        found = self.manager.get(model, version)
        return found.resource(project, is_default=True)

    def operation(self, project: str, op_id: str) -> dict[str, Any]:
        if op_id not in self.operations:
            raise RequestError(f"Operation {op_id!r} is not known to this node.", status_code=404)
        return self.operations[op_id].resource()


def _check_batching(body: dict[str, Any]) -> None:
    """A 400 naming the field when ``maxBatchSize`` or ``maxBatchWaitMs`` is not a valid value."""
    from cprsdk.registry.manifest import batching_settings

    try:
        batching_settings(body.get("maxBatchSize"), body.get("maxBatchWaitMs"))
    except ValueError as exc:
        raise RequestError(str(exc), hint="Send the version again with valid batching fields.") from None


def drop_oldest(records: dict[str, Any], limit: int, finished: Callable[[Any], bool]) -> None:
    """Drop the oldest finished records (in insertion order) until at most ``limit`` records remain."""
    extra = len(records) - limit
    for key in [k for k, v in records.items() if finished(v)][:max(0, extra)]:
        del records[key]


_ENCODED = re.compile(r"%(2f|2e|5c|00)", re.IGNORECASE)


def _normalized(uri: str) -> tuple[str, tuple[str, ...]]:
    """(scheme, segments): a local path's realpath, or a bucket and key checked segment by segment."""
    if _ENCODED.search(uri) or "\\" in uri or "\x00" in uri:
        raise ValueError(uri)
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() == "file":
        path = rest if sep else uri
        if sep and not path.startswith("/"):
            raise ValueError(uri)
        return "file", tuple(s for s in os.path.realpath(path).split("/") if s)
    segments = rest.rstrip("/").split("/") if rest.rstrip("/") else []
    if not segments or any(s in ("", ".", "..") for s in segments):
        raise ValueError(uri)
    return scheme.lower(), tuple(segments)


def _is_under(wanted: tuple[str, tuple[str, ...]], prefix: tuple[str, tuple[str, ...]]) -> bool:
    return wanted[0] == prefix[0] and wanted[1][:len(prefix[1])] == prefix[1]


def _render(wanted: tuple[str, tuple[str, ...]]) -> str:
    scheme, segments = wanted
    if scheme == "file":
        return "file:///" + "/".join(segments)
    return f"{scheme}://" + "/".join(segments)


def read_token(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"Cannot read --admin-token-file {path}: {exc.strerror}.") from None
    if len(token) < 16:
        raise ConfigError(f"The admin token in {path} has {len(token)} characters; use at least 16.",
                          hint="Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    from cprsdk.runtime.child import protect_secret

    protect_secret(path, token)  # never in a worker's environment
    return token


def _labels(value: Any) -> dict[str, str]:
    """A version's ``labels``: an object of strings (400 otherwise, never a 500)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise RequestError(f"labels must be an object of string values, got {value!r:.80}.",
                           hint='Send e.g. "labels": {"team": "search"}.')
    return dict(value)
