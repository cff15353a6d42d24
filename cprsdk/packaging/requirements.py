"""Declared requirements of installed packages: met by the runtime, or installed per version.

A package's wheel metadata lists its requirements (``Requires-Dist``). Those the runtime already
satisfies are left alone; the others are installed with pip into the version's own folder
(``--target``), so versions never change the node's environment or each other's. A requirement
pip cannot meet fails the version with its name.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from cprsdk.errors import BuildError
from cprsdk.packaging.install import discard, publish, record_tree, verify_tree

__all__ = ["declared_requirements", "ensure_requirements", "requirements_dir", "unmet"]

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


def requirements_dir(site: Path) -> Path:
    return site.parent / f"{site.name}.requirements"


def ensure_requirements(site: Path) -> list[Path]:
    """The folders a worker needs on its path: ``site``, plus one with the unmet requirements installed.

    That folder is installed through a private staging folder and recorded like ``site``; one that
    changed on disk since is installed again.
    """
    target = requirements_dir(site)
    if target.is_dir():
        problem = verify_tree(target)
        if problem is None:
            return [site, target]
        log.warning("%s; installing the requirements again", problem)
        discard(target)
    missing = unmet(declared_requirements(site), [str(site)])
    if not missing:
        return [site]
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".staging-", dir=target.parent))
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                               "--target", str(staging), *missing], capture_output=True, text=True)
        if proc.returncode:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise BuildError(f"The package requires {', '.join(missing)}, which could not be installed: {tail}",
                             hint="Install it in the node's environment, or fix the requirement in your package.")
        record_tree(staging)
        publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [site, target]
