"""Fixtures for the tiny real projects under tests/projects (a pytest plugin, see conftest.py)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import PROJECTS, copy_built, copy_project, copy_sample, run_python, train

Project = Callable[[str], Path]  # the `project` fixture: a scenario's name -> its folder, model written


@pytest.fixture(autouse=True, scope="session")
def _shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One install cache for the session (keyed by sdist sha256, so sharing is safe)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CPRSDK_CACHE_DIR", str(tmp_path_factory.mktemp("cprsdk-cache")))
    for name in list(os.environ):
        if name.startswith("CPRSDK_") and name != "CPRSDK_CACHE_DIR":
            mp.delenv(name)
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _forget_user_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests import several modules named `predictor`; forget the ones a test imported.

    Only modules loaded from pytest's own temporary folders (the copied test projects) are
    forgotten: re-importing a library (or the stdlib) would duplicate its classes and state.
    """
    base = str(tmp_path_factory.getbasetemp().resolve())
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        origin = getattr(sys.modules.get(name), "__file__", None) or ""
        if origin and str(Path(origin).resolve()).startswith(base):
            del sys.modules[name]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """Copy projects/ok, lay projects/<case> over it, and run make_model.py to write model/."""

    def make(case: str = "ok") -> Path:
        dest = copy_project("ok", tmp_path / case)
        if case != "ok":
            shutil.copytree(PROJECTS / case, dest, dirs_exist_ok=True)
        run_python(dest, "make_model.py")
        return dest

    return make


@pytest.fixture
def behaviours(tmp_path: Path) -> Path:
    """A copy of projects/behaviours: one predictor module per behaviour."""
    return copy_project("behaviours", tmp_path / "behaviours")


@pytest.fixture
def styles(tmp_path: Path) -> Path:
    """A copy of projects/styles: one module per predictor form (SageMaker, hooks, Vertex)."""
    return copy_project("styles", tmp_path / "styles")


@pytest.fixture(scope="session")
def _trained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = copy_sample("zerocenterer-sklearn", tmp_path_factory.mktemp("trained") / "zerocenterer-sklearn")
    train(dest)
    return dest


@pytest.fixture(scope="module")
def trained_sample(_trained_once: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ZeroCenterer sample, trained (once per session), copied for this test module."""
    return copy_built(_trained_once, tmp_path_factory.mktemp("sample") / "zerocenterer-sklearn")
