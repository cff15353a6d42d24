"""SageMaker handler modules get what SageMaker's serving containers give them (DESIGN 3.1).

Each scenario is a tiny project under tests/projects/sm-*, trained here in seconds. Every scenario
goes through the same doors: in process (``load_adapter``, checked against the model itself),
``cprsdk local predict``, a node (``:predict``, ``:rawPredict``, ``/invocations``) and ``cprsdk
batch predict``; every door must answer exactly what the in-process adapter answers.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np
import pytest

from cprsdk import PredictionError, RequestError
from cprsdk.cli import main
from cprsdk.runtime.adapters import load_adapter
from cprsdk.testing import RunningNode, running_node

PROJECTS = Path(__file__).parent / "projects"
ROWS = np.round(np.random.default_rng(7).normal(size=(12, 3)), 4).tolist()
ABALONE = [["M", 0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15],
           ["F", 0.53, 0.42, 0.135, 0.677, 0.2565, 0.1415, 0.21],
           ["I", 0.33, 0.255, 0.08, 0.205, 0.0895, 0.0395, 0.055]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Copy tests/projects/<name> and run its train.py (once per test module)."""
    done: dict[str, Path] = {}

    def train(name: str) -> Path:
        if name not in done:
            dest = tmp_path_factory.mktemp("sagemaker") / name
            shutil.copytree(PROJECTS / name, dest)
            subprocess.run([sys.executable, "train.py"], cwd=dest, check=True, capture_output=True)
            done[name] = dest
        return done[name]

    return train


@pytest.fixture(autouse=True)
def _jobs_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", raising=False)


def _adapter(project: Path, name: str = "inference") -> Any:
    return load_adapter(name, project / "model", paths=[project])


def _predictions(adapter: Any, instances: list[Any]) -> Any:
    return json.loads(adapter.handle_json({"instances": instances}, vertex=False, version="v1"))["predictions"]


def _csv(rows: list[list[Any]]) -> bytes:
    return "".join(",".join(str(v) for v in row) + "\n" for row in rows).encode()


def _npy(array: Any) -> bytes:
    out = io.BytesIO()
    np.save(out, np.asarray(array))
    return out.getvalue()


def _local(project: Path, name: str, capsys: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch,
           *argv: str) -> tuple[bytes, bytes]:
    monkeypatch.chdir(project)
    capsys.readouterr()
    assert main(["local", "predict", "--prediction-class", name, "--model-dir", "model", "--package", ".",
                 *argv]) == 0
    out, err = capsys.readouterr()
    return out, err


def _node(project: Path, name: str = "inference") -> Any:
    return running_node(model_dir=project / "model", packages=[project], prediction_class=name)


def _invocations(node: RunningNode, data: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    request = urllib.request.Request(node.url + "/invocations", data=data,
                                     headers={"Content-Type": content_type, "Accept": accept})
    with urllib.request.urlopen(request) as answer:
        return answer.read(), answer.headers["content-type"]


def _batch(project: Path, name: str, inputs: Path, out: Path, capsys: pytest.CaptureFixture[bytes],
           *argv: str) -> list[dict[str, Any]]:
    code = main(["batch", "predict", "--model-dir", str(project / "model"), "--package", str(project),
                 "--prediction-class", name, "--input", str(inputs), "--output", str(out), *argv])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["failed"] == 0, summary
    return [json.loads(line) for line in (out / "predictions" / "part-00000.jsonl").read_text().splitlines()]


def _jsonl(path: Path, instances: list[Any]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in instances))
    return path


# ---------------------------------------------------------------- model_fn only, scikit-learn


def test_sklearn_model_fn_only_uses_the_containers_numpy_defaults(trained: Callable[[str], Path]) -> None:
    project = trained("sm-sklearn-defaults")
    model = joblib.load(project / "model" / "model.joblib")
    adapter = _adapter(project)
    expected = model.predict(np.asarray(ROWS, dtype=np.float32))  # JSON and CSV become float32, as in SageMaker
    assert _predictions(adapter, ROWS) == expected.tolist()
    data, kind = adapter.handle_raw(json.dumps(ROWS).encode(), "application/json", "*/*")
    assert kind == "application/json" and json.loads(data) == expected.tolist()
    data, kind = adapter.handle_raw(_csv(ROWS), "text/csv", "text/csv")
    assert kind == "text/csv" and data == "".join(f"{v}\n" for v in expected).encode()
    data, kind = adapter.handle_raw(_npy(ROWS), "application/x-npy", "application/x-npy")  # NPY keeps float64
    assert kind == "application/x-npy"
    assert np.load(io.BytesIO(data)).tolist() == model.predict(np.asarray(ROWS)).tolist()
    data, kind = adapter.handle_raw(json.dumps(ROWS).encode(), "", "")  # no headers: JSON in, JSON out
    assert kind == "application/json" and json.loads(data) == expected.tolist()


