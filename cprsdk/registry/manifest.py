"""The version manifest: the stored record of one version, parsed and validated once.

A manifest is written by ``cprsdk deploy`` (or the node's ``versions.create``), exactly once, as
the last step; everything else reads it through :meth:`Manifest.from_json`. Fields a newer writer
added are kept in :attr:`Manifest.extra` and written back unchanged. :attr:`Manifest.digest` is
the sha256 of the whole stored content: model files and packages with their sha256, class,
settings. Caches of a version are keyed by it, so two versions that differ in anything never
share a folder.

Fetching a version (:meth:`Manifest.fetch_files`, :meth:`Manifest.fetch_package`) writes every
object through a temporary name and verifies its sha256 before it gets its final name.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cprsdk.errors import ManifestError
from cprsdk.storage import Store, open_store

__all__ = ["Artifact", "Manifest", "batching_settings"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KNOWN = ("kind", "schemaVersion", "model", "name", "description", "deploymentUri", "files", "packageUris",
          "packages", "predictionClass", "runtimeVersion", "pythonVersion", "labels", "createTime", "deployId",
          "outputFormatter", "formatterArgs", "framework", "maxBatchSize", "maxBatchWaitMs")


def _need(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, *,
          default: Any = None, required: bool = False) -> Any:
    if key not in data or data[key] is None:
        if required:
            raise ManifestError(f"{where} has no {key!r}.")
        return default
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise ManifestError(f"{where}: {key!r} is {type(value).__name__}, expected {_names(kind)}.")
    return value


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def batching_settings(size: Any, wait_ms: Any, *, size_name: str = "maxBatchSize",
                      wait_name: str = "maxBatchWaitMs") -> tuple[int | None, float | None]:
    """Checked batching settings (None: not given); ValueError names the field and the accepted values.

    A whole number written as a float (``8.0``, as some JSON writers put it) counts as that number.
    """
    if isinstance(size, float) and size.is_integer():
        size = int(size)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"{size_name} is {_shown(size)}; it must be a whole number of instances, at least 1 "
                         "(1 turns batching off).")
    if wait_ms is not None and (isinstance(wait_ms, bool) or not isinstance(wait_ms, (int, float))
                                or not 0 <= wait_ms <= 60_000):
        raise ValueError(f"{wait_name} is {_shown(wait_ms)}; it must be a number of milliseconds from 0 to 60000.")
    return size, None if wait_ms is None else float(wait_ms)


def _shown(value: Any) -> str:
    """A value as JSON spells it (true, "8", NaN), which is how a manifest or a request body holds it."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _batching(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    try:
        size, wait = batching_settings(data.get("maxBatchSize"), data.get("maxBatchWaitMs"))
    except ValueError as exc:
        raise ManifestError(f"{where}: {exc}", hint="Deploy the version again with valid batching flags.") from None
    return {"max_batch_size": size, "max_batch_wait_ms": wait}


