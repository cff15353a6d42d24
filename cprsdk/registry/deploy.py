"""``cprsdk deploy``: check, upload what is missing, then publish an immutable version.

Three sources, as ``gcloud ai-platform versions create`` had them:

- a source folder: every check of ``cprsdk package`` runs first, then its sdist is uploaded;
- built packages, sdists or wheels (``--package``): the model and code checks run on them;
- artifacts already in storage (``--origin URI --package-uris URI,...``, also the node's
  ``versions.create``): quotas are checked on the listings, then each object is downloaded and
  hashed, the model and code checks run on those copies, and the manifest points at the objects
  where they are.

Local files go to content-addressed blobs (``blobs/sha256/<hex>``), so an unchanged file is never
uploaded twice, across versions and models. The manifest is written last (see ``registry``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cprsdk.config import Settings
from cprsdk.errors import ConfigError, NodeError, NodeUnreachable, WaitTimeout
from cprsdk.packaging.install import sha256_file
from cprsdk.packaging.limits import MB, dir_stats, format_mb
from cprsdk.packaging.packager import check_code, check_model, package
from cprsdk.registry.manifest import Manifest
from cprsdk.registry.registry import Registry, RegistryError, utc_now, validate_name
from cprsdk.runtime.frameworks import rest_spelling, run_name
from cprsdk.runtime.resolved import NO_CLASS_HINT
from cprsdk.storage import open_store, upload_many

__all__ = ["DeployResult", "deploy", "wait_for_version"]


@dataclass(frozen=True)
class DeployResult:
    model: str
    version: str
    state: str
    manifest: Manifest
    is_default: bool = False
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    reused_files: int = 0
    reused_bytes: int = 0
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "state": self.state,
                "uploadedFiles": self.uploaded_files, "uploadedBytes": self.uploaded_bytes,
                "reusedFiles": self.reused_files, "reusedBytes": self.reused_bytes,
                "seconds": round(self.seconds, 3),
                "manifest": {**self.manifest.to_json(), "isDefault": self.is_default}}


@dataclass(frozen=True)
class _Artifact:
    path: str  # path inside the model directory, or the sdist's file name
    sha256: str
    size: int
    local: Path | None = None  # a local file to upload (or a downloaded copy of ``uri``, to check)
    uri: str | None = None  # an object already in storage

    def entry(self, key: str | None) -> dict[str, Any]:
        place = {"uri": self.uri} if self.uri else {"key": key}
        return {"path": self.path, "sha256": self.sha256, "size": self.size, **place}


def _hash_files(files: Sequence[tuple[Path, str]]) -> list[_Artifact]:
    def one(item: tuple[Path, str]) -> _Artifact:
        path, name = item
        return _Artifact(name, sha256_file(path), path.stat().st_size, local=path)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, files))


def _local_model_files(model_dir: Path | None) -> list[_Artifact]:
    if model_dir is None:
        raise ConfigError("There is no model directory to deploy.",
                          hint="Train the model first, or point --model-dir at the folder your from_path loads.")
    return _hash_files([(p, p.relative_to(model_dir).as_posix()) for p, _ in dir_stats(model_dir).files])


def _stored_objects(uri: str, *, one_object: bool = False) -> tuple[Any, list[Any]]:
    """(store, object infos) of ``--origin`` (every object under it) or of one ``--package-uris`` entry."""
    parent, _, leaf = uri.rstrip("/").rpartition("/") if one_object else (uri, "", "")
    store = open_store(parent if one_object else uri)
    infos = [store.stat(leaf)] if one_object else store.list()
    if any(info is None for info in infos):
        raise ConfigError(f"{uri} does not exist.", hint="Check the URI; upload the object first.")
    if not infos:
        raise ConfigError(f"--origin {uri} holds no objects.", hint="Point --origin at the model directory's URI.")
    return store, infos


def _stored_artifacts(store: Any, infos: list[Any], into: Path, *, one_object: bool = False) -> list[_Artifact]:
    """Download objects that are already in storage (``--origin`` and ``--package-uris``) into ``into``, hashed.

    The copies stay there for the checks; the manifest points at the objects where they are.
    """
    found = []
    for info in infos:
        name = info.key.rpartition("/")[2] if one_object else info.key
        local = into / name
        store.download_file(info.key, local)
        found.append(_Artifact(name, sha256_file(local), info.size, local=local, uri=store.url(info.key)))
    return found


def _stored_sources(settings: Settings, request: DeployRequest, work: Path,
                    step: Callable[[str], None]) -> tuple[list[_Artifact], list[_Artifact], list[str]]:
    """``--origin`` and ``--package-uris``: quotas from the listings, then every check on downloaded copies."""
    if not request.origin or not (request.package_uris or _framework_version(settings)):
        raise ConfigError("--origin and --package-uris go together.",
                          hint="Give the model directory's URI and the packages' URIs, as gcloud took them.")
    origin_store, origin_infos = _stored_objects(request.origin)
    _check_origin_quota(settings, origin_infos, request.origin)  # from the listing: nothing downloaded yet
    package_objects = [(uri, *_stored_objects(uri, one_object=True)) for uri in request.package_uris]
    from cprsdk.packaging.limits import check_code_quota_sizes

    check_code_quota_sizes([(uri, infos[0].size) for uri, _, infos in package_objects],
                           max_mb=settings.max_code_mb, source=settings.describe("max_code_mb"))
    step(f"downloading the objects under {request.origin}")
    model_dir = work / "origin" / "model"
    files = _stored_artifacts(origin_store, origin_infos, model_dir)
    packages = [a for index, (_, store, infos) in enumerate(package_objects)
                for a in _stored_artifacts(store, infos, work / "packages" / str(index), one_object=True)]
    model = check_model(dataclasses.replace(settings, project_dir=model_dir.parent, model_dir=model_dir), step=step)
    check_code(settings, [a.local for a in packages if a.local is not None], model, work=work, step=step)
    return files, packages, ["artifacts referenced where they are, checked on downloaded copies"]


def _check_origin_quota(settings: Settings, files: list[Any], origin: str) -> None:
    from cprsdk.errors import QuotaError

    total = sum(f.size for f in files)
    if len(files) > settings.max_model_files:
        raise QuotaError(f"{origin} has {len(files)} files, over the {settings.max_model_files}-file model quota.",
                         hint=f"Raise max_model_files ({settings.describe('max_model_files')}).")
    if total > settings.max_model_mb * MB:
        raise QuotaError(f"{origin} is {format_mb(total)}, over the {settings.max_model_mb:g} MB model quota.",
                         hint=f"Raise max_model_mb ({settings.describe('max_model_mb')}).")


@dataclass(frozen=True)
class DeployRequest:
    """What to deploy, beyond the project settings."""

    model: str
    version: str
    packages: tuple[Path, ...] = ()
    origin: str | None = None
    package_uris: tuple[str, ...] = ()
    set_default: bool = False
    description: str = ""
    runtime_version: str | None = None
    python_version: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # fields recorded as given (machineType, ...)


def _gather(settings: Settings, request: DeployRequest, work: Path,
            step: Callable[[str], None]) -> tuple[list[_Artifact], list[_Artifact], list[str]]:
    """(model files, packages, notes) after every check that applies to the source."""
    code_optional = _framework_version(settings)
    if request.origin or request.package_uris:
        return _stored_sources(settings, request, work, step)
    if request.packages or code_optional:
        sdists = list(request.packages)
        for sdist in sdists:
            if not sdist.is_file():
                raise ConfigError(f"Package {sdist} does not exist.", hint="Build it with `cprsdk package`.")
        model = check_model(settings, step=step)
        check_code(settings, sdists, model, work=work, step=step)
        model_dir = model.model_dir
    else:
        result = package(dataclasses.replace(settings, out=work / "dist"), step=step)
        sdists, model_dir = [result.sdist], result.model_dir
    step("hashing the model directory")
    return _local_model_files(model_dir), _hash_files([(s, s.name) for s in sdists]), []


def _framework_version(settings: Settings) -> bool:
    """A framework version (no prediction class): its code packages are optional, as in gcloud."""
    return bool(settings.framework) and not settings.prediction_class


def _manifest(settings: Settings, request: DeployRequest, registry: Registry,
              files: list[_Artifact], packages: list[_Artifact]) -> Manifest:
    def entries(items: list[_Artifact]) -> list[dict[str, Any]]:
        return [a.entry(None if a.uri else registry.blob_key(a.sha256)) for a in items]

    package_entries = entries(packages)
    return Manifest.from_json({
        **request.extra,
        "kind": "cprsdk#version",
        "schemaVersion": 1,
        "model": request.model,
        "name": request.version,
        "description": request.description,
        "deploymentUri": request.origin
        or f"{registry.uri.rstrip('/')}/models/{request.model}/versions/{request.version}",
        "files": entries(files),
        "packageUris": [p.get("uri") or f"{registry.uri.rstrip('/')}/{p['key']}" for p in package_entries],
        "packages": package_entries,
        "predictionClass": settings.prediction_class,
        "framework": rest_spelling(settings.framework) if settings.framework else request.extra.get("framework"),
        "runtimeVersion": request.runtime_version,
        "pythonVersion": request.python_version or f"{sys.version_info.major}.{sys.version_info.minor}",
        "labels": request.labels,
        "createTime": utc_now(),
    }, source=f"of {request.model}/{request.version}")


def _sweep(registry: Registry, step: Callable[[str], None]) -> None:
    """Remove the temporary objects killed uploads left in the registry over an hour ago."""
    removed = registry.store.sweep_temporaries()
    if removed:
        step(f"removed {len(removed)} temporary object(s) left by interrupted uploads: {', '.join(removed[:5])}"
             + (" ..." if len(removed) > 5 else ""))


def deploy(settings: Settings, request: DeployRequest, *, registry: Registry,
           step: Callable[[str], None] = lambda _: None, progress: bool | None = None) -> DeployResult:
    """Check, upload the missing blobs, then publish the version manifest (create-only)."""
    start = time.perf_counter()
    validate_name("Model", request.model)
    validate_name("Version", request.version)
    if run_name(prediction_class=settings.prediction_class, framework=settings.framework) is None:
        raise ConfigError("No prediction class is set.", hint=NO_CLASS_HINT)
    if registry.version_exists(request.model, request.version):
        raise RegistryError(f"Version {request.version!r} of model {request.model!r} exists already; versions are "
                            "immutable.", status_code=409, hint="Deploy under a new version name.")
    with tempfile.TemporaryDirectory(prefix="cprsdk-deploy-") as tmp:
        files, packages, notes = _gather(settings, request, Path(tmp), step)
        uploads = {registry.blob_key(a.sha256): a for a in [*files, *packages] if a.local is not None and not a.uri}
        step(f"uploading to {registry.uri}")
        _sweep(registry, step)
        stats = upload_many(registry.store, [(a.local, key, a.sha256) for key, a in sorted(uploads.items())
                                             if a.local is not None], progress=progress)
    manifest = _manifest(settings, request, registry, files, packages)
    registry.create_model(request.model, exist_ok=True)
    published = registry.publish_version(manifest, set_default=request.set_default)
    is_default = registry.get_model(request.model).default_version == request.version
    return DeployResult(request.model, request.version, "PUBLISHED", published, is_default,
                        stats.uploaded_files, stats.uploaded_bytes, stats.skipped_files, stats.skipped_bytes,
                        time.perf_counter() - start, tuple(notes))


def wait_for_version(endpoint: str, model: str, version: str, *, token: str | None = None, timeout: float = 600,
                     sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll a node until the version is READY or FAILED.

    With the node's admin ``token`` it returns the node's Version resource (with ``errorMessage``);
    without one it reads the unauthenticated ``versions`` map of ``/readyz`` and returns ``{"state": ...}``.
    """
    deadline = time.monotonic() + timeout
    while True:
        state = _version_state(endpoint, model, version, token)
        if state.get("state") in ("READY", "FAILED"):
            return state
        if time.monotonic() > deadline:
            raise WaitTimeout(f"--wait: {model}/{version} was not READY after {timeout:g} s.",
                              hint="The version is published; follow it with `cprsdk versions describe`.")
        sleep(1.0)


