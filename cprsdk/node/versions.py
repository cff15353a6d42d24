"""The versions a node serves, and their lifecycle.

    CREATING  download (verified by sha256), install (cached by the sdists' sha256), start workers
    READY     serving
    FAILED    ``errorMessage`` says what to fix; the other versions are unaffected
    DELETING  removed from the registry: no new requests; in-flight ones finish, then workers end

Sources: a registry (watched by polling) or one local version (``cprsdk serve --model-dir``).
A model's traffic follows its default version only once that version is READY.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cprsdk.errors import CprError, RegistryError, RequestError
from cprsdk.packaging.install import cache_dir, cached_site
from cprsdk.registry.registry import Registry, fetch_version
from cprsdk.packaging.requirements import ensure_requirements
from cprsdk.node.pool import WorkerPool, WorkerSpec

__all__ = ["Version", "VersionManager"]

log = logging.getLogger("cprsdk.node")


@dataclass
class Version:
    model: str
    name: str
    manifest: dict[str, Any]
    state: str = "CREATING"
    error_message: str = ""
    pool: WorkerPool | None = None
    ready_time: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def resource(self, project: str, *, is_default: bool) -> dict[str, Any]:
        """The AI Platform v1 Version resource (what ``versions.get`` returns)."""
        m = self.manifest
        data = {
            "name": f"projects/{project}/models/{self.model}/versions/{self.name}",
            "state": self.state, "isDefault": is_default,
            "deploymentUri": m.get("deploymentUri"), "packageUris": m.get("packageUris", []),
            "predictionClass": m.get("predictionClass"), "runtimeVersion": m.get("runtimeVersion"),
            "pythonVersion": m.get("pythonVersion"), "createTime": m.get("createTime"),
            "description": m.get("description", ""), "labels": m.get("labels", {}),
        }
        if self.error_message:
            data["errorMessage"] = self.error_message
        return {k: v for k, v in data.items() if v is not None}


class VersionManager:
    """Loads, routes to and retires versions. All methods run on the node's event loop."""

    def __init__(self, *, registry: Registry | None = None, workers: int = 1, predict_timeout: float = 60.0,
                 load_timeout: float = 600.0, max_pending: int = 256, cache: Path | None = None) -> None:
        self.registry = registry
        self.workers = workers
        self.predict_timeout = predict_timeout
        self.load_timeout = load_timeout
        self.max_pending = max_pending
        self.cache = cache or cache_dir()
        self.versions: dict[tuple[str, str], Version] = {}
        self.defaults: dict[str, str | None] = {}  # what the registry says
        self.routing: dict[str, str] = {}  # where traffic goes: the last default that became READY
        self._watch: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()

    # ---------------------------------------------------------------- sources

    def add_local(self, model: str, name: str, *, model_dir: Path, sdists: Sequence[Path],
                  prediction_class: str, extra: dict[str, Any] | None = None) -> Version:
        """Serve one version from local files (no registry); ``extra`` adds manifest fields."""
        manifest = {**(extra or {}), "model": model, "name": name, "predictionClass": prediction_class,
                    "deploymentUri": str(model_dir), "packageUris": [str(s) for s in sdists]}
        version = Version(model, name, manifest)
        self.versions[(model, name)] = version
        self.defaults[model] = name
        version.task = asyncio.create_task(self._load(version, lambda: (model_dir, list(sdists))))
        self.synced.set()
        return version

    def start_watching(self, interval: float = 2.0) -> None:
        self._watch = asyncio.create_task(self._watch_registry(interval))

    async def _watch_registry(self, interval: float) -> None:
        while True:
            try:
                await self.sync()
            except Exception as exc:  # a storage hiccup must never stop the node
                log.error("registry sync failed: %s: %s", type(exc).__name__, exc)
            self.synced.set()
            await asyncio.sleep(interval)

    async def sync(self) -> None:
        """One pass over the registry: load new versions, retire removed ones, follow defaults."""
        assert self.registry is not None
        listing = await asyncio.to_thread(self._read_registry, self.registry)
        seen = set()
        for model, default, manifests in listing:
            self.defaults[model] = default
            for manifest in manifests:
                key = (model, manifest["name"])
                seen.add(key)
                if key not in self.versions:
                    self._create(model, manifest)
        for key, version in list(self.versions.items()):
            if key not in seen and version.state != "DELETING":
                asyncio.create_task(self._retire(version))
        self._update_routing()

    @staticmethod
    def _read_registry(registry: Registry) -> list[tuple[str, str | None, list[dict[str, Any]]]]:
        return [(m.name, m.default_version, registry.list_versions(m.name)) for m in registry.list_models()]

    def _create(self, model: str, manifest: dict[str, Any]) -> None:
        version = Version(model, manifest["name"], manifest)
        self.versions[(model, version.name)] = version
        log.info("version %s/%s: CREATING", model, version.name)
        version.task = asyncio.create_task(self._load(version, lambda: self._fetch(manifest)))

    def _fetch(self, manifest: dict[str, Any]) -> tuple[Path, list[Path]]:
        assert self.registry is not None
        digest = hashlib.sha256(repr(sorted((f["path"], f["sha256"]) for f in manifest.get("files", []))).encode())
        dest = self.cache / "versions" / digest.hexdigest()[:32]
        return fetch_version(self.registry, manifest, dest)

    async def _load(self, version: Version, fetch: Any) -> None:
        start = time.monotonic()
        try:
            model_dir, sdists = await asyncio.to_thread(fetch)
            site, _ = await asyncio.to_thread(cached_site, sdists, root=self.cache)
            sites = tuple(str(p) for p in await asyncio.to_thread(ensure_requirements, site))
            manifest = version.manifest
            spec = WorkerSpec(version.model, version.name, sites, manifest["predictionClass"], str(model_dir),
                              manifest.get("outputFormatter"), tuple(sorted((manifest.get("formatterArgs") or {}).items())))
            pool = WorkerPool(spec, size=self.workers, max_pending=self.max_pending,
                              predict_timeout=self.predict_timeout, load_timeout=self.load_timeout)
            await pool.start()
        except (CprError, OSError) as exc:
            version.state, version.error_message = "FAILED", _failure_text(exc)
            log.error("version %s/%s: FAILED: %s", version.model, version.name, version.error_message)
            return
        if version.state == "DELETING":
            await pool.close()
            return
        version.pool, version.state, version.ready_time = pool, "READY", time.monotonic()
        log.info("version %s/%s: READY in %.1f s", version.model, version.name, time.monotonic() - start)
        self._update_routing()

    async def _retire(self, version: Version) -> None:
        version.state = "DELETING"
        log.info("version %s/%s: DELETING (draining)", version.model, version.name)
        self._update_routing()
        if version.pool is not None:
            await version.pool.close()
        self.versions.pop((version.model, version.name), None)

    def _update_routing(self) -> None:
        for model, default in self.defaults.items():
            target = self.versions.get((model, default or ""))
            if target is not None and target.state == "READY":
                self.routing[model] = target.name
            elif model in self.routing:
                current = self.versions.get((model, self.routing[model]))
                if current is None or current.state != "READY":
                    del self.routing[model]

    # ---------------------------------------------------------------- serving

    def get(self, model: str, version: str | None) -> Version:
        """The version a request names (``None``: the model's default); 404 if unknown."""
        if version is None:
            name = self.routing.get(model) or self.defaults.get(model)
            if name is None:
                raise RegistryError(f"Model {model!r} has no default version on this node.", status_code=404,
                                    hint="Deploy a version of it, or name a version in the URL.")
            version = name
        found = self.versions.get((model, version))
        if found is None:
            raise RegistryError(f"Version {version!r} of model {model!r} is not on this node.", status_code=404)
        return found

    def ready_version(self, model: str, version: str | None) -> Version:
        found = self.get(model, version)
        if found.state == "READY" and found.pool is not None:
            return found
        if found.state == "FAILED":
            raise RequestError(f"Version {found.name!r} of model {model!r} failed to load: {found.error_message}",
                               status_code=503)
        raise RequestError(f"Version {found.name!r} of model {model!r} is {found.state}; try again shortly.",
                           status_code=503)

    def is_default(self, version: Version) -> bool:
        return self.defaults.get(version.model) == version.name

    @property
    def ready(self) -> bool:
        states = [v.state for v in self.versions.values() if v.state != "DELETING"]
        return self.synced.is_set() and "READY" in states and all(s in ("READY", "FAILED") for s in states)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        for version in self.versions.values():
            if version.task is not None and not version.task.done():
                version.task.cancel()
        await asyncio.gather(*(v.pool.close() for v in self.versions.values() if v.pool), return_exceptions=True)


def _failure_text(exc: BaseException) -> str:
    if isinstance(exc, CprError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
