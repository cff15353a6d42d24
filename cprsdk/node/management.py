"""AI Platform v1 management routes that change things, behind a bearer token.

Models create/delete, versions create/delete/setDefault and operations get, as Google's ``ml``
v1 client sends them. They are off unless the node has an admin token; a version's artifact URIs
(``deploymentUri``, ``packageUris``) must sit under one of the allowed prefixes. Changes go to
the registry (the only source of truth) and the node picks them up on its next sync, which a
change triggers at once. Version creation runs ``cprsdk deploy --origin ... --package-uris ...``
in the background and is followed through an Operation.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cprsdk.config import Settings
from cprsdk.errors import ConfigError, CprError, RegistryError, RequestError
from cprsdk.node.versions import VersionManager
from cprsdk.registry.registry import Registry, utc_now, validate_name

__all__ = ["Management"]

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
    operations: dict[str, _Operation] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def authorize(self, headers: dict[bytes, bytes]) -> Registry:
        """The registry to change, after checking the bearer token."""
        if self.token is None:
            raise RequestError("Management routes are off on this node.", status_code=403,
                               hint="Start it with --admin-token-file FILE to turn them on.")
        sent = headers.get(b"authorization", b"").decode("latin-1")
        if not hmac.compare_digest(sent.encode(), f"Bearer {self.token}".encode()):
            raise RequestError("A valid bearer token is required for this route.", status_code=401)
        if self.manager.registry is None:
            raise RequestError("This node serves one local version; it has no registry to change.", status_code=400)
        return self.manager.registry

    def _operation(self, project: str, verb: str, target: str) -> _Operation:
        op = _Operation(f"projects/{project}/operations/{verb}_{next(self._ids)}_{int(time.time())}",
                        {"@type": "type.googleapis.com/google.cloud.ml.v1.OperationMetadata",
                         "createTime": utc_now(), "operationType": verb.upper(), "modelName": target})
        self.operations[op.name.rsplit("/", 1)[1]] = op
        return op

    def check_uri(self, field_name: str, uri: str) -> str:
        if not isinstance(uri, str) or not uri:
            raise RequestError(f"{field_name} must be a URI string, got {uri!r}.")
        if not any(uri == p.rstrip("/") or uri.startswith(p.rstrip("/") + "/") for p in self.allowed_prefixes):
            raise RequestError(f"{field_name} {uri!r} is not under an allowed prefix.", status_code=403,
                               hint="Start the node with --allow-uri-prefix for the storage it may read.")
        return uri

    # ---------------------------------------------------------------- models

    async def create_model(self, registry: Registry, project: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        validate_name("Model", str(name))
        record = await asyncio.to_thread(registry.create_model, str(name), description=str(body.get("description", "")))
        await self.manager.sync()
        return {"name": f"projects/{project}/models/{record.name}", "description": record.description}

    async def delete_model(self, registry: Registry, project: str, model: str) -> dict[str, Any]:
        op = self._operation(project, "delete_model", f"projects/{project}/models/{model}")
        await asyncio.to_thread(registry.delete_model, model)
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
        if not body.get("predictionClass") and not framework_only:
            raise RequestError("predictionClass is required, e.g. predictor.MyPredictor "
                               "(or framework SCIKIT_LEARN / XGBOOST for a model file alone).")
        if await asyncio.to_thread(registry.version_exists, model, name):
            raise RegistryError(f"Version {name!r} of model {model!r} exists already.", status_code=409)
        request = DeployRequest(
            model=model, version=name, origin=origin, package_uris=uris, description=str(body.get("description", "")),
            runtime_version=body.get("runtimeVersion"), python_version=body.get("pythonVersion"),
            labels=dict(body.get("labels") or {}),
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
            op.error = {"code": 9 if code < 500 else 13, "message": str(exc)}
        op.done = True

    async def delete_version(self, registry: Registry, project: str, model: str, version: str) -> dict[str, Any]:
        op = self._operation(project, "delete_version", f"projects/{project}/models/{model}/versions/{version}")
        await asyncio.to_thread(registry.delete_version, model, version)
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
    return token
