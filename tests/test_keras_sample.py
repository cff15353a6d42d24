"""The Keras ZeroCenterer: the sample and the `keras` template train, package and predict with no setup.

No test sets KERAS_BACKEND: the sample's and the template's modules must choose the torch backend
themselves, in the trainer, in the package check's clean interpreter and in local predict.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cprsdk import load_predictor
from cprsdk.cli import main
from helpers import copy_sample, read_jsonl, run_python, train

# sample.jsonl holds iris rows 0, 30, 60, 90 and 120, whose true species are these.
SPECIES = ["setosa", "setosa", "versicolor", "versicolor", "virginica"]

# Keras (torch backend) turns outputs into NumPy with np.array(tensor); torch's __array__ lacks
# NumPy 2's copy keyword (pytorch/pytorch#136264), which NumPy reports as a DeprecationWarning.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


def _env_without_backend() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "PYTEST_ADDOPTS")}


def _instances(project: Path) -> list[list[float]]:
    return read_jsonl(project / "sample.jsonl")


def _predictions(capsys: pytest.CaptureFixture[str]) -> list[object]:
    predictions: list[object] = json.loads(capsys.readouterr().out)["predictions"]
    return predictions


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No KERAS_BACKEND, a private install cache, and no `predictor` module left by other tests."""
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("CPRSDK_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("predictor", "preprocess", "train"):
        monkeypatch.delitem(sys.modules, name, raising=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    dest = copy_sample("zerocenterer-keras", tmp_path_factory.mktemp("sample") / "zerocenterer-keras")
    train(dest, env=_env_without_backend())
    yield dest


@pytest.mark.keras
def test_train_writes_the_model_and_a_sample(trained: Path) -> None:
    assert sorted(p.name for p in (trained / "model").iterdir()) == ["model.keras", "preprocessor.pkl"]
    assert len(_instances(trained)) == len(SPECIES)


@pytest.mark.keras
def test_packaged_sample_predicts_labels_as_in_process(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(trained)
    report = tmp_path / "report.json"
    assert main(["package", str(trained), "--out", str(tmp_path / "dist"), "--report", str(report), "-q"]) == 0
    sdist = Path(capsys.readouterr().out.strip())
    assert sdist == tmp_path / "dist" / "zerocenterer_keras-0.1.tar.gz"
    checks = {c["name"]: c["ok"] for c in json.loads(report.read_text())["checks"]}
    assert checks == {"model quota": True, "code quota": True, "prediction class": True, "pickle references": True,
                      "requirements": True, "load": True}

    assert main(["local", "predict", "--package", str(sdist), "--json-instances", "sample.jsonl"]) == 0
    labels = _predictions(capsys)
    in_process = load_predictor("predictor.MyPredictor", trained / "model", paths=[trained])
    assert labels == in_process.predict(_instances(trained)) == SPECIES


@pytest.mark.keras
def test_local_predict_probabilities_match_in_process(
    trained: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(trained)
    kwargs = '{"probabilities": true}'
    assert main(["local", "predict", "--json-instances", "sample.jsonl", "--kwargs", kwargs]) == 0
    probabilities = np.array(_predictions(capsys))
    in_process = load_predictor("predictor.MyPredictor", trained / "model", paths=[trained])
    assert np.allclose(probabilities, in_process.predict(_instances(trained), probabilities=True))
    assert probabilities.shape == (len(SPECIES), 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert [["setosa", "versicolor", "virginica"][i] for i in probabilities.argmax(axis=1)] == SPECIES


@pytest.mark.keras
def test_keras_template_works_as_generated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "iris-keras", "--template", "keras"]) == 0
    assert "pip install 'cprsdk[keras]'" in capsys.readouterr().err
    dest = tmp_path / "iris-keras"
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == [".gitignore", "README.md", "predictor.py", "preprocess.py", "pyproject.toml",
                     "tests/test_predictor.py", "train.py"]
    assert 'name = "iris-keras"' in (dest / "pyproject.toml").read_text()
    train(dest, env=_env_without_backend())

    monkeypatch.chdir(dest)
    assert main(["package", "-q"]) == 0
    assert Path(capsys.readouterr().out.strip()) == dest / "dist" / "iris_keras-0.1.tar.gz"
    assert main(["local", "predict", "--json-instances", "sample.jsonl"]) == 0
    assert _predictions(capsys) == SPECIES
    proc = run_python(dest, "-m", "pytest", "-q", "-p", "no:cacheprovider", env=_env_without_backend())
    assert "2 passed" in proc.stdout
