"""The node's OpenAPI 3 document, served at ``GET /openapi.json`` (no token).

Paths come from the route table (:data:`cprsdk.node.routes.ROUTES`): each captured segment is
named after the handler's argument. This module adds what the table does not hold: request
bodies, answers, tags and which routes need the bearer token. Every error answer is Google's
envelope, the ``default`` response of each operation.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from cprsdk.node.routes import ROUTES
from cprsdk.registry.registry import NAME_RULE

__all__ = ["document"]

_SEGMENT = "([^/:]+)"
_JSON = "application/json"
_OBJECT: dict[str, Any] = {"type": "object"}
_NAME: dict[str, Any] = {"type": "string", "pattern": NAME_RULE.pattern}  # AI Platform's rule for names
_NAMED = {"model", "version", "endpoint", "job"}

_ERROR_FIELDS: dict[str, Any] = {
    "type": "object", "required": ["code", "message", "status"],
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "status": {"type": "string"}}}
_ENVELOPE: dict[str, Any] = {"type": "object", "required": ["error"], "properties": dict(error=_ERROR_FIELDS)}

_INSTANCES: dict[str, Any] = {"type": "array", "minItems": 1, "items": {}}
_AIP_BODY: dict[str, Any] = {"type": "object", "required": ["instances"], "properties": {"instances": _INSTANCES},
                             "additionalProperties": True}
_VERTEX_BODY: dict[str, Any] = {"type": "object", "required": ["instances"],
                                "properties": {"instances": _INSTANCES, "parameters": _OBJECT}}
_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
_MODEL_BODY: dict[str, Any] = {"type": "object", "required": ["name"], "properties": {
    "name": _NAME, "description": {"type": "string"}}}
_VERSION_BODY: dict[str, Any] = {"type": "object", "required": ["name", "deploymentUri"], "properties": {
    "name": _NAME, "deploymentUri": {"type": "string"}, "packageUris": _STRINGS,
    "predictionClass": {"type": "string"}, "framework": {"type": "string"}, "description": {"type": "string"},
    "runtimeVersion": {"type": "string"}, "pythonVersion": {"type": "string"},
    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    "maxBatchSize": {"type": "integer", "minimum": 1},
    "maxBatchWaitMs": {"type": "number", "minimum": 0, "maximum": 60000}}}
_JOB_BODY: dict[str, Any] = {"type": "object", "required": ["jobId", "predictionInput"], "properties": {
    "jobId": _NAME, "predictionInput": {"type": "object", "required": ["inputPaths", "outputPath"],
                                                     "properties": {
        "dataFormat": {"type": "string", "enum": ["JSON", "TEXT", "CSV"]}, "inputPaths": _STRINGS,
        "outputPath": {"type": "string"}, "modelName": {"type": "string"}, "versionName": {"type": "string"},
        "batchSize": {"type": "integer", "minimum": 1}, "maxWorkerCount": {"type": "integer", "minimum": 1}}}}}
_BINARY: dict[str, Any] = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


def _obj(*required: str, **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties}


_PREDICTIONS = _obj("predictions", predictions={"type": "array"})
_STATUS = _obj("status", status={"type": "string"})

# handler: (tag, summary, request body schema or content, answer schema or content)
_OPERATIONS: dict[str, tuple[str, str, Any, Any]] = {
    "aip_predict": ("AI Platform v1", "Predict with a version", _AIP_BODY, _PREDICTIONS),
    "aip_predict_default": ("AI Platform v1", "Predict with the model's default version", _AIP_BODY, _PREDICTIONS),
    "aip_raw_predict": ("AI Platform v1", "Predict with a version, any body", _BINARY, _BINARY),
    "aip_raw_predict_default": ("AI Platform v1", "Predict with the default version, any body", _BINARY, _BINARY),
    "aip_version": ("management", "Get a version", None, _obj("name", name={"type": "string"})),
    "aip_versions": ("management", "List a model's versions", None, _obj("versions", versions={"type": "array"})),
    "aip_model": ("management", "Get a model", None, _obj("name", name={"type": "string"})),
    "aip_models": ("management", "List the models", None, _obj("models", models={"type": "array"})),
    "invocations": ("SageMaker", "Predict with the node's only version, any body", _BINARY, _BINARY),
    "ping": ("SageMaker", "Whether the node's only version is ready (200) or not (503)", None, _STATUS),
    "vertex_predict": ("Vertex AI", "Predict with an endpoint (a model's default version)", _VERTEX_BODY,
                       _obj("predictions", "deployedModelId", predictions={"type": "array"},
                            deployedModelId={"type": "string"})),
    "vertex_endpoint": ("Vertex AI", "Get an endpoint", None, _obj("name", "deployedModels", name={"type": "string"},
                                                                   deployedModels={"type": "array"})),
    "kserve_predict": ("KServe V1", "Predict with a model's default version", _AIP_BODY, _PREDICTIONS),
    "kserve_model": ("KServe V1", "Whether a model is ready (no token, no URIs)", None,
                     _obj("name", "ready", name={"type": "string"}, ready={"type": "boolean"})),
    "mgmt_create_model": ("management", "Create a model", _MODEL_BODY, _OBJECT),
    "mgmt_delete_model": ("management", "Delete a model (an operation)", None, _OBJECT),
    "mgmt_create_version": ("management", "Create a version (an operation)", _VERSION_BODY, _OBJECT),
    "mgmt_delete_version": ("management", "Delete a version (an operation)", None, _OBJECT),
    "mgmt_set_default": ("management", "Make a version the model's default", None, _OBJECT),
    "mgmt_operation": ("management", "Get an operation", None, _OBJECT),
    "jobs_create": ("jobs", "Start a batch prediction job", _JOB_BODY, _OBJECT),
    "jobs_list": ("jobs", "List the jobs", None, _obj("jobs", jobs={"type": "array"})),
    "jobs_get": ("jobs", "Get a job", None, _OBJECT),
    "jobs_cancel": ("jobs", "Cancel a job", None, _OBJECT),
    "healthz": ("operations", "Alive", None, _STATUS),
    "readyz": ("operations", "Ready (200) or not (503), with each version's state", None,
               _obj("status", "versions", status={"type": "string"},
                    versions={"type": "object", "additionalProperties": {"type": "string"}})),
    "metrics": ("operations", "Prometheus metrics", None, {"text/plain": {"schema": {"type": "string"}}}),
    "openapi": ("operations", "This document", None, _OBJECT),
}
_TOKEN = {"aip_version", "aip_versions", "aip_model", "aip_models", "mgmt_create_model", "mgmt_delete_model",
          "mgmt_create_version", "mgmt_delete_version", "mgmt_set_default", "mgmt_operation",
          "jobs_create", "jobs_list", "jobs_get", "jobs_cancel"}
_MAY_503 = {"ping", "readyz"}


def _content(schema: Any) -> dict[str, Any]:
    """A content map: ``schema`` as JSON unless it is a content map already."""
    if isinstance(schema, dict) and any("/" in key for key in schema):
        return schema
    return {_JSON: {"schema": schema}}


def _template(pattern: str, names: list[str]) -> str:
    """``^/v1/models/([^/:]+):predict$`` with names ``[model]`` -> ``/v1/models/{model}:predict``."""
    path = pattern.removeprefix("^").removesuffix("$")
    for name in names:
        path = path.replace(_SEGMENT, "{" + name + "}", 1)
    if _SEGMENT in path:
        raise ValueError(f"Route {pattern} captures more segments than its handler takes ({names}).")
    return re.sub(r"\\(.)", r"\1", path)


def _operation(name: str, params: list[str]) -> dict[str, Any]:
    tag, summary, body, answer = _OPERATIONS[name]
    responses: dict[str, Any] = {"200": {"description": "OK", "content": _content(answer)},
                                 "default": {"description": "An error, as Google's envelope",
                                             "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}}
    if name in _MAY_503:
        responses["503"] = {"description": "Not ready", "content": _content(answer)}
    operation: dict[str, Any] = {"operationId": name, "tags": [tag], "summary": summary, "responses": responses}
    if params:
        operation["parameters"] = [{"name": p, "in": "path", "required": True,
                                    "schema": _NAME if p in _NAMED else {"type": "string", "pattern": "^[^/:]+$"}}
                                   for p in params]
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _content(body)}
    if name in _TOKEN:
        operation["security"] = [{"bearer": []}]
    return operation


def _handler_params(handlers: type, name: str) -> list[str]:
    """The path arguments of a handler: every argument after ``self, scope, receive``."""
    return list(inspect.signature(getattr(handlers, name)).parameters)[3:]


def document(handlers: type, *, predict_route: str | None = None, health_route: str | None = None,
             version: str = "") -> dict[str, Any]:
    """The OpenAPI 3.0 document of every route ``handlers`` (the node's class) serves."""
    paths: dict[str, dict[str, Any]] = {}
    for verb, pattern, name in ROUTES:
        params = _handler_params(handlers, name)
        paths.setdefault(_template(pattern.pattern, params), {})[verb.lower()] = _operation(name, params)
    if predict_route:  # AIP_PREDICT_ROUTE: a Vertex body for the only model
        paths.setdefault(predict_route, {})["post"] = {**_operation("vertex_predict", []),
                                                       "operationId": "aip_env_predict"}
    if health_route:
        paths.setdefault(health_route, {})["get"] = {**_operation("readyz", []), "operationId": "aip_env_health"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "cprsdk prediction node", "version": version or "0",
                 "description": "AI Platform v1, Vertex AI, KServe V1 and SageMaker routes, management "
                                "(behind the admin token), batch jobs, health and metrics."},
        "paths": paths,
        "components": {"schemas": {"Error": _ENVELOPE},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
