"""Framework versions (`--framework scikit-learn|xgboost`, no prediction class) run as AI Platform ran them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np
import pytest
import xgboost

from cprsdk.cli import main
from cprsdk.registry.registry import Registry
from cprsdk.storage import open_store
from cprsdk.testing import free_port, running_node
from helpers import copy_project, cprsdk_serve, http, run_python, wait_until

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [0.1, 9.0, 0.0, 7.0]]
XGB_ROWS = [[0.5, 0.2, -1.0, 0.0], [-2.0, -1.0, 0.3, 0.1], [1.0, -0.9, 0.0, 2.0]]


@pytest.fixture(autouse=True)
def _jobs_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def _made(name: str, dest: Path) -> Path:
    project = copy_project(name, dest)
    run_python(project, "make_model.py")
    return project


def _sklearn_expected(project: Path, rows: list[list[float]]) -> list[Any]:
    sys.path.insert(0, str(project))
    try:
        pipeline = joblib.load(project / "model" / "model.joblib")
        return list(pipeline.predict(np.array(rows)).tolist())
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("clipper", None)


def _xgb_expected(project: Path, rows: list[list[float]]) -> list[Any]:
    booster = xgboost.Booster()
    booster.load_model(bytearray((project / "model" / "model.bst").read_bytes()))
    return list(booster.predict(xgboost.DMatrix(np.array(rows))).tolist())


def _jsonl(path: Path, rows: list[list[float]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _out(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _node_predictions(registry: str, model: str, rows: list[list[float]]) -> list[Any]:
    with running_node(registry=registry, poll_interval=0.2) as node:
        answer = http(node.url, "POST", f"/v1/projects/p/models/{model}/versions/v1:predict",
                      json.dumps({"instances": rows}).encode())
    assert answer.status == 200, answer.data
    predictions: list[Any] = answer.json()["predictions"]
    return predictions


def _batch_predictions(capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str],
                       rows: list[list[float]]) -> list[Any]:
    inputs = _jsonl(tmp_path / "batch-in.jsonl", rows)
    code, out, err = _out(capsys, ["batch", "predict", *flags, "--input", str(inputs),
                                   "--output", str(tmp_path / "batch-out")])
    assert code == 0, err
    store = open_store(str(tmp_path / "batch-out"))
    lines = [json.loads(line) for info in store.list("predictions/") for line in store.read(info.key).data.splitlines()]
    by_line = {int(line["input"].rsplit(":", 1)[1]): line["prediction"] for line in lines}
    return [by_line[number] for number in sorted(by_line)]


def test_a_scikit_learn_framework_version_with_a_custom_transformer_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _made("fw-sklearn", tmp_path / "fw-sklearn")
    expected = _sklearn_expected(project, IRIS_ROWS)
    assert len(set(expected)) > 1  # the rows really are told apart
    code, out, err = _out(capsys, ["package", str(project), "--out", str(tmp_path / "dist")])
    assert code == 0, err
    sdist = out.strip().splitlines()[-1]
    monkeypatch.chdir(tmp_path)
    registry = str(tmp_path / "registry")
    code, out, err = _out(capsys, ["deploy", str(project), "--model", "iris", "--version", "v1", "--registry",
                                   registry, "--framework", "scikit-learn", "--package", sdist,
                                   "--model-dir", str(project / "model")])
    assert code == 0, err
    manifest = Registry(registry).get_version("iris", "v1")
    assert manifest.framework == "SCIKIT_LEARN" and manifest.prediction_class is None
    assert _node_predictions(registry, "iris", IRIS_ROWS) == expected

    local_flags = ["--framework", "scikit-learn", "--model-dir", str(project / "model"), "--package", sdist]
    code, out, err = _out(capsys, ["local", "predict", *local_flags,
                                   "--json-instances", str(_jsonl(tmp_path / "rows.jsonl", IRIS_ROWS))])
    assert code == 0, err
    assert json.loads(out) == {"predictions": expected}
    assert _batch_predictions(capsys, tmp_path, local_flags, IRIS_ROWS) == expected


def test_the_transformer_package_is_required_by_the_pickle_check(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    project = _made("fw-sklearn", tmp_path / "fw-sklearn")
    empty = tmp_path / "src"
    empty.mkdir()
    code, _, err = _out(capsys, ["deploy", str(empty), "--model", "iris", "--version", "v1", "--registry",
                                 str(tmp_path / "registry"), "--framework", "scikit-learn",
                                 "--model-dir", str(project / "model")])
    assert code != 0
    assert "model.joblib needs clipper.Clip" in err and "neither in the package nor installed" in err
    assert not Registry(str(tmp_path / "registry")).version_exists("iris", "v1")


def test_an_xgboost_model_bst_needs_no_code(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    project = _made("fw-xgboost", tmp_path / "fw-xgboost")
    expected = _xgb_expected(project, XGB_ROWS)
    monkeypatch.chdir(project)
    registry = str(tmp_path / "registry")
    code, _, err = _out(capsys, ["deploy", "--model", "xgb", "--version", "v1", "--registry", registry,
                                 "--framework", "xgboost"])
    assert code == 0, err
    manifest = Registry(registry).get_version("xgb", "v1")
    assert manifest.framework == "XGBOOST" and manifest.packages == ()
    assert _node_predictions(registry, "xgb", XGB_ROWS) == pytest.approx(expected)

    local_flags = ["--framework", "xgboost", "--model-dir", "model"]
    code, out, err = _out(capsys, ["local", "predict", *local_flags,
                                   "--json-instances", str(_jsonl(tmp_path / "rows.jsonl", XGB_ROWS))])
    assert code == 0, err
    assert json.loads(out)["predictions"] == pytest.approx(expected)
    assert _batch_predictions(capsys, tmp_path, local_flags, XGB_ROWS) == pytest.approx(expected)

    port = free_port()
    with cprsdk_serve(["--model-dir", "model", "--framework", "xgboost", "--port", str(port)], port=port,
                      log=tmp_path / "serve.log", cwd=project):
        answer = http(f"http://127.0.0.1:{port}", "POST", "/v1/projects/p/models/default/versions/v1:predict",
                      json.dumps({"instances": XGB_ROWS}).encode())
    assert answer.status == 200 and answer.json()["predictions"] == pytest.approx(expected)


def test_tensorflow_and_a_missing_model_file_are_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.h5").write_bytes(b"not a model")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.jsonl").write_text("[1, 2]\n")
    code, _, err = _out(capsys, ["deploy", "--model", "m", "--version", "v1", "--registry", "reg",
                                 "--framework", "tensorflow"])
    assert code != 0 and "TensorFlow framework versions are not supported yet" in err
    code, out, _ = _out(capsys, ["local", "predict", "--framework", "xgboost", "--json-instances", "x.jsonl"])
    assert code != 0
    assert "has none of model.joblib, model.pkl, model.bst" in json.loads(out)["error"]["message"]
    code, _, err = _out(capsys, ["deploy", "--model", "m", "--version", "v1", "--registry", "reg"])
    assert code != 0 and "No prediction class is set" in err and "--framework scikit-learn|xgboost" in err



def test_versions_create_takes_the_framework_field(tmp_path: Path) -> None:
    token = "a-test-token-that-is-long-enough"
    project = _made("fw-xgboost", tmp_path / "fw-xgboost")
    bucket = f"file://{(tmp_path / 'bucket').as_posix()}"
    open_store(bucket).upload_file(project / "model" / "model.bst", "xgb/model.bst")
    headers = {"Authorization": f"Bearer {token}"}
    with running_node(registry=str(tmp_path / "registry"), poll_interval=0.2, wait_ready=False,
                      admin_token=token, allowed_prefixes=(bucket,)) as node:
        base = "/v1/projects/p/models"
        assert http(node.url, "POST", base, json.dumps({"name": "xgb"}).encode(), headers).status == 200
        refused = http(node.url, "POST", f"{base}/xgb/versions", json.dumps(
            {"name": "tf", "deploymentUri": f"{bucket}/xgb", "framework": "TENSORFLOW"}).encode(), headers)
        assert refused.status == 501 and "not supported yet" in refused.json()["error"]["message"]
        created = http(node.url, "POST", f"{base}/xgb/versions", json.dumps(
            {"name": "v1", "deploymentUri": f"{bucket}/xgb", "framework": "XGBOOST"}).encode(), headers)
        assert created.status == 200, created.data
        wait_until(lambda: http(node.url, "GET", f"{base}/xgb/versions/v1", headers=headers).json(
            {}).get("state") in ("READY", "FAILED"))
        answer = http(node.url, "POST", f"{base}/xgb/versions/v1:predict", json.dumps({"instances": XGB_ROWS}).encode())
    assert answer.status == 200, answer.data
    assert answer.json()["predictions"] == pytest.approx(_xgb_expected(project, XGB_ROWS))
    assert Registry(str(tmp_path / "registry")).get_version("xgb", "v1").framework == "XGBOOST"


def test_the_manifest_records_the_framework_and_keeps_unknown_fields() -> None:
    from cprsdk.registry.manifest import Manifest

    stored = {"model": "m", "name": "v1", "framework": "XGBOOST", "machineType": "n1-standard-4"}
    manifest = Manifest.from_json(stored, source="test")
    assert manifest.framework == "XGBOOST" and manifest.extra == {"machineType": "n1-standard-4"}
    again = Manifest.from_json(manifest.to_json(), source="again")
    assert again == manifest and again.digest == manifest.digest
    plain = Manifest.from_json({"model": "m", "name": "v1", "predictionClass": "p.C"}, source="plain")
    assert "framework" not in plain.to_json()  # versions without one keep the digest they had
