"""Every error cprsdk raises on purpose, in one tree.

    CprError                      base; carries an HTTP status and an optional hint
    ├── ConfigError               a flag, CPRSDK_* variable or [tool.cprsdk] key is wrong
    ├── NotSupportedError         a capability this release does not have yet
    ├── PredictorLoadError        the prediction class cannot be imported or used
    │   ├── PredictorImportError  its module (or one that module imports) is missing or broken
    │   └── PredictorContractError the name resolves, but not to a usable Predictor
    ├── PackageError              `cprsdk package` refused the project
    │   ├── QuotaError            code or model directory over a quota
    │   ├── BuildError            the sdist or wheel could not be built
    │   └── PickleCheckError      a pickle in the model directory cannot load, or is unsafe
    ├── StorageError              a storage URI, key or backend call failed
    │   ├── NotFound              the object does not exist (404)
    │   ├── AlreadyExists         a create-only write met an existing object (409)
    │   ├── PreconditionFailed    a compare-and-swap write met another version (412)
    │   └── IntegrityError        bytes do not match their checksum (500)
    ├── RegistryError             a registry change was refused: exists, not found, conflict
    │   └── ManifestError         a stored version manifest is corrupt, truncated or invalid
    ├── PipelineError             a Pipeline run itself failed (cprsdk.pipeline; item errors go to pipe.errors)
    ├── RequestError              a prediction request is malformed (400)
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
    "ManifestError",
    "NotFound",
    "NotSupportedError",
    "PackageError",
    "PickleCheckError",
    "PreconditionFailed",
    "PredictionError",
    "PredictorContractError",
    "PredictorImportError",
    "PredictorLoadError",
    "QuotaError",
    "RegistryError",
    "RequestError",
    "ResponseError",
    "StorageError",
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

    ``message`` says what went wrong and with which value; ``hint`` says what to do next.
    """

    status_code: int = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


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


class RegistryError(CprError):
    def __init__(self, message: str, *, status_code: int = 400, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status_code = status_code


class ManifestError(RegistryError):
    def __init__(self, message: str, *, status_code: int = 500, hint: str | None = None) -> None:
        super().__init__(message, status_code=status_code, hint=hint)


class RequestError(CprError):
    status_code = 400

    def __init__(self, message: str, *, status_code: int = 400, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status_code = status_code


class PredictionError(CprError):
    """Raise from ``predict`` to answer with your own message and 4xx status.

    ``raise PredictionError("feature 'age' must be positive", status_code=422)``
    """

    def __init__(self, message: str, status_code: int = 400) -> None:
        if not isinstance(status_code, int) or not 400 <= status_code <= 599:
            raise ValueError(f"PredictionError status_code must be an int from 400 to 599, got {status_code!r}")
        super().__init__(message)
        self.status_code = status_code


class ResponseError(CprError):
    status_code = 500


def error_body(code: int, message: str) -> dict[str, Any]:
    """Google's error envelope, which its client libraries parse; the only place it is built."""
    return {"error": {"code": code, "message": message, "status": status_name(code)}}


def error_bytes(code: int, message: str) -> bytes:
    """:func:`error_body` as the JSON bytes of an HTTP response body."""
    return json.dumps(error_body(code, message)).encode()
