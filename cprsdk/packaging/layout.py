"""The layout of a project's sdist: a copy of the project, and build files for a bare folder.

A bare folder of modules (the classic AI Platform layout: ``predictor.py``, ``preprocess.py``,
maybe ``requirements.txt``) has no build configuration of its own; its ``pyproject.toml`` is
rendered from ``templates/sdist``: every top-level module and package, the other files shipped
beside them, and requirements.txt as the distribution's dependencies. A ``setup.py`` project in a
flat layout that modern setuptools refuses to discover gets its modules declared instead
(:func:`declare_flat_layout`).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from cprsdk.config import Settings, load_toml
from cprsdk.errors import ConfigError, PackageError
from cprsdk.packaging.templating import render_text, template_root

__all__ = ["bare_layout", "copy_project", "declare_flat_layout", "is_bare_folder", "top_level_names"]

_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_NEVER_COPY = frozenset({"__pycache__", "build", "dist", "venv", "node_modules"})


def is_bare_folder(src: Path) -> bool:
    """True when ``src`` has no build configuration of its own (the classic CPR layout)."""
    if (src / "setup.py").is_file():
        return False
    pyproject = src / "pyproject.toml"
    if not pyproject.is_file():
        return True
    data = load_toml(pyproject)
    return "build-system" not in data and "project" not in data


def _skipped(path: Path, skip: set[Path]) -> bool:
    """Left out of the sdist's copy: build outputs, caches, hidden folders and ``skip``."""
    name = path.name
    if name in _NEVER_COPY or name.endswith((".egg-info", ".pyc", ".pyo")):
        return True
    return (name.startswith(".") and path.is_dir()) or path.resolve() in skip


def copy_project(src: Path, dest: Path, skip: set[Path]) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        return {name for name in names if _skipped(Path(folder, name), skip)}

    shutil.copytree(src, dest, ignore=ignore, symlinks=False)


_NOT_SHIPPED = frozenset({"pyproject.toml", "cprsdk.toml", "setup.cfg", "requirements.txt", "MANIFEST.in"})


def _requirements_txt(path: Path) -> list[str]:
    """The requirements a bare folder declares in requirements.txt (options and comments skipped)."""
    if not path.is_file():
        return []
    from packaging.requirements import InvalidRequirement, Requirement

    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith(("#", "-")):
            continue
        try:
            found.append(str(Requirement(text)))
        except InvalidRequirement as exc:
            raise ConfigError(f"requirements.txt line {number}: {text!r} is not a requirement ({exc}).",
                              hint="Use the name[extras]specifier form, e.g. numpy>=1.24.") from None
    return found


def top_level_names(root: Path) -> tuple[list[str], list[str]]:
    """(top-level modules, packages with their subpackages) of a folder; setup.py and tests left out."""
    modules = sorted(
        p.stem for p in root.glob("*.py")
        if p.stem.isidentifier() and p.stem not in ("setup", "conftest") and not p.stem.startswith("test_")
    )
    package_dirs = [init.parent.relative_to(root) for init in root.rglob("__init__.py")]
    packages = sorted(
        ".".join(rel.parts) for rel in package_dirs
        if rel.parts[0] not in ("tests", "test") and all(part.isidentifier() for part in rel.parts)
    )
    return modules, packages


def declare_flat_layout(root: Path) -> tuple[str, ...]:
    """Name a flat layout's modules and packages in ``root/setup.cfg``, so setuptools skips its discovery.

    Modern setuptools refuses to guess when a ``setup.py`` names neither ``py_modules`` nor
    ``packages`` and the folder holds several top-level modules (the AI Platform tutorials'
    ``setup(scripts=['predictor.py', 'preprocess.py'])``); older ones built it. Declaring what is
    there builds what they built, plus the modules as modules. Returns the names declared.
    """
    import configparser

    modules, packages = top_level_names(root)
    config = configparser.ConfigParser(interpolation=None)
    path = root / "setup.cfg"
    if path.is_file():
        config.read(path, encoding="utf-8")
    if not config.has_section("options"):
        config.add_section("options")
    if modules:
        config.set("options", "py_modules", "\n" + "\n".join(modules))
    if packages:
        config.set("options", "packages", "\n" + "\n".join(packages))
    with path.open("w", encoding="utf-8") as out:
        config.write(out)
    return (*modules, *packages)


def bare_layout(root: Path, settings: Settings) -> tuple[str, str]:
    name = settings.name or settings.project_dir.name
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"{name!r} is not a valid distribution name.",
            hint="Set name (letters, digits, '.', '-', '_') with --name or in [tool.cprsdk].",
        )
    from packaging.version import InvalidVersion, Version

    try:
        Version(settings.version)
    except InvalidVersion:
        raise ConfigError(
            f"version {settings.version!r} ({settings.describe('version')}) is not a PEP 440 version.",
            hint="Use a version such as 0.1 or 1.2.3.",
        ) from None
    modules, packages = top_level_names(root)
    if not modules and not packages:
        raise PackageError(
            f"{settings.project_dir} has no Python modules to package.",
            hint="Put your predictor module (for example predictor.py) in that folder.",
        )
    extra_files = sorted(
        p.name for p in root.iterdir()
        if p.is_file() and p.suffix not in (".py", ".pyc") and not p.name.startswith(".")
        and p.name not in _NOT_SHIPPED
    )
    values = {
        "name": name,
        "version": settings.version,
        "py_modules": json.dumps(modules),
        "packages": json.dumps(packages),
        "dependencies": json.dumps(_requirements_txt(root / "requirements.txt")),
        "data_files": "{" + (f'"" = {json.dumps(extra_files)}' if extra_files else "") + "}",
    }
    text = (template_root() / "sdist" / "pyproject.toml.tmpl").read_text(encoding="utf-8")
    (root / "pyproject.toml").write_text(render_text(text, values, origin="sdist/pyproject.toml.tmpl"),
                                         encoding="utf-8")
    return name, settings.version
