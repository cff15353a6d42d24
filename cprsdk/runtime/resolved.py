"""One resolution of a version into what a worker runs: :class:`ResolvedVersion`.

Two functions build it, and nothing else turns a version into its parts:

- :func:`resolve_manifest` (and :func:`resolve_registry_version`) from a registry version: model
  files fetched and verified into a folder keyed by the manifest's digest, packages installed into
  a folder keyed by their verified sha256;
- :func:`resolve_local` from local files (``local predict``, ``serve --model-dir``, batch on
  local files, ``cprsdk.testing``): source folders are built, every package is installed from its
  hashed bytes, and the model directory is used where it is.

The node, batch, ``serve``, ``local predict`` and ``cprsdk.testing`` all run what this returns.
Cache layout (``<cache>`` is :func:`cprsdk.packaging.install.cache_dir`)::

    <cache>/versions/<manifest digest>/model/   a registry version's model files, verified
    <cache>/versions/<manifest digest>.json     their record (written last)
    <cache>/site/<key>/                         installed packages (see packaging.install)
    <cache>/requirements/<key>/                 their unmet requirements (see packaging.requirements)
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cprsdk.config import Settings, load_settings
from cprsdk.errors import ConfigError, IntegrityError
from cprsdk.packaging import install
from cprsdk.packaging.install import PackageFile, cache_dir, cached_site, discard, publish, sha256_file, verify_tree
from cprsdk.packaging.requirements import declared_requirements, ensure_requirements
from cprsdk.registry.manifest import Manifest
from cprsdk.registry.registry import Registry
from cprsdk.runtime.cache import bound_cache, hold
from cprsdk.runtime.frameworks import framework_of, run_name

__all__ = ["ResolvedVersion", "download_model_dir", "local_package_files", "resolve_local", "resolve_manifest",
           "resolve_registry_version"]

log = logging.getLogger("cprsdk.resolve")

NO_CLASS_HINT = ("Pass --prediction-class module.Class (or --framework scikit-learn|xgboost to serve model.joblib, "
                 "model.pkl or model.bst as it is), or set prediction_class in [tool.cprsdk].")


@dataclass(frozen=True, kw_only=True)
class ResolvedVersion:
    """A version, ready to run: the class, a local model directory and the installed folders."""

    model: str
    name: str
    prediction_class: str  # or, for a framework version, frameworks.framework_target(framework)
    model_dir: Path
    sites: tuple[Path, ...]
    output_formatter: str | None = None
    formatter_args: Mapping[str, Any] = field(default_factory=dict)
    requirements: tuple[str, ...] = ()
    digest: str = ""  # the manifest's digest (registry) or the packages' site key (local)
    framework: str | None = None  # SCIKIT_LEARN or XGBOOST when the version has no prediction class

    def verify(self) -> None:
        """Raise :class:`IntegrityError` naming the file if an installed folder changed since install."""
        for site in self.sites:
            problem = verify_tree(site)
            if problem is not None:
                raise IntegrityError(f"Version {self.name} of model {self.model}: {problem}; it is not served.",
                                     hint="Restart the node (or run the command again) to install it afresh.")

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "name": self.name, "prediction_class": self.prediction_class,
                "model_dir": str(self.model_dir), "sites": [str(s) for s in self.sites],
                "output_formatter": self.output_formatter, "formatter_args": dict(self.formatter_args),
                "requirements": list(self.requirements), "digest": self.digest,
                "framework": self.framework}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResolvedVersion:
        return cls(model=data["model"], name=data["name"], prediction_class=data["prediction_class"],
                   model_dir=Path(data["model_dir"]), sites=tuple(Path(s) for s in data["sites"]),
                   output_formatter=data.get("output_formatter"), formatter_args=data.get("formatter_args") or {},
                   requirements=tuple(data.get("requirements") or ()), digest=data.get("digest", ""),
                   framework=data.get("framework"))


def _with_requirements(site: Path, root: Path | None) -> tuple[tuple[Path, ...], tuple[str, ...]]:
    return tuple(ensure_requirements(site, root=root)), tuple(declared_requirements(site))


# ---------------------------------------------------------------- from the registry


def resolve_registry_version(registry: Registry, model: str, version: str | None = None, *,
                             cache: Path | None = None) -> ResolvedVersion:
    """The named version (``None``: the model's default) of a registry, resolved."""
    name = version or registry.get_model(model).default_version
    if name is None:
        raise ConfigError(f"Model {model!r} has no default version.", hint="Name a version.")
    return resolve_manifest(registry, registry.get_version(model, name), cache=cache)


def resolve_manifest(registry: Registry, manifest: Manifest, *, cache: Path | None = None) -> ResolvedVersion:
    """Fetch (verified) and install a registry version into folders keyed by its content."""
    target = run_name(prediction_class=manifest.prediction_class, framework=manifest.framework,
                      where=f"Version {manifest.name} of model {manifest.model}: framework")
    if target is None:
        raise ConfigError(f"Version {manifest.name} of model {manifest.model} has no prediction class.",
                          hint="Deploy it again with --prediction-class module.Class (or --framework).")
    root = cache or cache_dir()
    digests = [p.sha256 for p in manifest.packages]
    hold(root / "versions" / manifest.digest[:32])  # never pruned while this process runs
    hold(root / "site" / install.site_key(digests))
    fetched = not (root / "versions" / f"{manifest.digest[:32]}.json").is_file()
    model_dir = _fetched_model_dir(registry, manifest, root / "versions")

    def fetch(folder: Path) -> list[PackageFile]:
        found = []
        for index, entry in enumerate(manifest.packages):
            target = folder / str(index) / Path(entry.path).name
            entry.download(registry.store, target)
            found.append(PackageFile(target, entry.sha256))
        return found

    site, cached = cached_site(digests, fetch, root=root)
    sites, requirements = _with_requirements(site, root)
    for folder in sites[1:]:  # the requirements folders
        hold(folder)
    if fetched or not cached:
        bound_cache(root, registry)
    return ResolvedVersion(model=manifest.model, name=manifest.name, prediction_class=target,
                           model_dir=model_dir, sites=sites, output_formatter=manifest.output_formatter,
                           formatter_args=manifest.formatter_args, requirements=requirements,
                           digest=manifest.digest, framework=framework_of(target))


def _model_files_intact(folder: Path, manifest: Manifest) -> bool:
    for entry in manifest.files:
        path = folder.joinpath(*Path(entry.path).parts)
        if not path.is_file() or sha256_file(path) != entry.sha256:
            log.warning("%s in the cache of %s/%s does not match its manifest; fetching the version again",
                        entry.path, manifest.model, manifest.name)
            return False
    return True


def _fetched_model_dir(registry: Registry, manifest: Manifest, base: Path) -> Path:
    """``base/<digest>/model``, complete and verified: fetched through a staging folder if needed."""
    final = base / manifest.digest[:32]
    record = base / f"{manifest.digest[:32]}.json"
    if record.is_file() and final.is_dir() and _model_files_intact(final / "model", manifest):
        return final / "model"
    record.unlink(missing_ok=True)
    discard(final)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=final.name + ".staging-", dir=base))
    try:
        manifest.fetch_files(registry.store, staging / "model")
        publish(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    record.write_text(json.dumps({"model": manifest.model, "version": manifest.name, "digest": manifest.digest}),
                      encoding="utf-8")
    return final / "model"


# ---------------------------------------------------------------- from local files


def local_package_files(settings: Settings, work: Path) -> list[PackageFile]:
    """The packages of ``settings`` as files to install: source folders built under ``work``, files hashed."""
    from cprsdk.packaging.packager import build_sdist

    found = []
    for index, package in enumerate(settings.packages):
        if package.is_dir():
            project = load_settings(package) if package != settings.project_dir else settings
            sdist, wheel = build_sdist(project, work / f"build{index}")
            found.append(PackageFile(sdist, sha256_file(sdist), wheel))
        elif package.is_file():
            private = work / f"file{index}" / package.name  # installed from a copy nobody else writes
            private.parent.mkdir(parents=True)
            shutil.copyfile(package, private)
            found.append(PackageFile(private, sha256_file(private)))
        else:
            raise ConfigError(
                f"Package {package} ({settings.describe('packages')}) does not exist.",
                hint="Pass an sdist (.tar.gz), a wheel (.whl) or a source folder with --package.",
            )
    return found


def resolve_local(settings: Settings, *, model: str = "default", name: str = "v1",
                  output_formatter: str | None = None, formatter_args: Mapping[str, Any] | None = None,
                  cache: Path | None = None) -> ResolvedVersion:
    """Build and install ``settings.packages``; the model directory is ``settings.model_dir`` as it is."""
    target = run_name(prediction_class=settings.prediction_class, framework=settings.framework)
    if target is None:
        raise ConfigError("No prediction class is set.", hint=NO_CLASS_HINT)
    if not settings.model_dir.is_dir():
        raise ConfigError(
            f"Model directory {settings.model_dir} ({settings.describe('model_dir')}) does not exist.",
            hint="Train the model first, or point --model-dir at the folder your from_path loads.",
        )
    with tempfile.TemporaryDirectory(prefix="cprsdk-build-") as tmp:
        packages = local_package_files(settings, Path(tmp)) if _has_code(settings, target) else []
        site, _ = cached_site([p.sha256 for p in packages], lambda _folder: packages, root=cache)
    sites, requirements = _with_requirements(site, cache)
    return ResolvedVersion(model=model, name=name, prediction_class=target,
                           model_dir=settings.model_dir.resolve(), sites=sites, output_formatter=output_formatter,
                           formatter_args=formatter_args or {}, requirements=requirements, digest=site.name,
                           framework=framework_of(target))


def _has_code(settings: Settings, target: str) -> bool:
    """A framework version has code only when packages were named; a prediction class always has."""
    return framework_of(target) is None or "packages" in settings.sources


def download_model_dir(uri: str, dest: Path) -> Path:
    """Every object under ``uri`` (``AIP_STORAGE_URI``) downloaded into ``dest``; returns ``dest``."""
    from cprsdk.storage import open_store

    store = open_store(uri)
    infos = store.list()
    if not infos:
        raise ConfigError(f"{uri} holds no objects.", hint="Point AIP_STORAGE_URI at the model directory.")
    for info in infos:
        store.download_file(info.key, dest / info.key)
    dest.mkdir(parents=True, exist_ok=True)
    return dest.resolve()

