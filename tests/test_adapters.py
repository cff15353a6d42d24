"""Every predictor form: AI Platform, Vertex classes, SageMaker handler modules, hook modules."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cprsdk import PredictorContractError, RequestError
from cprsdk.cli import main
from cprsdk.runtime.adapters import load_adapter, resolve_style
from cprsdk.testing import running_node
from helpers import copy_project, http, png


def _adapter(styles: Path, name: str, **kwargs: Any) -> Any:
    return load_adapter(name, styles / "model", paths=[styles], **kwargs)


@pytest.mark.parametrize(
    ("name", "style"),
    [("sm_full", "sagemaker"), ("sm_defaults", "sagemaker"), ("hooks_image", "hooks"),
     ("vertex_style.VertexPredictor", "vertex"), ("tinymodel.Linear", None)],
)
def test_the_name_decides_the_adapter(styles: Path, name: str, style: str | None) -> None:
    if style is None:
        with pytest.raises(PredictorContractError, match="has neither from_path .* nor load"):
            resolve_style(name, [str(styles)])
    else:
        assert resolve_style(name, [str(styles)]) == style


def test_transform_fn_mixed_with_input_fn_is_refused(styles: Path) -> None:
    with pytest.raises(PredictorContractError) as info:
        resolve_style("sm_mixed", [str(styles)])
    assert info.value.message == ("Module 'sm_mixed' defines transform_fn together with input_fn;"
                                  " SageMaker refuses that.")


def test_a_module_with_no_entry_point_is_explained(styles: Path) -> None:
    with pytest.raises(PredictorContractError, match="has no model_fn or transform_fn"):
        resolve_style("lonely", [str(styles)])


def test_sagemaker_csv_in_json_out(styles: Path) -> None:
    adapter = _adapter(styles, "sm_full")
    body, kind = adapter.handle_raw(b"1,2,3\n4,5,6\n", "text/csv", "application/json")
    assert kind == "application/json" and json.loads(body) == {"scores": [0.5, 2.0]}
    answer = json.loads(adapter.handle_json({"instances": [[1, 2, 3]]}, vertex=False, version="v1"))
    assert answer == {"predictions": {"scores": [0.5]}}


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "expected_type"),
    [(b'[[1, 2, 3]]', "application/json", "application/json", "application/json"),
     (b"a,b,c\n1,2,3\n", "text/csv", "text/csv", "text/csv"),
     (None, "application/x-npy", "application/x-npy", "application/x-npy")],
)
def test_sagemaker_defaults_decode_predict_and_encode(styles: Path, body: bytes | None, content_type: str,
                                                      accept: str, expected_type: str) -> None:
    if body is None:
        buffer = io.BytesIO()
        np.save(buffer, np.array([[1.0, 2.0, 3.0]]))
        body = buffer.getvalue()
    data, kind = _adapter(styles, "sm_defaults").handle_raw(body, content_type, accept)
    assert kind == expected_type
    if kind == "application/json":
        assert json.loads(data) == [0.5]
    elif kind == "text/csv":
        assert data == b"0.5\n"
    else:
        assert np.load(io.BytesIO(data)).tolist() == [0.5]


def test_sagemaker_unsupported_types_are_415_and_406(styles: Path) -> None:
    adapter = _adapter(styles, "sm_defaults")
    with pytest.raises(RequestError) as info:
        adapter.handle_raw(b"<x/>", "application/xml", "application/json")
    assert info.value.status_code == 415 and "No decoder for Content-Type application/xml" in info.value.message
    with pytest.raises(RequestError) as info:
        adapter.handle_raw(b"[[1,2,3]]", "application/json", "application/xml")
    assert info.value.status_code == 406


def test_sagemaker_context_argument_is_detected(styles: Path) -> None:
    adapter = _adapter(styles, "sm_context")
    assert adapter.model.where == str(styles / "model")
    data, _ = adapter.handle_raw(b'{"instances": [[2, 0, 0]]}', "application/json", "application/json")
    assert json.loads(data) == {"predictions": [2.0], "accept": "application/json"}


def test_hooks_canned_image_decoder_and_classification_formatter(styles: Path) -> None:
    adapter = _adapter(styles, "hooks_image", formatter="classification",
                       formatter_args={"num_preds": 3, "label": True, "index": True})
    data, kind = adapter.handle_raw(png((250, 10, 10)), "image/png", "")
    top = json.loads(data)["predictions"]
    assert kind == "application/json" and len(top) == 3
    assert top[0]["label"] == "cat" and top[0]["index"] == 0
    assert top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]


def test_hooks_raw_formatter_and_default_formatter(styles: Path) -> None:
    data, kind = _adapter(styles, "hooks_image").handle_raw(png((0, 0, 255)), "image/png", "")
    assert kind == "application/json" and len(json.loads(data)["outputs"]) == 4
    data, kind = _adapter(styles, "hooks_image", formatter="raw", formatter_args={"format_as": "csv"}).handle_raw(
        png((0, 0, 255)), "image/png", "")
    assert kind == "text/csv" and len(data.decode().split(",")) == 4


def test_hooks_overriding_every_step(styles: Path) -> None:
    answer = json.loads(_adapter(styles, "hooks_all").handle_json({"instances": [[2, 1, 0]]}, vertex=False,
                                                                   version="v1"))
    assert answer == {"predictions": [{"value": 1.0, "echo": [2, 1, 0]}]}


def test_vertex_class_gets_the_whole_body(styles: Path) -> None:
    adapter = _adapter(styles, "vertex_style.VertexPredictor")
    answer = json.loads(adapter.handle_json({"instances": [[1, 0, 0]], "parameters": {"scale": 3}}, vertex=True,
                                            version="v7"))
    assert answer == {"predictions": [3.0], "deployedModelId": "v7"}


# ---------------------------------------------------------------- through a node


@pytest.fixture(scope="module")
def styles_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("styles-node")
    project = copy_project("styles", root / "styles")
    registry = str(root / "registry")
    for model, cls, extra in (
        ("images", "hooks_image", ["--output-formatter", "classification",
                                   "--formatter-args", '{"num_preds": 3, "label": true}']),
        ("csvrows", "sm_full", []),
        ("vertexmodel", "vertex_style.VertexPredictor", []),
    ):
        assert main(["deploy", str(project), "--model", model, "--version", "v1", "--registry", registry,
                     "--prediction-class", cls, "--format", "json", *extra]) == 0
    yield project, registry


def test_image_classifier_returns_top3_labels_on_raw_predict(styles_registry: tuple[Path, str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    _, registry = styles_registry
    capsys.readouterr()
    with running_node(registry=registry, poll_interval=0.2) as node:
        status, data, kind = node.client.raw_predict("images", png((10, 240, 10)), "image/png")
        assert status == 200 and kind == "application/json"
        top = json.loads(data)["predictions"]
        assert [p["label"] for p in top][0] == "dog" and len(top) == 3
        assert all(set(p) == {"probability", "label"} for p in top)
        status, data, _ = node.client.raw_predict("images", b"not an image", "image/png")
        assert status == 400 and "not an image Pillow can read" in json.loads(data)["error"]["message"]

        status, data, kind = node.client.raw_predict("csvrows", b"1,2,3\n", "text/csv", accept="application/json")
        assert status == 200 and json.loads(data) == {"scores": [0.5]}
        assert node.client.predict("csvrows", [[1, 2, 3]]) == {"scores": [0.5]}

        response = node.client.request("POST", "/v1/projects/p/locations/l/endpoints/vertexmodel:predict",
                                       {"instances": [[1, 0, 0]], "parameters": {"scale": 2}})
        assert response.body == {"predictions": [2.0], "deployedModelId": "v1"}
        for parameters, kind in (([2], "an array"), ([], "an array"), (None, "null"), (0, "a number"),
                                 (False, "a boolean"), ("", "a string")):
            response = node.client.request("POST", "/v1/projects/p/locations/l/endpoints/vertexmodel:predict",
                                           {"instances": [[1, 0, 0]], "parameters": parameters})
            assert response.status == 400, response.body
            assert response.body["error"]["message"].startswith(f'"parameters" must be an object, got {kind}.')


def test_invocations_and_ping_on_a_single_version_node(styles: Path) -> None:
    with running_node(model_dir=styles / "model", packages=[styles], prediction_class="sm_full") as node:
        assert http(node.url, "GET", "/ping").status == 200
        answer = http(node.url, "POST", "/invocations", b"2,0,0\n0,2,0\n",
                      {"Content-Type": "text/csv", "Accept": "application/json"})
        assert answer.status == 200 and answer.headers["content-type"] == "application/json"
        assert answer.json() == {"scores": [2.0, -2.0]}


def test_local_predict_raw(styles: Path, capsysbinary: pytest.CaptureFixture[bytes],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(styles)
    (styles / "rows.csv").write_text("1,2,3\n")
    assert main(["local", "predict", "--prediction-class", "sm_full", "--raw", "rows.csv",
                 "--content-type", "text/csv"]) == 0
    out, err = capsysbinary.readouterr()
    assert json.loads(out) == {"scores": [0.5]} and b"Content-Type: application/json" in err


def test_bad_formatter_arguments_are_refused_at_deploy(styles: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", str(styles), "--model", "m", "--version", "v1", "--registry", str(styles / "reg"),
                 "--prediction-class", "hooks_image", "--output-formatter", "classification",
                 "--formatter-args", '{"top": 3}']) == 1
    err = capsys.readouterr().err
    assert "The classification formatter has no argument 'top'." in err
    assert "num_preds, probability, label, index" in err