def test_sklearn_model_fn_only_refuses_what_its_defaults_cannot_read(trained: Callable[[str], Path]) -> None:
    adapter = _adapter(trained("sm-sklearn-defaults"))
    with pytest.raises(RequestError) as info:
        adapter.handle_raw(b"<rows/>", "application/xml", "application/json")
    assert info.value.status_code == 415 and "No decoder for Content-Type application/xml" in info.value.message
    with pytest.raises(RequestError) as info:
        adapter.handle_raw(b'{"instances": [[1, 2, 3]]}', "application/json", "application/json")
    assert info.value.status_code == 400 and "the default decoder reads a JSON array" in info.value.message
    with pytest.raises(RequestError) as info:
        adapter.handle_raw(_csv(ROWS), "text/csv", "image/png, application/xml")
    assert info.value.status_code == 406


def test_sklearn_model_fn_only_answers_alike_through_every_door(trained: Callable[[str], Path], tmp_path: Path,
                                                                capsysbinary: pytest.CaptureFixture[bytes],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    project = trained("sm-sklearn-defaults")
    adapter = _adapter(project)
    expected = _predictions(adapter, ROWS)
    csv_answer, _ = adapter.handle_raw(_csv(ROWS), "text/csv", "text/csv")

    out, _ = _local(project, "inference", capsysbinary, monkeypatch, "--json-instances",
                    str(_jsonl(tmp_path / "rows.jsonl", ROWS)))
    assert json.loads(out)["predictions"] == expected
    (tmp_path / "rows.csv").write_bytes(_csv(ROWS))
    out, err = _local(project, "inference", capsysbinary, monkeypatch, "--raw", str(tmp_path / "rows.csv"),
                      "--content-type", "text/csv", "--accept", "text/csv")
    assert out == csv_answer and b"Content-Type: text/csv" in err

    with _node(project) as node:
        assert node.client.predict("default", ROWS) == expected
        assert node.client.raw_predict("default", _csv(ROWS), "text/csv", accept="text/csv") == (
            200, csv_answer, "text/csv")
        data, kind = _invocations(node, json.dumps(ROWS).encode(), "application/json", "application/json")
        assert kind == "application/json" and json.loads(data) == expected

    lines = _batch(project, "inference", _jsonl(tmp_path / "batch.jsonl", ROWS), tmp_path / "out", capsysbinary)
    assert [line["prediction"] for line in lines] == expected


# ---------------------------------------------------------------- an abalone featurizer (str bodies, worker.Response)


def _featurized(model: Any, rows: list[list[Any]], labels: list[float] | None = None) -> list[list[float]]:
    features = model.transform(np.asarray(rows, dtype=object))
    if labels is not None:
        features = np.insert(features, 0, labels, axis=1)
    return features.tolist()  # type: ignore[no-any-return]


def test_abalone_featurizer_reads_str_bodies_and_answers_worker_responses(trained: Callable[[str], Path]) -> None:
    project = trained("sm-abalone")
    model = joblib.load(project / "model" / "model.joblib")
    adapter = _adapter(project)
    labelled = _csv([[*row, rings] for row, rings in zip(ABALONE, (15, 7, 9), strict=True)])
    data, kind = adapter.handle_raw(labelled, "text/csv", "application/json")
    assert kind == "application/json"
    assert json.loads(data) == {"instances": [{"features": f} for f in _featurized(model, ABALONE, [15, 7, 9])]}
    data, kind = adapter.handle_raw(_csv(ABALONE), "text/csv", "text/csv")
    assert kind == "text/csv; charset=utf-8"  # what flask (the real worker.Response's base) sends
    assert np.loadtxt(io.StringIO(data.decode()), delimiter=",").tolist() == _featurized(model, ABALONE)
    assert _predictions(adapter, ABALONE) == {"instances": [{"features": f} for f in _featurized(model, ABALONE)]}


def test_abalone_featurizer_answers_alike_through_every_door(trained: Callable[[str], Path], tmp_path: Path,
                                                             capsysbinary: pytest.CaptureFixture[bytes],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    project = trained("sm-abalone")
    adapter = _adapter(project)
    rows_csv = _csv(ABALONE)
    as_json, _ = adapter.handle_raw(rows_csv, "text/csv", "application/json")
    as_csv, csv_type = adapter.handle_raw(rows_csv, "text/csv", "text/csv")
    expected = _predictions(adapter, ABALONE)

    (tmp_path / "rows.csv").write_bytes(rows_csv)
    out, _ = _local(project, "inference", capsysbinary, monkeypatch, "--raw", str(tmp_path / "rows.csv"),
                    "--content-type", "text/csv")
    assert out == as_json
    out, _ = _local(project, "inference", capsysbinary, monkeypatch, "--json-instances",
                    str(_jsonl(tmp_path / "rows.jsonl", ABALONE)))
    assert json.loads(out)["predictions"] == expected

    with _node(project) as node:
        assert node.client.predict("default", ABALONE) == expected
        assert node.client.raw_predict("default", rows_csv, "text/csv") == (200, as_json, "application/json")
        assert _invocations(node, rows_csv, "text/csv", "text/csv") == (as_csv, csv_type)

    files = tmp_path / "files"  # one CSV file per request, as a batch transform without splitting sends them
    files.mkdir()
    (files / "a.csv").write_bytes(rows_csv)
    (files / "b.csv").write_bytes(_csv(ABALONE[:1]))
    lines = _batch(project, "inference", files, tmp_path / "out", capsysbinary, "--data-format", "files")
    assert [line["prediction"] for line in lines] == [
        json.loads(adapter.handle_raw(rows_csv, "text/csv", "application/json")[0]),
        json.loads(adapter.handle_raw(_csv(ABALONE[:1]), "text/csv", "application/json")[0])]


# ---------------------------------------------------------------- model_fn only, a torch.nn.Module


def test_torch_model_fn_only_uses_the_pytorch_containers_defaults(trained: Callable[[str], Path]) -> None:
    import torch

    project = trained("sm-torch-defaults")
    adapter = _adapter(project)
    model = torch.nn.Linear(3, 2)
    model.load_state_dict(torch.load(project / "model" / "model.pth", weights_only=True))
    with torch.no_grad():
        expected = model(torch.tensor(ROWS, dtype=torch.float32)).tolist()
    assert _predictions(adapter, ROWS) == expected
    data, kind = adapter.handle_raw(_csv(ROWS), "text/csv", "text/csv")
    assert kind == "text/csv" and np.loadtxt(io.StringIO(data.decode()), delimiter=",").tolist() == expected
    data, kind = adapter.handle_raw(_npy(np.asarray(ROWS, dtype=np.float32)), "application/x-npy",
                                    "application/x-npy")
    assert kind == "application/x-npy" and np.load(io.BytesIO(data)).tolist() == expected
    assert not adapter.model.training  # eval mode


def test_torch_model_fn_only_answers_alike_through_every_door(trained: Callable[[str], Path], tmp_path: Path,
                                                              capsysbinary: pytest.CaptureFixture[bytes],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    project = trained("sm-torch-defaults")
    adapter = _adapter(project)
    expected = _predictions(adapter, ROWS)
    npy_answer, _ = adapter.handle_raw(_npy(np.asarray(ROWS, dtype=np.float32)), "application/x-npy",
                                       "application/x-npy")

    out, _ = _local(project, "inference", capsysbinary, monkeypatch, "--json-instances",
                    str(_jsonl(tmp_path / "rows.jsonl", ROWS)))
    assert json.loads(out)["predictions"] == expected

    with _node(project) as node:
        assert node.client.predict("default", ROWS) == expected
        status, data, kind = node.client.raw_predict("default", _csv(ROWS), "text/csv", accept="application/json")
        assert (status, kind, json.loads(data)) == (200, "application/json", expected)
        assert _invocations(node, _npy(np.asarray(ROWS, dtype=np.float32)), "application/x-npy",
                            "application/x-npy") == (npy_answer, "application/x-npy")

    lines = _batch(project, "inference", _jsonl(tmp_path / "batch.jsonl", ROWS), tmp_path / "out", capsysbinary)
    assert [line["prediction"] for line in lines] == expected


# ---------------------------------------------------------------- what output_fn may return


@pytest.mark.parametrize("name", ["flask_response", "tuple_body", "bare_body"])
def test_output_fn_may_answer_a_response_a_tuple_or_a_bare_body(trained: Callable[[str], Path], name: str) -> None:
    if name == "flask_response":
        pytest.importorskip("flask")
    project = trained("sm-output-forms")
    expected = joblib.load(project / "model" / "model.joblib").predict(np.asarray(ROWS, dtype=np.float32))
    adapter = _adapter(project, name)
    data, kind = adapter.handle_raw(_csv(ROWS), "text/csv", "text/csv")
    assert kind.split(";")[0] == "text/csv" and data == "".join(f"{v}\n" for v in expected).encode()
    data, kind = adapter.handle_raw(_csv(ROWS), "text/csv", "")
    assert kind == "application/json" and json.loads(data) == expected.tolist()
    assert _predictions(adapter, ROWS) == expected.tolist()


def test_flask_response_answers_alike_through_every_door(trained: Callable[[str], Path], tmp_path: Path,
                                                         capsysbinary: pytest.CaptureFixture[bytes],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("flask")
    project = trained("sm-output-forms")
    adapter = _adapter(project, "flask_response")
    expected = _predictions(adapter, ROWS)
    as_csv, csv_type = adapter.handle_raw(_csv(ROWS), "text/csv", "text/csv")

    (tmp_path / "rows.csv").write_bytes(_csv(ROWS))
    out, err = _local(project, "flask_response", capsysbinary, monkeypatch, "--raw", str(tmp_path / "rows.csv"),
                      "--content-type", "text/csv", "--accept", "text/csv")
    assert out == as_csv and b"Content-Type: text/csv; charset=utf-8" in err

    with _node(project, "flask_response") as node:
        assert node.client.predict("default", ROWS) == expected
        assert node.client.raw_predict("default", _csv(ROWS), "text/csv", accept="text/csv") == (200, as_csv, csv_type)
        data, kind = _invocations(node, _csv(ROWS), "text/csv", "application/json")
        assert kind == "application/json" and json.loads(data) == expected

    lines = _batch(project, "flask_response", _jsonl(tmp_path / "batch.jsonl", ROWS), tmp_path / "out", capsysbinary)
    assert [line["prediction"] for line in lines] == expected


def test_a_response_with_an_error_status_answers_that_status(trained: Callable[[str], Path]) -> None:
    adapter = _adapter(trained("sm-output-forms"), "refusing_response")
    data, kind = adapter.handle_raw(b"1,2,3\n", "text/csv", "")
    assert kind == "application/json" and len(json.loads(data)) == 1
    with pytest.raises(PredictionError) as info:
        adapter.handle_raw(b"1000,2,3\n", "text/csv", "")
    assert info.value.status_code == 422
    assert info.value.message == 'output_fn answered HTTP 422: {"error": "a score is out of range"}'


# ---------------------------------------------------------------- what input_fn is handed


def test_input_fn_gets_str_for_json_and_csv_and_bytes_otherwise(trained: Callable[[str], Path]) -> None:
    adapter = _adapter(trained("sm-output-forms"), "body_types")
    for content_type, is_text in (("application/json", True), ("text/csv", True), ("text/csv; charset=utf-8", True),
                                  ("application/x-npy", False), ("application/octet-stream", False)):
        answer = json.loads(adapter.handle_raw(b"[1]", content_type, "")[0])
        assert (answer["str"], answer["bytes"], answer["content_type"]) == (is_text, not is_text, content_type)
        assert answer["accept"] == "application/json"  # no Accept: the container's default
    with pytest.raises(RequestError, match="not UTF-8"):
        adapter.handle_raw(b"\xff\xfe", "text/csv", "")


def test_a_json_route_hands_input_fn_the_instances_list(trained: Callable[[str], Path]) -> None:
    adapter = _adapter(trained("sm-output-forms"), "body_types")
    answer = _predictions(adapter, [[1, 2, 3]])  # the other fields of the body do not reach a SageMaker module
    assert answer == {"str": True, "bytes": False, "content_type": "application/json",
                      "length": len(json.dumps([[1, 2, 3]])), "accept": "application/json"}
    answer = json.loads(adapter.handle_json({"instances": [[1]], "parameters": {}}, vertex=True, version="v3"))
    assert answer["deployedModelId"] == "v3" and answer["predictions"]["length"] == len("[[1]]")


def test_the_default_accept_comes_from_the_container_variable(trained: Callable[[str], Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "text/csv")
    adapter = _adapter(trained("sm-sklearn-defaults"))
    data, kind = adapter.handle_raw(_csv(ROWS[:2]), "text/csv", "*/*")
    assert kind == "text/csv" and len(data.splitlines()) == 2
    assert len(_predictions(adapter, ROWS[:2])) == 2  # JSON routes always answer JSON


# ---------------------------------------------------------------- the stand-in for sagemaker_containers


def test_the_stand_in_framework_encodes_decodes_and_answers(trained: Callable[[str], Path]) -> None:
    _adapter(trained("sm-output-forms"), "shim_codecs")
    # cprsdk's stand-in, which mypy cannot see:
    from sagemaker_containers.beta.framework import content_types, encoders, errors, worker  # type: ignore[import-not-found]

    assert (content_types.JSON, content_types.CSV, content_types.NPY) == ("application/json", "text/csv",
                                                                          "application/x-npy")
    assert content_types.UTF8_TYPES == ["application/json", "text/csv"]
    assert encoders.encode(np.array([[1.5, 2.0]]), content_types.JSON) == "[[1.5, 2.0]]"
    assert encoders.encode(np.array([1.5, 2.0], dtype=np.float32), content_types.CSV) == "1.5\n2.0\n"
    assert encoders.decode("1,2\n3,4\n", content_types.CSV).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    npy = encoders.encode(np.eye(2), content_types.NPY)
    assert isinstance(npy, bytes) and encoders.decode(npy, content_types.NPY).tolist() == np.eye(2).tolist()
    with pytest.raises(errors.UnsupportedFormatError):
        encoders.decode("<x/>", "application/xml")
    response = worker.Response(response="[1]", status=201, mimetype="application/json")
    assert (response.status_code, response.mimetype, response.get_data()) == (201, "application/json", b"[1]")
    assert worker.Response("a,b").content_type == "application/json"
    assert worker.Response("a,b", mimetype="text/csv").content_type == "text/csv; charset=utf-8"
    from sagemaker_inference import content_types as types  # type: ignore[import-not-found]
    from sagemaker_inference import decoder, encoder

    assert decoder.decode(encoder.encode([[1, 2]], types.JSON), types.JSON).tolist() == [[1, 2]]


def test_unsupported_formats_from_the_stand_in_are_415_in_and_406_out(trained: Callable[[str], Path]) -> None:
    adapter = _adapter(trained("sm-output-forms"), "shim_codecs")
    data, kind = adapter.handle_raw(_csv(ROWS[:2]), "text/csv", "text/csv")
    assert kind == "text/csv; charset=utf-8" and len(data.splitlines()) == 2
    with pytest.raises(RequestError) as info:
        adapter.handle_raw(b"<x/>", "application/xml", "text/csv")
    assert info.value.status_code == 415 and "Content type application/xml is not supported" in info.value.message
    with pytest.raises(RequestError) as info:
        adapter.handle_raw(_csv(ROWS[:2]), "text/csv", "application/xml")
    assert info.value.status_code == 406


def test_the_real_package_wins_over_the_stand_in(tmp_path: Path) -> None:
    real = tmp_path / "site" / "sagemaker_containers"
    (real / "beta" / "framework").mkdir(parents=True)
    (real / "__init__.py").write_text("")
    (real / "beta" / "__init__.py").write_text("")
    (real / "beta" / "framework" / "__init__.py").write_text("REAL = True\n")
    (tmp_path / "handler.py").write_text(textwrap.dedent("""\
        from sagemaker_containers.beta import framework

        def model_fn(model_dir):
            return getattr(framework, "REAL", False)
        """))
    script = textwrap.dedent(f"""\
        import sys
        from cprsdk.runtime.adapters import load_adapter
        adapter = load_adapter("handler", {str(tmp_path)!r}, paths=[{str(tmp_path)!r}, {str(tmp_path / 'site')!r}])
        print(adapter.model)
        try:
            import sagemaker_containers.beta.framework.worker
        except ImportError:
            print("no stand-in inside a real package")
        """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:2] == ["True", "no stand-in inside a real package"]


# ---------------------------------------------------------------- through package and deploy


@pytest.mark.parametrize("name", ["sm-sklearn-defaults", "sm-torch-defaults", "sm-abalone"])
def test_each_scenario_packages_deploys_and_serves_from_the_registry(
    trained: Callable[[str], Path], tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cprsdk package` (every check, the load check included) and `cprsdk deploy`, then a registry node."""
    project = trained(name)
    assert main(["package", str(project), "--out", str(tmp_path / "dist"), "-q"]) == 0, capsys.readouterr().err
    registry = str(tmp_path / "registry")
    assert main(["deploy", str(project), "--model", "sm", "--version", "v1", "--registry", registry]) == 0
    capsys.readouterr()
    adapter = _adapter(project)
    rows = _csv(ABALONE) if name == "sm-abalone" else _csv(ROWS)
    expected, _ = adapter.handle_raw(rows, "text/csv", "application/json")
    with running_node(registry=registry, poll_interval=0.2) as node:
        status, data, _ = node.client.raw_predict("sm", rows, "text/csv", version="v1", accept="application/json")
        assert status == 200 and json.loads(data) == json.loads(expected)
        if name != "sm-abalone":  # its JSON answer is one object, not one prediction per instance
            answer = node.client.predict("sm", ROWS, version="v1")
            assert answer == _predictions(adapter, ROWS)