def _version_state(endpoint: str, model: str, version: str, token: str | None) -> dict[str, Any]:
    """One look: the Version resource (404: not there yet), or the version's state in /readyz."""
    import urllib.error
    import urllib.request

    base = endpoint.rstrip("/")
    request = urllib.request.Request(f"{base}/readyz")
    if token is not None:
        request = urllib.request.Request(f"{base}/v1/projects/-/models/{model}/versions/{version}",
                                         headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            data = _json_or_empty(exc.read())
        if token is not None and exc.code == 404:
            return {"state": "CREATING"}
        if token is not None or exc.code != 503:  # a node that is not ready still answers its versions map
            message = data.get("error", {}).get("message", "")
            raise NodeError(f"The node at {endpoint} answered {exc.code} for {model}/{version}: {message}",
                            status_code=exc.code, hint="Pass --admin-token-file FILE with the node's token, "
                                                       "or drop it to wait on /readyz.") from None
    except (urllib.error.URLError, OSError) as exc:
        raise NodeUnreachable(
            f"--wait: no prediction node answered at {endpoint} ({getattr(exc, 'reason', exc)}).",
            hint="The version is published in the registry; start a node that watches it (`cprsdk serve`) "
                 "or drop --wait.",
        ) from None
    if token is not None:
        return data
    return {"state": data.get("versions", {}).get(f"{model}/{version}", "CREATING")}


def _json_or_empty(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