def safe_relpath(path: str, where: str) -> PurePosixPath:
    """A relative path that stays inside its folder (no ``..``, not absolute, not empty)."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path or "\x00" in path:
        raise ManifestError(f"{where} names an unsafe path {path!r}; nothing was fetched.")
    return pure


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """One model file or package: where it is stored and what its bytes must hash to."""

    path: str  # path inside the model directory, or the package's file name
    sha256: str
    size: int
    key: str | None = None  # a blob under the registry root
    uri: str | None = None  # or an object where it already was (deploy --origin)

    @classmethod
    def from_json(cls, data: Any, where: str) -> Artifact:
        if not isinstance(data, dict):
            raise ManifestError(f"{where} is {type(data).__name__}, expected an object.")
        path = _need(data, "path", str, where, required=True)
        safe_relpath(path, where)
        sha256 = _need(data, "sha256", str, where, required=True).lower()
        if not _SHA256.match(sha256):
            raise ManifestError(f"{where}: sha256 {sha256!r} is not 64 hex digits.")
        key, uri = _need(data, "key", str, where), _need(data, "uri", str, where)
        if (key is None) == (uri is None):
            raise ManifestError(f"{where} must have exactly one of 'key' and 'uri'.")
        return cls(path=path, sha256=sha256, size=_need(data, "size", int, where, default=0), key=key, uri=uri)

    def to_json(self) -> dict[str, Any]:
        place = {"uri": self.uri} if self.uri is not None else {"key": self.key}
        return {"path": self.path, "sha256": self.sha256, "size": self.size, **place}

    def download(self, store: Store, target: Path) -> None:
        """Write the object to ``target``, verified by sha256 before it gets that name."""
        if self.uri is not None:
            parent, _, leaf = self.uri.rpartition("/")
            open_store(parent).download_file(leaf, target, sha256=self.sha256)
        else:
            store.download_file(str(self.key), target, sha256=self.sha256)


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A version as the registry stores it; immutable once published."""

    model: str
    name: str
    prediction_class: str | None = None
    framework: str | None = None  # as the REST API spells it (SCIKIT_LEARN, XGBOOST, ...), as recorded
    deployment_uri: str = ""
    files: tuple[Artifact, ...] = ()
    packages: tuple[Artifact, ...] = ()
    package_uris: tuple[str, ...] = ()
    description: str = ""
    runtime_version: str | None = None
    python_version: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    create_time: str = ""
    deploy_id: str = ""
    output_formatter: str | None = None
    formatter_args: Mapping[str, Any] = field(default_factory=dict)
    max_batch_size: int | None = None  # dynamic batching: instances per predict call (None: the node's default)
    max_batch_wait_ms: float | None = None  # how long requests are collected while every worker is busy
    schema_version: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields this release does not know, kept as stored

    @classmethod
    def from_json(cls, data: Any, *, source: str) -> Manifest:
        """Parse and validate a stored manifest; :class:`ManifestError` names ``source`` and the field."""
        where = f"The manifest {source}"
        if not isinstance(data, dict):
            raise ManifestError(f"{where} is {type(data).__name__}, expected a JSON object.")
        files = _need(data, "files", list, where, default=[])
        packages = _need(data, "packages", list, where, default=[])
        labels = _need(data, "labels", dict, where, default={})
        return cls(
            model=_need(data, "model", str, where, required=True),
            name=_need(data, "name", str, where, required=True),
            prediction_class=_need(data, "predictionClass", str, where) or None,
            framework=_need(data, "framework", str, where) or None,
            deployment_uri=_need(data, "deploymentUri", str, where, default=""),
            files=tuple(Artifact.from_json(f, f"{where}, files[{i}]") for i, f in enumerate(files)),
            packages=tuple(Artifact.from_json(p, f"{where}, packages[{i}]") for i, p in enumerate(packages)),
            package_uris=tuple(str(u) for u in _need(data, "packageUris", list, where, default=[])),
            description=_need(data, "description", str, where, default=""),
            runtime_version=_need(data, "runtimeVersion", str, where),
            python_version=_need(data, "pythonVersion", str, where),
            labels={str(k): str(v) for k, v in labels.items()},
            create_time=_need(data, "createTime", str, where, default=""),
            deploy_id=_need(data, "deployId", str, where, default=""),
            output_formatter=_need(data, "outputFormatter", str, where),
            formatter_args=_need(data, "formatterArgs", dict, where, default={}),
            schema_version=_need(data, "schemaVersion", int, where, default=1),
            **_batching(data, where),
            extra={k: v for k, v in data.items() if k not in _KNOWN and k != "isDefault"},
        )

    @classmethod
    def loads(cls, data: bytes, *, source: str) -> Manifest:
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"The manifest {source} is not valid JSON ({exc}).",
                                hint="Delete the version and deploy it again.") from None
        return cls.from_json(parsed, source=source)

    def to_json(self) -> dict[str, Any]:
        """The stored form: unknown fields first, as they were, then every known one."""
        return {
            **self.extra,
            "kind": "cprsdk#version",
            "schemaVersion": self.schema_version,
            "model": self.model,
            "name": self.name,
            "description": self.description,
            "deploymentUri": self.deployment_uri,
            "files": [f.to_json() for f in self.files],
            "packageUris": list(self.package_uris),
            "packages": [p.to_json() for p in self.packages],
            "predictionClass": self.prediction_class,
            "runtimeVersion": self.runtime_version,
            "pythonVersion": self.python_version,
            "labels": dict(self.labels),
            "createTime": self.create_time,
            "deployId": self.deploy_id,
            **({"framework": self.framework} if self.framework else {}),
            **({"maxBatchSize": self.max_batch_size} if self.max_batch_size is not None else {}),
            **({"maxBatchWaitMs": self.max_batch_wait_ms} if self.max_batch_wait_ms is not None else {}),
            **({"outputFormatter": self.output_formatter, "formatterArgs": dict(self.formatter_args)}
               if self.output_formatter else {}),
        }

    def dumps(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode()

    @property
    def digest(self) -> str:
        """sha256 of the whole content (canonical JSON): what a version's caches are keyed by."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def fetch_files(self, store: Store, model_dir: Path) -> None:
        """Download every model file under ``model_dir``, each verified by sha256."""
        for index, entry in enumerate(self.files):
            relative = safe_relpath(entry.path, f"The manifest of {self.model}/{self.name}, files[{index}]")
            entry.download(store, model_dir.joinpath(*relative.parts))
        model_dir.mkdir(parents=True, exist_ok=True)
