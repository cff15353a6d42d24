"""The versions a node serves, and their lifecycle.

    CREATING  resolve (``cprsdk.runtime.resolved``: fetch verified, install keyed by content), start workers
    READY     loaded; its ``serving`` state (``lifecycle``) says whether a worker runs right now:
              SERVING, RESTARTING, BACKOFF or CRASH_LOOP (``/readyz`` shows that instead of READY)
    FAILED    ``errorMessage`` says what to fix; the other versions are unaffected
    DELETING  removed from the registry: no new requests; in-flight ones finish, then workers end

Sources: a registry (watched by polling) or one local version (``cprsdk serve --model-dir``).
A model's traffic follows its default version only once that version is READY.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cprsdk.errors import CprError, RegistryError, RequestError
from cprsdk.node.lifecycle import LifecyclePolicy
from cprsdk.node.pool import WorkerPool, WorkerSpec
from cprsdk.node.worker import public_error
from cprsdk.packaging.install import cache_dir
from cprsdk.registry.manifest import Manifest
from cprsdk.registry.registry import BrokenVersion, Registry
from cprsdk.runtime.resolved import ResolvedVersion, resolve_manifest

__all__ = ["Version", "VersionManager"]

log = logging.getLogger("cprsdk.node")


@dataclass
class Version:
    model: str
    name: str
    manifest: Manifest
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
            "deploymentUri": m.deployment_uri or None, "packageUris": list(m.package_uris),
            "predictionClass": m.prediction_class, "runtimeVersion": m.runtime_version,
            "pythonVersion": m.python_version, "createTime": m.create_time or None,
            "description": m.description, "labels": dict(m.labels),
        }
        if self.error_message:
            data["errorMessage"] = self.error_message
        if self.pool is not None:  # what it runs with: its manifest's, the node's default, or off (1)
            data["maxBatchSize"] = self.pool.dispatch.max_size
            data["maxBatchWaitMs"] = round(self.pool.dispatch.wait * 1000, 3)
        else:
            data["maxBatchSize"], data["maxBatchWaitMs"] = m.max_batch_size, m.max_batch_wait_ms
        if self.state == "READY" and self.pool is not None:
            data["servingState"] = self.pool.serving_state
            data["servingDetail"] = self.pool.serving_detail or None
        return {k: v for k, v in data.items() if v is not None}

    @property
    def public_state(self) -> str:
        """The state ``/readyz`` shows: READY only while a worker runs, else the serving state."""
        if self.state != "READY" or self.pool is None or self.pool.serving_state == "SERVING":
            return self.state
        return self.pool.serving_state

    @property
    def serving(self) -> bool:
        return self.public_state == "READY"


class VersionManager:
    """Loads, routes to and retires versions. All methods run on the node's event loop."""

    def __init__(self, *, registry: Registry | None = None, workers: int = 1, predict_timeout: float = 60.0,
                 load_timeout: float = 600.0, max_pending: int = 256, cache: Path | None = None,
                 lifecycle: LifecyclePolicy | None = None, max_batch_size: int = 1,
                 max_batch_wait_ms: float = 0.0) -> None:
        self.registry = registry
        self.lifecycle = lifecycle or LifecyclePolicy()
        self.workers = workers
        self.predict_timeout = predict_timeout
        self.load_timeout = load_timeout
        self.max_pending = max_pending
        self.cache = cache or cache_dir()
        self.max_batch_size = max_batch_size  # for versions whose manifest sets none
        self.max_batch_wait_ms = max_batch_wait_ms
        self.versions: dict[tuple[str, str], Version] = {}
        self.defaults: dict[str, str | None] = {}  # what the registry says
        self.routing: dict[str, str] = {}  # where traffic goes: the last default that became READY
        self._watch: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()

    # ---------------------------------------------------------------- sources

    def add_local(self, manifest: Manifest, resolve: Callable[[], ResolvedVersion]) -> Version:
        """Serve one version from local files (no registry): ``resolve`` builds and installs it."""
        version = Version(manifest.model, manifest.name, manifest)
        self.versions[(manifest.model, manifest.name)] = version
        self.defaults[manifest.model] = manifest.name
        version.task = asyncio.create_task(self._load(version, resolve))
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
        for model, default, manifests, broken in listing:
            self.defaults[model] = default
            for manifest in manifests:
                key = (model, manifest.name)
                seen.add(key)
                if key not in self.versions:
                    self._create(model, manifest)
            for entry in broken:
                seen.add((model, entry.name))
                self._mark_broken(entry)
        for key, version in list(self.versions.items()):
            if key not in seen and version.state != "DELETING":
                asyncio.create_task(self._retire(version))
        self._update_routing()

    @staticmethod
    def _read_registry(registry: Registry) -> list[tuple[str, str | None, list[Manifest], list[BrokenVersion]]]:
        return [(m.name, m.default_version, *registry.scan_versions(m.name)) for m in registry.list_models()]

    def _mark_broken(self, entry: BrokenVersion) -> None:
        """A version whose manifest cannot be read is FAILED, naming the object; the others go on."""
        if (entry.model, entry.name) in self.versions:
            return
        placeholder = Manifest(model=entry.model, name=entry.name, prediction_class="")
        self.versions[(entry.model, entry.name)] = Version(entry.model, entry.name, placeholder, state="FAILED",
                                                           error_message=entry.message)
        log.error("version %s/%s: FAILED: %s", entry.model, entry.name, entry.message)

    def _create(self, model: str, manifest: Manifest) -> None:
        version = Version(model, manifest.name, manifest)
        self.versions[(model, version.name)] = version
        log.info("version %s/%s: CREATING", model, version.name)
        registry = self.registry
        assert registry is not None
        version.task = asyncio.create_task(
            self._load(version, lambda: resolve_manifest(registry, manifest, cache=self.cache)))

    async def _load(self, version: Version, resolve: Callable[[], ResolvedVersion]) -> None:
        start = time.monotonic()
        try:
            resolved = await asyncio.to_thread(resolve)
            spec = WorkerSpec(version.model, version.name, tuple(str(p) for p in resolved.sites),
                              resolved.prediction_class, str(resolved.model_dir), resolved.output_formatter,
                              tuple(sorted(resolved.formatter_args.items())), check=resolved.verify,
                              **self._batching(version.manifest))
            pool = WorkerPool(spec, size=self.workers, max_pending=self.max_pending,
                              predict_timeout=self.predict_timeout, load_timeout=self.load_timeout,
                              policy=self.lifecycle)
            await pool.start()
        except (CprError, OSError) as exc:
            # The client sees the cause and the fix; paths, multi-line details and tracebacks go to the log.
            version.state, version.error_message = "FAILED", public_error(exc)
            log.error("version %s/%s: FAILED: %s", version.model, version.name, _failure_text(exc),
                      exc_info=not isinstance(exc, CprError))
            return
        if version.state == "DELETING":
            await pool.close()
            return
        version.pool, version.state, version.ready_time = pool, "READY", time.monotonic()
        log.info("version %s/%s: READY in %.1f s", version.model, version.name, time.monotonic() - start)
        self._update_routing()

    def _batching(self, manifest: Manifest) -> dict[str, Any]:
        """The version's batching settings: its manifest's, else the node's defaults."""
        size = manifest.max_batch_size if manifest.max_batch_size is not None else self.max_batch_size
        wait = manifest.max_batch_wait_ms if manifest.max_batch_wait_ms is not None else self.max_batch_wait_ms
        return {"max_batch_size": size, "max_batch_wait_ms": wait}

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
        """Synced, at least one version serving, and none CREATING or RESTARTING.

        A version that cannot start (FAILED, BACKOFF, CRASH_LOOP) does not hold the others back.
        """
        states = [v.public_state for v in self.versions.values() if v.state != "DELETING"]
        settled = ("READY", "FAILED", "BACKOFF", "CRASH_LOOP")
        return self.synced.is_set() and "READY" in states and all(s in settled for s in states)

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
