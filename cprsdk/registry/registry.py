"""The registry: models and their versions, kept in object storage, the only source of truth.

Layout under the registry root (any URI that :func:`cprsdk.storage.open_store` opens)::

    blobs/sha256/<hex>                      content-addressed files: model files and sdists
    models/<model>/model.json               the model record (default version; compare-and-swap)
    models/<model>/versions/<version>.json  the version manifest: written once, last, create-only

A version exists exactly when its manifest does. Its blobs are uploaded first, so a deploy that
dies half-way leaves nothing visible, and running it again uploads only the blobs still missing.
The manifest is written with create-only semantics, then read back: a store that ignores
preconditions (the GCS emulator) still cannot make a deploy believe it won when it did not.
The model record's ``defaultVersion`` changes by compare-and-swap on the record's token.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cprsdk.errors import ConfigError, ManifestError, RegistryError
from cprsdk.registry.manifest import Manifest
from cprsdk.storage import AlreadyExists, NotFound, PreconditionFailed, Store, open_store

__all__ = [
    "NAME_RULE",
    "BrokenVersion",
    "ModelRecord",
    "Registry",
    "RegistryError",
    "default_registry_uri",
    "validate_name",
]

log = logging.getLogger("cprsdk.registry")
NAME_RULE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")
_CAS_ATTEMPTS = 20


def default_registry_uri() -> str:
    """The embedded default: ``$XDG_DATA_HOME/cprsdk/registry`` (``~/.local/share/cprsdk/registry``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return str(Path(base) / "cprsdk" / "registry")


def validate_name(kind: str, name: str) -> str:
    """Model and version names follow AI Platform: a letter, then letters, digits and underscores."""
    if not isinstance(name, str) or not NAME_RULE.match(name):
        shown = repr(name) if len(repr(name)) <= 60 else f"{repr(name)[:50]}... ({len(name)} characters)"
        raise ConfigError(
            f"{kind} name {shown} is not valid.",
            hint="Start with a letter; use only letters, digits and underscores (at most 128), e.g. iris_v2.",
        )
    return name


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class BrokenVersion:
    """A version whose manifest cannot be read: ``key`` is the object, ``reason`` why (it names the key)."""

    model: str
    name: str
    key: str
    reason: str

    @property
    def message(self) -> str:
        return (f"The manifest of version {self.name!r} of model {self.model!r} is broken: {self.reason} "
                f"Delete it with `cprsdk versions delete {self.name} --model {self.model}` and deploy it again.")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "state": "BROKEN", "errorMessage": self.message}


@dataclass(frozen=True)
class ModelRecord:
    name: str
    default_version: str | None
    description: str
    create_time: str
    token: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "defaultVersion": self.default_version, "description": self.description,
                "createTime": self.create_time}


