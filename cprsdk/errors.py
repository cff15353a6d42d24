"""Every error cprsdk raises on purpose, in one tree.

    CprError                      base; carries an HTTP status and an optional hint
    ├── ConfigError               a flag, CPRSDK_* variable or [tool.cprsdk] key is wrong (400)
    ├── NotSupportedError         a capability this release does not have yet (501)
    ├── PredictorLoadError        the prediction class cannot be imported or used (500)
    │   ├── PredictorImportError  its module (or one that module imports) is missing or broken
    │   └── PredictorContractError the name resolves, but not to a usable Predictor
    ├── PackageError              `cprsdk package` refused the project (400)
    │   ├── QuotaError            code or model directory over a quota
    │   ├── BuildError            the sdist or wheel could not be built
    │   └── PickleCheckError      a pickle in the model directory cannot load, or is unsafe
    │       └── UnreadablePickle  scan_file cannot read the file as a pickle stream
    ├── StorageError              a storage URI, key or backend call failed (500)
    │   ├── NotFound              the object does not exist (404)
    │   ├── AlreadyExists         a create-only write met an existing object (409)
    │   ├── PreconditionFailed    a compare-and-swap write met another version (412)
    │   └── IntegrityError        bytes do not match their checksum (500)
    ├── RegistryError             a registry change was refused: exists, not found, conflict (400 or as given)
    │   └── ManifestError         a stored version manifest is corrupt, truncated or invalid (500 or as given)
    ├── PipelineError             a Pipeline run itself failed (500; item errors go to pipe.errors)
    ├── Stopped                   internal: a Pipeline run is stopping, so its worker leaves
    ├── ItemFailure               internal: one Pipeline item failed, known by a type name and message
    ├── SetupFailure              internal: a Pipeline stage's setup failed, so the run stops
    ├── LoadFailed                internal: a node's worker did not load its predictor (500)
    ├── WorkerLost                internal: a batch worker process died while scoring a shard (500)
    ├── Overloaded                a version's queue on the node is full (503, Retry-After)
    │   └── WorkersUnavailable    internal: no worker of a version runs and its restart backs off (503)
    ├── NodeUnreachable           no prediction node answered a NodeClient (500)
    ├── NodeError                 a prediction node answered a NodeClient with an error (the node's status)
    ├── WaitTimeout               a wait for a node or a version ran out of time (504)
    ├── RequestError              a prediction request is malformed (400 or as given)
    ├── PredictionError           raised by a predictor to choose its status (default 400)
    └── ResponseError             a predictor returned something that is not JSON (500)

Errors that reach HTTP render as Google's envelope through :func:`error_body` (a dict) or
:func:`error_bytes` (its JSON); nothing else builds the envelope.
"""

from __future__ import annotations

import json
from typing import Any

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

__all__ = [
    "AlreadyExists",
    "BuildError",
    "ConfigError",
    "CprError",
    "IntegrityError",
    "ItemFailure",
    "LoadFailed",
    "ManifestError",
    "NodeError",
    "NodeUnreachable",
    "NotFound",
    "NotSupportedError",
    "Overloaded",
    "PackageError",
    "PickleCheckError",
    "PipelineError",
    "PreconditionFailed",
    "PredictionError",
    "PredictorContractError",
    "PredictorImportError",
    "PredictorLoadError",
    "QuotaError",
    "RegistryError",
    "RequestError",
    "ResponseError",
    "SetupFailure",
    "StorageError",
    "Stopped",
    "UnreadablePickle",
    "WaitTimeout",
    "WorkerLost",
    "WorkersUnavailable",
    "error_body",
    "error_bytes",
    "status_name",
]


def status_name(code: int) -> str:
    """Google's canonical status name for an HTTP status code."""
    if code in _STATUS_NAMES:
        return _STATUS_NAMES[code]
    return "INVALID_ARGUMENT" if 400 <= code < 500 else "INTERNAL"


