"""The wheels an image installs, made on the host by pip for the image's platform and Python.

The image build is offline: every third-party distribution comes from a wheelhouse that
``pip download --only-binary=:all:`` fills here, for the target platform and Python version,
and cprsdk itself comes as one wheel. A wheelhouse is cached under cprsdk's cache, keyed by what
it was asked for, so an unchanged one is the same files (and Docker reuses its layer).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from cprsdk import __version__
from cprsdk.errors import BuildError
from cprsdk.packaging.install import cache_dir

__all__ = ["Platform", "cprsdk_requirements", "cprsdk_wheel", "wheelhouse"]

REQUIREMENTS = "requirements.txt"


@dataclass(frozen=True, kw_only=True)
class Platform:
    """What pip downloads wheels for: the base image's platform tag and Python version."""

    platform: str = "manylinux_2_36_x86_64"  # glibc 2.36: Debian bookworm, as python:3.11-slim
    python_version: str = "3.11"

    def tags(self) -> list[str]:
        """``platform`` and every older manylinux tag it runs (pip does not expand a ``--platform``)."""
        match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", self.platform)
        if match is None:
            return [self.platform]
        glibc, arch = int(match.group(1)), match.group(2)
        tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        return tags + [f"{name}_{arch}" for minor, name in legacy.items() if glibc >= minor]


def _pip(args: list[str], what: str, *, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
        raise BuildError(f"pip could not {what}: {tail}",
                         hint="Check the requirement names and that a linux x86_64 wheel exists for each "
                         "(the image build installs wheels only), or pass --platform/--python-version to match "
                         "the base image.")


def cprsdk_requirements() -> list[str]:
    """cprsdk's own runtime requirements (no extras), as its metadata declares them."""
    return [r for r in metadata.requires("cprsdk") or [] if "extra ==" not in r]


def _source_root() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    return root if pyproject.is_file() and 'name = "cprsdk"' in pyproject.read_text(encoding="utf-8") else None


def cprsdk_wheel(dest: Path) -> Path:
    """cprsdk's own wheel in ``dest``: built from this checkout, else downloaded (version {__version__})."""
    dest.mkdir(parents=True, exist_ok=True)
    root = _source_root()
    with tempfile.TemporaryDirectory(prefix="cprsdk-wheel-") as tmp:
        if root is not None:
            env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800"}  # the same bytes for the same code
            _pip(["wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", tmp, str(root)], "build cprsdk's wheel",
                 env=env)
        else:
            _pip(["download", "--no-deps", "--only-binary=:all:", "--dest", tmp, f"cprsdk=={__version__}"],
                 "download cprsdk's wheel")
        (wheel,) = Path(tmp).glob("cprsdk-*.whl")
        target = dest / wheel.name
        shutil.copyfile(wheel, target)
    return target


def _key(requirements: list[str], platform: Platform) -> str:
    text = json.dumps({"requirements": requirements, "platform": platform.platform,
                       "python": platform.python_version})
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def wheelhouse(requirements: list[str], platform: Platform, *, cache: Path | None = None) -> Path:
    """A folder of wheels for ``requirements`` and their dependencies, plus a ``requirements.txt``."""
    wanted = sorted(dict.fromkeys(requirements))
    base = (cache or cache_dir()) / "wheelhouses"
    final = base / _key(wanted, platform)
    if (final / REQUIREMENTS).is_file():
        return final
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=final.name + ".staging-", dir=base))
    try:
        if wanted:
            platforms = [arg for tag in platform.tags() for arg in ("--platform", tag)]
            _pip(["download", "--only-binary=:all:", *platforms, "--python-version",
                  platform.python_version, "--implementation", "cp", "--dest", str(staging), *wanted],
                 f"download wheels for {', '.join(wanted)}")
        (staging / REQUIREMENTS).write_text("".join(f"{r}\n" for r in wanted), encoding="utf-8")
        os.replace(staging, final)
    except OSError:
        if not (final / REQUIREMENTS).is_file():  # someone else published it first: theirs is as good
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
