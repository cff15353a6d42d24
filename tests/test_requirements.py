"""Declared requirements are installed, once per set, wherever the package runs: the check, local, batch, node.

tests/projects/requirements is a bare folder whose predictor imports ``inflection``, a small
pure-Python distribution from PyPI that the test environment does not have, named in its
requirements.txt. ``cprsdk package`` imports the class with it installed (as a node would),
``local predict``, ``batch predict`` and the node run with the same cached install, and the
runtime's environment is never changed. A requirement pip cannot install fails naming it and
pip's reason.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cprsdk.cli import main
from cprsdk.packaging.requirements import requirements_dir
from cprsdk.testing import running_node
from helpers import copy_project, read_jsonl

REQUIREMENT = "inflection==0.5.1"
WORDS = ["hello_world", "active_record"]
EXPECTED = ["HelloWorld!", "ActiveRecord!"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("CPRSDK_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def inflector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    src = copy_project("requirements", tmp_path / "inflector")
    (src / "words.jsonl").write_text("".join(json.dumps(w) + "\n" for w in WORDS))
    monkeypatch.chdir(src)
    return src


def _entries(cache: Path) -> list[str]:
    """The cache entries in ``cache``, without the lock files that mark an entry in use."""
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".inuse"))


def test_a_requirement_from_pypi_is_installed_for_every_path_and_never_in_the_runtime(
    inflector: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert importlib.util.find_spec("inflection") is None  # the point of the test: the runtime lacks it
    report = tmp_path / "report.json"
    assert main(["package", "--report", str(report), "-q"]) == 0
    capsys.readouterr()
    checks = {c["name"]: c["detail"] for c in json.loads(report.read_text())["checks"]}
    assert checks["prediction class"] == "predictor.Inflector imports from inflector-0.1.tar.gz alone"
    installed = requirements_dir([REQUIREMENT])
    assert f"installed for the check (cached in {installed}): {REQUIREMENT}" in checks["requirements"]
    assert (installed / "inflection.py").is_file() or (installed / "inflection").is_dir()
    before = _entries(installed.parent)

    assert main(["local", "predict", "--json-instances", "words.jsonl"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"] == EXPECTED
    assert main(["batch", "predict", "--model-dir", "model", "--package", ".", "--input", "words.jsonl",
                 "--output", str(tmp_path / "out")]) == 0
    assert [line["prediction"] for line in read_jsonl(tmp_path / "out" / "predictions" / "part-00000.jsonl")] == \
        EXPECTED
    registry = str(tmp_path / "registry")
    assert main(["deploy", "--model", "words", "--version", "v1", "--registry", registry]) == 0
    capsys.readouterr()
    with running_node(registry=registry, poll_interval=0.2) as node:
        assert node.client.predict("words", WORDS, version="v1") == EXPECTED
    assert _entries(installed.parent) == before  # one install, shared by every path
    assert importlib.util.find_spec("inflection") is None


def test_a_requirement_pip_cannot_install_fails_the_check_naming_it_and_pips_reason(
    inflector: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (inflector / "requirements.txt").write_text("cprsdk-test-no-such-distribution==9.9.9\n")
    assert main(["package", "-q"]) == 1
    err = capsys.readouterr().err
    assert "requires cprsdk-test-no-such-distribution==9.9.9, which could not be installed (pip: " in err
    assert "No matching distribution found for cprsdk-test-no-such-distribution==9.9.9" in err
    assert "to your package" not in err
    assert not (inflector / "dist").exists()


def test_an_undeclared_third_party_import_says_to_declare_it(
    inflector: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (inflector / "requirements.txt").unlink()
    assert main(["package", "-q"]) == 1
    err = capsys.readouterr().err
    assert ("Module 'predictor' (for prediction class 'predictor.Inflector') imports 'inflection', which is not "
            "installed at predictor.py line 5: `import inflection`.") in err
    assert "Declare the distribution that provides 'inflection' in requirements.txt" in err
    assert "could not run" not in err and "to your package" not in err
