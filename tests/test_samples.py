"""The classic ZeroCenterer sample (scikit-learn): trains, packages, predicts as in-process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cprsdk import load_predictor
from cprsdk.cli import main
from helpers import copy_built, read_jsonl


def test_package_then_local_predict_equals_in_process(trained_sample: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(trained_sample)
    assert main(["package", "-q"]) == 0
    sdist = Path(capsys.readouterr().out.strip())
    assert sdist == trained_sample / "dist" / "zerocenterer_sklearn-0.1.tar.gz"
    instances = read_jsonl(trained_sample / "sample.jsonl")
    in_process = load_predictor("predictor.MyPredictor", trained_sample / "model", paths=[trained_sample])

    assert main(["local", "predict", "--package", str(sdist), "--json-instances", "sample.jsonl"]) == 0
    labels = json.loads(capsys.readouterr().out)["predictions"]
    assert labels == in_process.predict(instances)
    assert set(labels) == {"setosa", "versicolor", "virginica"}

    assert main(["local", "predict", "--json-instances", "sample.jsonl", "--kwargs", '{"probabilities": true}']) == 0
    probabilities = json.loads(capsys.readouterr().out)["predictions"]
    assert np.allclose(probabilities, in_process.predict(instances, probabilities=True))


def test_leaving_preprocess_out_fails_naming_it(trained_sample: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    broken = copy_built(trained_sample, tmp_path / "broken")
    (broken / "preprocess.py").unlink()
    assert main(["package", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "model/preprocessor.pkl needs preprocess.ZeroCenterer" in err
    assert "module 'preprocess' is neither in the package nor installed" in err
    assert not (broken / "dist").exists()


def test_packaging_twice_gives_the_same_sha256(trained_sample: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    digests = []
    for out in ("a", "b"):
        for path in trained_sample.rglob("*.py"):
            path.touch()
        assert main(["package", str(trained_sample), "--out", str(tmp_path / out), "--format", "json"]) == 0
        digests.append(json.loads(capsys.readouterr().out)["sha256"])
    assert digests[0] == digests[1]
