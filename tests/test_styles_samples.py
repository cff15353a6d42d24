"""The SageMaker, hooks and Vertex samples served through a node, and `cprsdk init` for each style.

Each sample is copied, trained, packaged, deployed to a folder registry and served by one node;
every answer must equal what the same code gives in-process (``load_adapter`` then
``handle_raw``/``handle_json``). Each template must train, package, `local predict` and pass its
own tests exactly as generated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main
from cprsdk.runtime.adapters import load_adapter
from cprsdk.testing import RunningNode, running_node
from helpers import copy_sample, png, read_jsonl, run_python, train

TOP3 = {"num_preds": 3, "label": True}
# sample folder -> (model name, prediction class, extra deploy flags)
DEPLOYED = {
    "iris-sagemaker": ("iris_sagemaker", "inference", []),
    "iris-hooks": ("colours", "hooks", ["--output-formatter", "classification", "--formatter-args", json.dumps(TOP3)]),
    "iris-vertex": ("iris_vertex", "predictor.IrisPredictor", []),
}
SPECIES = ["setosa", "setosa", "versicolor", "versicolor", "virginica"]  # of the rows iris.data[::30]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], str]:
    """Every sample copied, trained, packaged (`cprsdk package`) and deployed to one folder registry."""
    root = tmp_path_factory.mktemp("styles-samples")
    registry = str(root / "registry")
    projects: dict[str, Path] = {}
    for sample, (model, _, flags) in DEPLOYED.items():
        project = copy_sample(sample, root / sample)
        train(project)
        assert main(["package", str(project), "-q"]) == 0
        sdists = sorted((project / "dist").glob("*.tar.gz"))
        assert [s.name for s in sdists] == [f"{sample.replace('-', '_')}-0.1.tar.gz"]
        assert main(["deploy", str(project), "--model", model, "--version", "v1", "--registry", registry,
                     "--package", str(sdists[0]), "--format", "json", *flags]) == 0
        projects[sample] = project
    return projects, registry


@pytest.fixture(scope="module")
def node(deployed: tuple[dict[str, Path], str]) -> Iterator[RunningNode]:
    with running_node(registry=deployed[1], poll_interval=0.2) as running:
        yield running


def _in_process(project: Path, **kwargs: Any) -> Any:
    _, prediction_class, _ = DEPLOYED[project.name]
    return load_adapter(prediction_class, project / "model", paths=[project], **kwargs)


def test_sagemaker_sample_csv_on_raw_predict_and_json_on_predict(deployed: tuple[dict[str, Path], str],
                                                                 node: RunningNode) -> None:
    project = deployed[0]["iris-sagemaker"]
    rows_csv = (project / "inputs" / "rows.csv").read_bytes()
    assert rows_csv.startswith(b"sepal_length,")  # a header line, which input_fn skips
    adapter = _in_process(project)

    status, data, kind = node.client.raw_predict("iris_sagemaker", rows_csv, "text/csv", accept="application/json")
    assert status == 200, data
    assert kind.startswith("application/json")
    expected, expected_kind = adapter.handle_raw(rows_csv, "text/csv", "application/json")
    assert expected_kind == "application/json"
    answer = json.loads(data)
    assert answer == json.loads(expected)
    assert [row["species"] for row in answer] == SPECIES
    assert all(0.5 < row["confidence"] <= 1.0 for row in answer)

    instances = read_jsonl(project / "inputs" / "instances.jsonl")
    predictions = node.client.predict("iris_sagemaker", instances)
    in_process = json.loads(adapter.handle_json({"instances": instances}, vertex=False, version="v1"))
    assert predictions == in_process["predictions"] == answer  # JSON reaches input_fn as JSON

    status, data, _ = node.client.raw_predict("iris_sagemaker", rows_csv, "text/csv", accept="application/xml")
    assert status == 500 and "Unsupported Accept 'application/xml'" in json.loads(data)["error"]["message"]


def test_hooks_sample_image_classifier_answers_top3_labels(deployed: tuple[dict[str, Path], str],
                                                           node: RunningNode) -> None:
    project = deployed[0]["iris-hooks"]
    adapter = _in_process(project, formatter="classification", formatter_args=TOP3)
    bodies = [((project / "inputs" / f"{c}.png").read_bytes(), "image/png", c) for c in ("red", "green", "blue")]
    bodies.append((png((30, 40, 210), (50, 20), "JPEG"), "image/jpeg", "blue"))  # any size, any Pillow format
    for body, content_type, colour in bodies:
        status, data, kind = node.client.raw_predict("colours", body, content_type)
        assert status == 200, data
        assert kind.startswith("application/json")
        top = json.loads(data)["predictions"]
        assert top == json.loads(adapter.handle_raw(body, content_type, "")[0])["predictions"]
        assert [p["label"] for p in top][0] == colour
        assert sorted(p["label"] for p in top) == ["blue", "green", "red"]
        assert all(set(p) == {"probability", "label"} for p in top)
        assert top[0]["probability"] > 0.5 and top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]
        assert sum(p["probability"] for p in top) == pytest.approx(1.0)

    status, data, _ = node.client.raw_predict("colours", b"not a picture", "image/png")
    assert status == 400 and "not an image Pillow can read" in json.loads(data)["error"]["message"]


def test_vertex_sample_gets_parameters_on_the_vertex_route(deployed: tuple[dict[str, Path], str],
                                                           node: RunningNode) -> None:
    project = deployed[0]["iris-vertex"]
    adapter = _in_process(project)
    instances = read_jsonl(project / "inputs" / "instances.jsonl")
    route = "/v1/projects/p/locations/l/endpoints/iris_vertex:predict"

    for parameters, k in (({"top_k": 2}, 2), (None, 1)):
        body: dict[str, Any] = {"instances": instances}
        if parameters is not None:
            body["parameters"] = parameters
        response = node.client.request("POST", route, body)
        assert response.status == 200, response.body
        assert response.body == json.loads(adapter.handle_json(body, vertex=True, version="v1"))
        assert response.body["deployedModelId"] == "v1"
        predictions = response.body["predictions"]
        assert [len(top) for top in predictions] == [k] * len(instances)
        assert [top[0]["species"] for top in predictions] == SPECIES

    response = node.client.request("POST", route, {"instances": instances, "parameters": {"top_k": 9}})
    assert response.status == 500 and "parameters.top_k must be from 1 to 3" in response.body["error"]["message"]


# ---------------------------------------------------------------- cprsdk init --template ...

_TOP3_FLAGS = ["--output-formatter", "classification", "--formatter-args", json.dumps(TOP3)]


def _check_sagemaker(out: bytes) -> None:
    assert [row["species"] for row in json.loads(out)] == SPECIES


def _check_hooks(out: bytes) -> None:
    top = json.loads(out)["predictions"]
    assert [p["label"] for p in top] == ["virginica", "versicolor", "setosa"]


def _check_vertex(out: bytes) -> None:
    probabilities = json.loads(out)["predictions"]
    assert len(probabilities) == 5 and all(sum(p) == pytest.approx(1.0) for p in probabilities)


@pytest.mark.parametrize(
    ("template", "module", "local_args", "check"),
    [
        ("sagemaker", "inference",
         ["--raw", "sample.csv", "--content-type", "text/csv", "--accept", "application/json"], _check_sagemaker),
        ("hooks", "hooks", ["--raw", "sample.json", "--content-type", "application/json", *_TOP3_FLAGS], _check_hooks),
        ("vertex", "predictor",
         ["--json-instances", "sample.jsonl", "--kwargs", '{"parameters": {"probabilities": true}}'], _check_vertex),
    ],
)
def test_template_works_as_generated(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes],
                                     monkeypatch: pytest.MonkeyPatch, template: str, module: str,
                                     local_args: list[str], check: Callable[[bytes], None]) -> None:
    dest = tmp_path / f"my-{template}"
    assert main(["init", str(dest), "--template", template]) == 0
    assert (dest / ".gitignore").is_file() and (dest / f"{module}.py").is_file()
    pyproject = (dest / "pyproject.toml").read_text()
    assert f'name = "my-{template}"' in pyproject and f'py-modules = ["{module}"]' in pyproject
    assert not list(dest.rglob("*.tmpl"))
    train(dest)
    monkeypatch.chdir(dest)
    capsysbinary.readouterr()
    assert main(["package", "-q"]) == 0
    assert capsysbinary.readouterr().out.decode().strip().endswith(f"my_{template}-0.1.tar.gz")
    assert main(["local", "predict", *local_args]) == 0
    check(capsysbinary.readouterr().out)
    # the JSON instances every template writes, as the hint `cprsdk init` prints
    assert main(["local", "predict", "--json-instances", "sample.jsonl"]) == 0
    assert len(json.loads(capsysbinary.readouterr().out)["predictions"]) == 5
    proc = run_python(dest, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert re.search(r"^2 passed", proc.stdout, re.MULTILINE), proc.stdout