class CprError(Exception):
    """Base of every error cprsdk raises on purpose.

    ``message`` says what went wrong and with which value; ``hint`` says what to do next;
    ``status_code``, when given, replaces the class's HTTP status for this one error.
    """

    status_code: int = 500

    def __init__(self, message: str, *, hint: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if status_code is not None:
            self.status_code = status_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


# Errors with their own constructors.


class Stopped(CprError):
    """The run is stopping; the worker leaves without finishing its items (never leaves a Pipeline)."""

    status_code = 500

    def __init__(self, message: str = "The pipeline run is stopping.") -> None:
        super().__init__(message)


class ItemFailure(CprError):
    """An item (or batch) failed with an error known by its type name and message.

    ``message`` is the error's own message; ``str()`` is ``"<type_name>: <message>"``.
    """

    status_code = 500

    def __init__(self, type_name: str, message: str, *, splittable: bool = True) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name, self.message, self.splittable = type_name, message, splittable

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"


class SetupFailure(CprError):
    """A stage's setup failed in a worker; the run becomes a :class:`PipelineError`.

    ``message`` is the error's own message; ``str()`` names the stage and the type too.
    """

    status_code = 500

    def __init__(self, stage: str, type_name: str, message: str) -> None:
        super().__init__(f"stage {stage!r}: {type_name}: {message}")
        self.stage, self.type_name, self.message = stage, type_name, message

    def __str__(self) -> str:
        return f"stage {self.stage!r}: {self.type_name}: {self.message}"


class PredictionError(CprError):
    """Raise from ``predict`` to answer with your own message and 4xx status.

    ``raise PredictionError("feature 'age' must be positive", status_code=422)``
    """

    status_code = 400

    def __init__(self, message: str, status_code: int = 400) -> None:
        if not isinstance(status_code, int) or not 400 <= status_code <= 599:
            raise ValueError(f"PredictionError status_code must be an int from 400 to 599, got {status_code!r}")
        super().__init__(message)
        self.status_code = status_code


class Overloaded(CprError):
    """A version has ``max_pending`` requests waiting already; the node answers 503.

    ``retry_after`` (whole seconds) becomes the response's ``Retry-After`` header.
    """

    status_code = 503

    def __init__(self, message: str, *, retry_after: int = 1, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = max(1, retry_after)


# Errors that differ only by name, place in the tree and status.


class ConfigError(CprError):
    status_code = 400


class NotSupportedError(CprError):
    status_code = 501


class PredictorLoadError(CprError):
    status_code = 500


class PredictorImportError(PredictorLoadError):
    pass


class PredictorContractError(PredictorLoadError):
    pass


class PackageError(CprError):
    status_code = 400


class QuotaError(PackageError):
    pass


class BuildError(PackageError):
    pass


class PickleCheckError(PackageError):
    pass


class UnreadablePickle(PickleCheckError):
    """The file could not be read as a pickle stream."""


class StorageError(CprError):
    status_code = 500


class NotFound(StorageError):
    status_code = 404


class AlreadyExists(StorageError):
    status_code = 409


class PreconditionFailed(StorageError):
    status_code = 412


class IntegrityError(StorageError):
    status_code = 500


class PipelineError(CprError):
    """The pipeline cannot run: a bad stage, a failed worker setup, or inputs that failed to read."""

    status_code = 500


class LoadFailed(CprError):
    """The predictor did not load in a node's worker: its error, or the load timeout."""

    status_code = 500


class WorkerLost(CprError):
    """A batch worker process died while scoring a shard; the message says how it exited."""

    status_code = 500


class NodeUnreachable(CprError):
    """No prediction node answered at the client's endpoint."""

    status_code = 500


class WaitTimeout(CprError):
    """A wait for a node to start, or for a version to become READY, ran out of time."""

    status_code = 504


class ResponseError(CprError):
    status_code = 500


def error_body(code: int, message: str) -> dict[str, Any]:
    """Google's error envelope, which its client libraries parse; the only place it is built."""
    return {"error": {"code": code, "message": message, "status": status_name(code)}}


def error_bytes(code: int, message: str) -> bytes:
    """:func:`error_body` as the JSON bytes of an HTTP response body."""
    return json.dumps(error_body(code, message)).encode()


class RegistryError(CprError):
    status_code = 400


class ManifestError(RegistryError):
    status_code = 500


class NodeError(CprError):
    """A prediction node answered with an error; ``status_code`` is the node's status."""


class RequestError(CprError):
    status_code = 400


class WorkersUnavailable(Overloaded):
    """No worker of a READY version runs and starting one is backing off (a failed start, a crash loop)."""