def _dumps(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


class Registry:
    """Models and versions under one storage root."""

    def __init__(self, uri: str | None = None, *, store: Store | None = None) -> None:
        self.uri = uri or default_registry_uri()
        self.store = store or open_store(self.uri)

    # ---------------------------------------------------------------- keys

    @staticmethod
    def blob_key(sha256: str) -> str:
        return f"blobs/sha256/{sha256}"

    @staticmethod
    def _model_key(model: str) -> str:
        return f"models/{model}/model.json"

    @staticmethod
    def _version_key(model: str, version: str) -> str:
        return f"models/{model}/versions/{version}.json"

    # ---------------------------------------------------------------- models

    def get_model(self, model: str) -> ModelRecord:
        validate_name("Model", model)
        try:
            blob = self.store.read(self._model_key(model))
        except NotFound:
            raise RegistryError(f"Model {model!r} does not exist in {self.uri}.", status_code=404,
                                hint=f"Create it with `cprsdk models create {model}`, or deploy a version.") from None
        where = self.store.url(self._model_key(model))
        try:
            data = json.loads(blob.data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"The model record {where} is not valid JSON ({exc}).",
                                hint="Rewrite it with `cprsdk models create`, after deleting it.") from None
        default = data.get("defaultVersion") if isinstance(data, dict) else 0
        if not isinstance(default, (str, type(None))):
            raise ManifestError(f"The model record {where} is not a model record (defaultVersion {default!r}).",
                                hint="Delete it and create the model again.")
        return ModelRecord(model, default, str(data.get("description", "")), str(data.get("createTime", "")),
                           blob.token)

    def create_model(self, model: str, *, description: str = "", exist_ok: bool = False) -> ModelRecord:
        validate_name("Model", model)
        record = {"name": model, "defaultVersion": None, "description": description, "createTime": utc_now()}
        try:
            self.store.write(self._model_key(model), _dumps(record), if_absent=True)
        except AlreadyExists:
            if not exist_ok:
                raise RegistryError(f"Model {model!r} already exists in {self.uri}.", status_code=409) from None
        return self.get_model(model)

    def list_models(self) -> list[ModelRecord]:
        names = sorted({info.key.split("/")[1] for info in self.store.list("models/")
                        if info.key.endswith("/model.json") and info.key.count("/") == 2})
        found = []
        for name in names:
            try:
                found.append(self.get_model(name))
            except ManifestError as exc:  # one broken record must not hide every other model
                log.error("%s", exc)
        return found

    def delete_model(self, model: str) -> None:
        good, broken = self.scan_versions(model)
        versions = sorted([v.name for v in good] + [b.name for b in broken])
        if versions:
            raise RegistryError(
                f"Model {model!r} still has {len(versions)} version(s): {', '.join(versions)}.",
                status_code=412, hint="Delete its versions first with `cprsdk versions delete V --model M`.",
            )
        self.store.delete(self._model_key(model))

    def _update_model(self, model: str, change: Callable[[ModelRecord], str | None | bool]) -> ModelRecord:
        """Compare-and-swap the default version: ``change`` returns the new default, or False to stop."""
        for _ in range(_CAS_ATTEMPTS):
            record = self.get_model(model)
            new_default = change(record)
            if new_default is False or new_default == record.default_version:
                return record
            data = {**record.to_json(), "defaultVersion": new_default}
            try:
                self.store.write(self._model_key(model), _dumps(data), if_token=record.token)
                return self.get_model(model)
            except PreconditionFailed:
                continue
        raise RegistryError(f"The record of model {model!r} kept changing; try again.", status_code=409)

    # ---------------------------------------------------------------- versions

    def get_version(self, model: str, version: str) -> Manifest:
        validate_name("Version", version)
        key = self._version_key(model, version)
        try:
            data = self.store.read(key).data
        except NotFound:
            self.get_model(model)
            raise RegistryError(f"Version {version!r} of model {model!r} does not exist.", status_code=404,
                                hint=f"List them with `cprsdk versions list --model {model}`.") from None
        return Manifest.loads(data, source=self.store.url(key))

    def version_exists(self, model: str, version: str) -> bool:
        return self.store.exists(self._version_key(model, version))

    def list_versions(self, model: str) -> list[Manifest]:
        """Every readable version of ``model``, oldest first; :meth:`scan_versions` also gives the broken ones."""
        return self.scan_versions(model)[0]

    def scan_versions(self, model: str) -> tuple[list[Manifest], list[BrokenVersion]]:
        """The versions of ``model``, oldest first, and those whose manifest is corrupt or truncated."""
        self.get_model(model)
        prefix = f"models/{model}/versions/"
        found, broken = [], []
        for info in self.store.list(prefix):
            name = info.key[len(prefix):]
            if not name.endswith(".json") or "/" in name:
                continue
            try:
                found.append(Manifest.loads(self.store.read(info.key).data, source=self.store.url(info.key)))
            except ManifestError as exc:
                reason = exc.message.replace(self.store.url(info.key), info.key)
                broken.append(BrokenVersion(model, name.removesuffix(".json"), info.key, reason))
            except NotFound:  # deleted while we listed
                continue
        return sorted(found, key=lambda v: (v.create_time, v.name)), sorted(broken, key=lambda b: b.name)

    def describe_version(self, model: str, version: str) -> dict[str, Any]:
        """The stored manifest as JSON, with ``isDefault`` (what ``versions describe`` prints)."""
        is_default = self.get_model(model).default_version == version
        try:
            manifest = self.get_version(model, version)
        except ManifestError:
            broken = [b for b in self.scan_versions(model)[1] if b.name == version]
            if not broken:
                raise
            return {**broken[0].to_json(), "isDefault": is_default}
        return {**manifest.to_json(), "isDefault": is_default}

    def describe_versions(self, model: str) -> list[dict[str, Any]]:
        default = self.get_model(model).default_version
        good, broken = self.scan_versions(model)
        return ([{**m.to_json(), "state": "PUBLISHED", "isDefault": m.name == default} for m in good]
                + [{**b.to_json(), "isDefault": b.name == default} for b in broken])

    def publish_version(self, manifest: Manifest, *, set_default: bool = False) -> Manifest:
        """Write the manifest create-only (the last step of a deploy), then settle the default version."""
        model, version = validate_name("Model", manifest.model), validate_name("Version", manifest.name)
        if not manifest.deploy_id:
            manifest = dataclasses.replace(manifest, deploy_id=uuid.uuid4().hex)
        exists = RegistryError(
            f"Version {version!r} of model {model!r} exists already; versions are immutable.", status_code=409,
            hint="Deploy under a new version name, or delete the old one first.",
        )
        if self.version_exists(model, version):
            raise exists
        key = self._version_key(model, version)
        try:
            self.store.write(key, manifest.dumps(), if_absent=True)
        except AlreadyExists:
            raise exists from None
        stored = Manifest.loads(self.store.read(key).data, source=self.store.url(key))
        if stored.deploy_id != manifest.deploy_id:  # a store that ignored create-only: we lost
            raise exists
        self._update_model(model, lambda r: version if set_default or r.default_version is None else False)
        return stored

    def set_default(self, model: str, version: str) -> ModelRecord:
        self.get_version(model, version)
        previous = self.get_model(model).default_version
        record = self._update_model(model, lambda r: version)
        if not self.version_exists(model, version):  # deleted while we switched: switch back
            self._update_model(model, lambda r: previous if r.default_version == version else False)
            raise RegistryError(f"Version {version!r} of model {model!r} was deleted meanwhile.", status_code=409)
        return record

    def delete_version(self, model: str, version: str) -> None:
        record = self.get_model(model)
        if not self.version_exists(model, validate_name("Version", version)):
            self.get_version(model, version)  # the 404 naming it
        good, broken = self.scan_versions(model)  # a broken version can be deleted too
        others = [v.name for v in good if v.name != version] + [b.name for b in broken if b.name != version]
        if record.default_version == version and others:
            raise RegistryError(
                f"Version {version!r} is the default of model {model!r}, which has other versions.",
                status_code=412,
                hint=f"Make another one the default first: `cprsdk versions set-default {others[-1]} --model {model}`.",
            )
        self.store.delete(self._version_key(model, version))
        # Whatever the record said when we started, it must not name a deleted version now.
        self._update_model(model, lambda r: None if r.default_version == version else False)

