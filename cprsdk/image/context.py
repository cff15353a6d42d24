"""A Docker build context for one version: Dockerfile, wheelhouse, packages, entrypoint (and model).

:class:`ImageSource` is what the image is made of, taken from a registry version
(:func:`from_registry`) or local files (:func:`from_local`) through the one resolution of a version
(:mod:`cprsdk.runtime.resolved`). :func:`write_context` lays out a folder that ``docker build
--network none`` builds offline; the layers go from what changes least to what changes most.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cprsdk import __version__
from cprsdk.config import Settings
from cprsdk.errors import ConfigError
from cprsdk.image.entrypoint import SCRIPT
from cprsdk.image.wheelhouse import Platform, cprsdk_requirements, cprsdk_wheel, wheelhouse

__all__ = ["DEFAULT_BASE", "ImageSource", "from_local", "from_registry", "write_context"]

DEFAULT_BASE = "python:3.11-slim"
HOME = "/opt/cprsdk"
UID = 10001


@dataclass(frozen=True, kw_only=True)
class ImageSource:
    """One version, ready to put in an image."""

    model: str
    version: str
    prediction_class: str
    packages: tuple[Path, ...]  # sdists or wheels, in the version's order
    model_dir: Path
    requirements: tuple[str, ...] = ()
    digest: str = ""  # the manifest's digest (registry) or the packages' site key (local)
    registry: str | None = None  # where the node fetches the model at start when it is not baked
    output_formatter: str | None = None
    formatter_args: Mapping[str, Any] = field(default_factory=dict)


def from_registry(uri: str | None, model: str, version: str | None, work: Path) -> ImageSource:
    """A registry version (``None``: the model's default): its packages downloaded, verified, into ``work``."""
    from cprsdk.registry.registry import Registry
    from cprsdk.runtime.resolved import resolve_manifest

    registry = Registry(uri)
    name = version or registry.get_model(model).default_version
    if name is None:
        raise ConfigError(f"Model {model!r} has no default version.", hint="Pass --version.")
    manifest = registry.get_version(model, name)
    resolved = resolve_manifest(registry, manifest)
    packages = []
    for index, entry in enumerate(manifest.packages):
        target = work / "packages" / f"{index:02d}-{Path(entry.path).name}"
        entry.download(registry.store, target)
        packages.append(target)
    return ImageSource(model=model, version=name, prediction_class=resolved.prediction_class,
                       packages=tuple(packages), model_dir=resolved.model_dir, requirements=resolved.requirements,
                       digest=manifest.digest, registry=registry.uri, output_formatter=resolved.output_formatter,
                       formatter_args=resolved.formatter_args)


def from_local(settings: Settings, model: str, version: str, work: Path) -> ImageSource:
    """Local files (``--model-dir``, ``--package``, ``--prediction-class``): source folders built once."""
    from cprsdk.runtime.resolved import local_package_files, resolve_local

    files = local_package_files(settings, work / "build")
    built = dataclasses.replace(settings, packages=tuple(f.path for f in files))
    resolved = resolve_local(built, model=model, name=version)
    packages = []
    for index, package in enumerate(files):
        target = work / "packages" / f"{index:02d}-{package.path.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package.path, target)
        packages.append(target)
    return ImageSource(model=model, version=version, prediction_class=resolved.prediction_class,
                       packages=tuple(packages), model_dir=resolved.model_dir, requirements=resolved.requirements,
                       digest=resolved.digest)


# ------------------------------------------------------------------ the context


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _entrypoint(source: ImageSource) -> str:
    packages = " ".join(f"--package {HOME}/packages/{p.name}" for p in source.packages)
    extra = ""
    if source.output_formatter:
        extra = f" --output-formatter {shlex.quote(source.output_formatter)}"
        extra += f" --formatter-args {shlex.quote(json.dumps(dict(source.formatter_args)))}"
    return SCRIPT.replace("@PACKAGES@", packages).replace(
        "@PREDICTION_CLASS@", shlex.quote(source.prediction_class)).replace("@EXTRA@", extra)


def _dockerfile(source: ImageSource, *, base: str, baked: bool, labels: Mapping[str, str], python: str) -> str:
    major, minor = (int(x) for x in python.split(".")[:2])
    env = {"CPRSDK_IMAGE_MODEL": source.model, "CPRSDK_IMAGE_VERSION": source.version}
    if source.registry and not baked:
        env["CPRSDK_IMAGE_REGISTRY"] = source.registry
    packages = " ".join(f"{HOME}/packages/{p.name}" for p in source.packages)
    lines = [
        f"FROM {base}",
        f"ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "
        f"CPRSDK_CACHE_DIR={HOME}/cache PATH={HOME}/venv/bin:$PATH",
        "# the base's Python must be the one the wheelhouse was made for",
        f"RUN python3 -c 'import sys; sys.exit(0 if sys.version_info[:2] == ({major}, {minor}) else "
        f"\"the base image has Python %d.%d, the wheelhouse is for {python}: pass --python-version\" "
        f"% sys.version_info[:2])' && python3 -m venv {HOME}/venv "
        f"&& useradd --uid {UID} --user-group --no-create-home --home-dir {HOME}/home --shell /bin/sh cprsdk "
        f"&& mkdir -p {HOME}/home {HOME}/cache && chown {UID}:{UID} {HOME}/home {HOME}/cache",
        "# third-party wheels: a layer of its own, reused while they do not change",
        f"COPY wheelhouse/ {HOME}/wheelhouse/",
        f"RUN pip install --no-index --find-links {HOME}/wheelhouse -r {HOME}/wheelhouse/requirements.txt",
        f"COPY cprsdk/ {HOME}/dist/",
        f"RUN pip install --no-index --no-deps {HOME}/dist/*.whl",
        f"COPY packages/ {HOME}/packages/",
        f"COPY entrypoint.sh {HOME}/bin/",
        f"RUN chmod 0755 {HOME}/bin/entrypoint.sh",
        *([f"COPY model/ {HOME}/model/"] if baked else []),
        f"USER {UID}:{UID}",
        f"RUN python -m cprsdk.image.boot warm --prediction-class {shlex.quote(source.prediction_class)} {packages}",
        "ENV " + " ".join(f"{k}={json.dumps(v)}" for k, v in env.items()),
        "LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items()),
        "EXPOSE 8080",
        'HEALTHCHECK --interval=10s --timeout=3s --start-period=120s CMD ["python", "-m", "cprsdk.image.entrypoint"]',
        f"ENTRYPOINT [\"{HOME}/bin/entrypoint.sh\"]",
    ]
    return "\n".join(lines) + "\n"


def labels(source: ImageSource) -> dict[str, str]:
    """The image's labels: what it serves and which cprsdk made it."""
    return {"dev.cprsdk.model": source.model, "dev.cprsdk.version": source.version,
            "dev.cprsdk.digest": source.digest, "dev.cprsdk.prediction-class": source.prediction_class,
            "dev.cprsdk.cprsdk-version": __version__}


def write_context(source: ImageSource, dest: Path, *, base: str = DEFAULT_BASE, bake_model: bool = False,
                  platform: Platform | None = None) -> Path:
    """Lay out the build context of ``source`` in ``dest`` (which must be empty or absent); returns it."""
    if dest.exists() and any(dest.iterdir()):
        raise ConfigError(f"{dest} is not empty.", hint="Pass a new or empty folder to --context-only.")
    baked = bake_model or source.registry is None  # local files have no registry to fetch the model from
    dest.mkdir(parents=True, exist_ok=True)
    platform = platform or Platform()
    house = wheelhouse([*cprsdk_requirements(), *source.requirements], platform)
    shutil.copytree(house, dest / "wheelhouse", copy_function=_link_or_copy)
    cprsdk_wheel(dest / "cprsdk")
    (dest / "packages").mkdir()
    for package in source.packages:
        shutil.copyfile(package, dest / "packages" / package.name)
    if baked:
        shutil.copytree(source.model_dir, dest / "model")
    (dest / "entrypoint.sh").write_text(_entrypoint(source), encoding="utf-8")
    (dest / "entrypoint.sh").chmod(0o755)
    (dest / "Dockerfile").write_text(_dockerfile(source, base=base, baked=baked, labels=labels(source),
                                                 python=platform.python_version),
                                     encoding="utf-8")
    (dest / ".dockerignore").write_text("**/__pycache__\n", encoding="utf-8")
    return dest
