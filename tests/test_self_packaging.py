"""cprsdk's own wheel ships exactly its modules and templates; a user sdist holds exactly its code."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import pytest

from cprsdk import __version__, load_settings, package
from cprsdk.packaging.build import build_distribution
from helpers import REPO
from scenario import Project


def _tree(root: Path, prefix: str) -> set[str]:
    return {
        prefix + p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_wheel_has_exactly_the_package_and_templates(tmp_path: Path) -> None:
    src = tmp_path / "cprsdk-src"
    for name in ("pyproject.toml", "README.md"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes((REPO / name).read_bytes())
    for folder in ("cprsdk", "templates"):
        for path in _tree(REPO / folder, ""):
            target = src / folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((REPO / folder / path).read_bytes())
    wheel = build_distribution(src, "wheel", tmp_path / "dist")
    assert wheel.name == f"cprsdk-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = {n for n in zf.namelist() if ".dist-info/" not in n}
    expected = _tree(REPO / "cprsdk", "cprsdk/") | _tree(REPO / "templates", "cprsdk/templates/")
    assert names == expected
    assert "cprsdk/templates/sdist/pyproject.toml.tmpl" in names
    assert "cprsdk/templates/sklearn/gitignore" in names


def test_user_sdist_holds_exactly_the_code(project: Project) -> None:
    src = project("ok")
    result = package(load_settings(src, {"out": str(src / "dist")}))
    with tarfile.open(result.sdist) as tar:
        members = tar.getmembers()
    names = sorted(m.name.removeprefix("ok_project-1.0/") for m in members if m.isfile())
    assert names == [
        "PKG-INFO",
        "make_model.py",
        "ok_project.egg-info/PKG-INFO",
        "ok_project.egg-info/SOURCES.txt",
        "ok_project.egg-info/dependency_links.txt",
        "ok_project.egg-info/top_level.txt",
        "predictor.py",
        "pyproject.toml",
        "scaler.py",
        "setup.cfg",
    ]
    assert {m.mtime for m in members} == {946684800}
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}


@pytest.mark.parametrize("name", ["__init__.py", "py.typed"])
def test_package_markers_exist(name: str) -> None:
    assert (REPO / "cprsdk" / name).is_file()
