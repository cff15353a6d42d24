"""`cprsdk local predict`: the predictor runs in a fresh interpreter, installed as a node installs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main
from scenario import Project


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(["local", "predict", *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


@pytest.fixture
def in_behaviours(behaviours: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(behaviours)
    (behaviours / "two.jsonl").write_text('[1, 2]\n\n{"a": 3}\n')
    return behaviours


def test_instances_and_kwargs_reach_predict(in_behaviours: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, body, _ = _run(capsys, "--json-instances", "two.jsonl", "--kwargs", '{"mode": "fast"}')
    assert code == 0
    assert body == {"predictions": [
        {"instance": [1, 2], "greeting": "hello", "kwargs": {"mode": "fast"}},
        {"instance": {"a": 3}, "greeting": "hello", "kwargs": {"mode": "fast"}},
    ]}


def test_json_request_and_text_instances(in_behaviours: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (in_behaviours / "req.json").write_text('{"instances": ["x"], "signature_name": "serving"}')
    code, body, _ = _run(capsys, "--json-request", "req.json")
    assert code == 0 and body["predictions"][0]["kwargs"] == {"signature_name": "serving"}
    (in_behaviours / "lines.txt").write_text("the first line\nthe second line\n")
    code, body, _ = _run(capsys, "--text-instances", "lines.txt")
    assert [p["instance"] for p in body["predictions"]] == ["the first line", "the second line"]


def test_numpy_output_is_converted(in_behaviours: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, body, _ = _run(capsys, "--json-instances", "two.jsonl", "--prediction-class", "numpy_out.NumpyOut")
    assert code == 1  # {"a": 3} cannot be summed as a row: a predictor exception
    (in_behaviours / "rows.jsonl").write_text("[1, 2]\n[3, 4.5]\n")
    code, body, _ = _run(capsys, "--json-instances", "rows.jsonl", "--prediction-class", "numpy_out.NumpyOut")
    assert code == 0
    assert body == {"predictions": {"sum": [3.0, 7.5], "count": 2, "flag": True, "nan": "NaN"}}


def test_predictor_exception_is_a_500_without_traceback(in_behaviours: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, body, err = _run(capsys, "--json-instances", "two.jsonl", "--prediction-class", "raises.Raises")
    assert code == 1
    assert body == {"error": {"code": 500, "status": "INTERNAL",
                              "message": "Prediction failed: ValueError: the model cannot handle negative ages"}}
    assert "Traceback" in err  # the log keeps the traceback; the response never does


def test_prediction_error_chooses_its_status(in_behaviours: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, body, _ = _run(capsys, "--json-instances", "two.jsonl", "--prediction-class",
                         "chooses_status.ChoosesStatus")
    assert code == 1
    assert body == {"error": {"code": 422, "status": "INVALID_ARGUMENT", "message": "feature 'age' must be positive"}}


def test_non_json_output_names_type_and_place(in_behaviours: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, body, _ = _run(capsys, "--json-instances", "two.jsonl", "--prediction-class", "not_json.NotJson")
    assert code == 1 and body["error"]["code"] == 500
    assert "predictions[0]['labels'] is a builtins.set" in body["error"]["message"]


def test_user_prints_never_corrupt_the_response(in_behaviours: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, body, _ = _run(capsys, "--json-instances", "two.jsonl", "--prediction-class", "prints.Prints", "-v")
    assert code == 0 and body == {"predictions": [2]}


def test_load_errors_are_reported_as_envelopes(in_behaviours: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, body, _ = _run(capsys, "--json-instances", "two.jsonl", "--prediction-class", "echo.Ekho")
    assert code == 1 and "Did you mean 'echo.Echo'?" in body["error"]["message"]


def test_bad_input_line_is_named(in_behaviours: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (in_behaviours / "bad.jsonl").write_text('[1]\n{"oops": \n')
    assert main(["local", "predict", "--json-instances", "bad.jsonl"]) == 1
    err = capsys.readouterr().err
    assert "ERROR: bad.jsonl line 2: The request body is not valid JSON" in err


def test_an_sdist_can_be_the_package(project: Project, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    src = project("ok")
    assert main(["package", str(src), "--out", str(src / "dist"), "-q"]) == 0
    sdist = capsys.readouterr().out.strip()
    monkeypatch.chdir(src.parent)
    (src.parent / "rows.jsonl").write_text("[1, 2]\n")
    code, body, _ = _run(capsys, "--package", sdist, "--model-dir", str(src / "model"),
                         "--prediction-class", "predictor.MyPredictor", "--json-instances", "rows.jsonl")
    assert code == 0 and body == {"predictions": [6.5]}  # (1 + 2) * 2.0 + 0.5
