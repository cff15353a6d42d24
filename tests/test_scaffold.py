"""`cprsdk init`: a project that `package` and `local predict` accept unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cprsdk.cli import main
from cprsdk.packaging.templating import available_templates
from helpers import run_python, train


def test_sklearn_template_works_as_generated(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "iris-model"
    assert main(["init", str(dest), "--template", "sklearn"]) == 0
    assert "python train.py" in capsys.readouterr().err
    assert (dest / ".gitignore").is_file()
    assert 'name = "iris-model"' in (dest / "pyproject.toml").read_text()
    train(dest)
    monkeypatch.chdir(dest)
    assert main(["local", "predict", "--json-instances", "sample.jsonl"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"][0] == "setosa"
    assert main(["package", "-q"]) == 0
    assert capsys.readouterr().out.strip().endswith("iris_model-0.1.tar.gz")
    run_python(dest, "-m", "pytest", "-q", "-p", "no:cacheprovider")


def test_init_refuses_a_non_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["init", str(tmp_path)]) == 1
    assert "already exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_unknown_template_lists_the_choices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path / "x"), "--template", "tensorflow"]) == 1
    err = capsys.readouterr().err
    assert "Unknown template 'tensorflow'" in err and ", ".join(available_templates()) in err
    assert not (tmp_path / "x").exists()
