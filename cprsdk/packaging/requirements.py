"""Declared requirements of installed packages: met by the runtime, or installed per version.

A package's wheel metadata lists its requirements (``Requires-Dist``). Those the runtime already
satisfies are left alone; the others are installed with pip (``--target``) into a folder of the
cache keyed by that set of requirements, ``<cache>/requirements/<key>``, so nothing ever changes
the runtime's environment, and the import check of ``cprsdk package``, ``local predict``, batch
and the node all run with the same install. A requirement pip cannot install fails with its name
and pip's reason.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from cprsdk.errors import BuildError
from cprsdk.packaging.install import cache_dir, discard, publish, record_tree, verify_tree

__all__ = ["declared_requirements", "ensure_requirements", "requirements_dir", "requirements_key", "unmet"]

log = logging.getLogger("cprsdk.install")


def declared_requirements(site: Path) -> list[str]:
    """``Requires-Dist`` entries (markers evaluated here) of every distribution installed in ``site``."""
    from packaging.requirements import Requirement

    found: list[str] = []
    for meta in sorted(site.glob("*.dist-info/METADATA")):
        for line in Parser().parsestr(meta.read_text(encoding="utf-8")).get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                found.append(str(requirement))
    return found


def unmet(requirements: list[str], paths: list[str]) -> list[str]:
    """The requirements that no distribution on ``paths`` (then the runtime) satisfies."""
    from packaging.requirements import Requirement

    missing = []
    for text in requirements:
        requirement = Requirement(text)
        version = None
        for dist in metadata.distributions(path=paths + sys.path):
            if (dist.metadata["Name"] or "").lower().replace("_", "-") == requirement.name.lower().replace("_", "-"):
                version = dist.version
                break
        if version is None or (requirement.specifier and not requirement.specifier.contains(version, prereleases=True)):
            missing.append(text)
    return missing


def requirements_key(missing: list[str]) -> str:
    """The cache key of an install of ``missing``: the interpreter's cache tag and the sorted set asked for."""
    from packaging.requirements import Requirement

    key = hashlib.sha256(sys.implementation.cache_tag.encode())
    for text in sorted({str(Requirement(r)) for r in missing}):
        key.update(b"\n" + text.encode())
    return key.hexdigest()[:32]


def requirements_dir(missing: list[str], *, root: Path | None = None) -> Path:
    """Where the requirements ``missing`` are installed: ``<cache>/requirements/<key>``."""
    return (root or cache_dir()) / "requirements" / requirements_key(missing)


def ensure_requirements(site: Path, *, root: Path | None = None) -> list[Path]:
    """The folders a worker needs on its path: ``site``, plus one with its unmet requirements installed.

    That folder is keyed by the set of unmet requirements (so every package, check and version
    that needs the same set shares one install), installed with pip through a private staging
    folder and recorded like ``site``; one that changed on disk since is installed again. A
    requirement pip cannot install raises :class:`BuildError` with its name and pip's reason.
    """
    missing = unmet(declared_requirements(site), [str(site)])
    if not missing:
        return [site]
    target = requirements_dir(missing, root=root)
    if target.is_dir():
        problem = verify_tree(target)
        if problem is None:
            return [site, target]
        log.warning("%s; installing the requirements again", problem)
        discard(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".staging-", dir=target.parent))
    try:
        _pip_install(missing, staging)
        record_tree(staging)
        publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [site, target]


def _pip_install(missing: list[str], target: Path) -> None:
    log.info("installing %s", ", ".join(missing))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-input", "--target", str(target), *missing], capture_output=True, text=True)
    if proc.returncode:
        lines = [line.strip() for line in proc.stderr.strip().splitlines() if line.strip()]
        reason = "; ".join(line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")) or \
            "\n".join(lines[-6:])
        raise BuildError(
            f"The package requires {', '.join(missing)}, which could not be installed (pip: "
            f"{reason or f'exit code {proc.returncode}'})",
            hint="Fix the requirement (its name or version) in requirements.txt, install_requires or "
                 "dependencies, or install the distribution in this environment.",
        )
