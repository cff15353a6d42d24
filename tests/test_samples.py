"""The classic ZeroCenterer sample (scikit-learn): trains, packages, predicts as in-process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cprsdk import load_predictor
from cprsdk.cli import main

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "zerocenterer-sklearn"


@pytest.fixture(scope="module")
def trained(trained_sample: Path) -> Path:
    return trained_sample


def test_package_then_local_predict_equals_in_process(trained: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(trained)
    assert main(["package", "-q"]) == 0
    sdist = Path(capsys.readouterr().out.strip())
    assert sdist == trained / "dist" / "zerocenterer_sklearn-0.1.tar.gz"
    instances = [json.loads(line) for line in (trained / "sample.jsonl").read_text().splitlines()]
    in_process = load_predictor("predictor.MyPredictor", trained / "model", paths=[trained])

    assert main(["local", "predict", "--package", str(sdist), "--json-instances", "sample.jsonl"]) == 0
    labels = json.loads(capsys.readouterr().out)["predictions"]
    assert labels == in_process.predict(instances)
    assert set(labels) == {"setosa", "versicolor", "virginica"}

    assert main(["local", "predict", "--json-instances", "sample.jsonl", "--kwargs", '{"probabilities": true}']) == 0
    probabilities = json.loads(capsys.readouterr().out)["predictions"]
    assert np.allclose(probabilities, in_process.predict(instances, probabilities=True))


def test_leaving_preprocess_out_fails_naming_it(trained: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken"
    shutil.copytree(trained, broken, ignore=shutil.ignore_patterns("dist"))
    (broken / "preprocess.py").unlink()
    assert main(["package", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "model/preprocessor.pkl needs preprocess.ZeroCenterer" in err
    assert "module 'preprocess' is neither in the package nor installed" in err
    assert not (broken / "dist").exists()


def test_packaging_twice_gives_the_same_sha256(trained: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    digests = []
    for out in ("a", "b"):
        for path in trained.rglob("*.py"):
            path.touch()
        assert main(["package", str(trained), "--out", str(tmp_path / out), "--format", "json"]) == 0
        digests.append(json.loads(capsys.readouterr().out)["sha256"])
    assert digests[0] == digests[1]
