"""AI Platform v1 management through Google's `ml` v1 client: a bearer token, allowed prefixes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main
from cprsdk.storage import open_store
from cprsdk.testing import RunningNode, running_node
from helpers import http, wait_until

TOKEN = "a-test-token-that-is-long-enough"


@pytest.fixture(scope="module")
def staged(trained_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The trained sample's model directory and sdist, staged in a file:// 'bucket'."""
    root = tmp_path_factory.mktemp("mgmt")
    assert main(["package", str(trained_sample), "--out", str(root / "dist"), "-q"]) == 0
    sdist = next((root / "dist").glob("*.tar.gz"))
    bucket_uri = f"file://{(root / 'bucket').as_posix()}"
    bucket = open_store(bucket_uri)
    for path in (trained_sample / "model").iterdir():
        bucket.upload_file(path, f"models/iris/{path.name}")
    bucket.upload_file(sdist, f"staging/{sdist.name}")
    return {"bucket": bucket_uri, "origin": f"{bucket_uri}/models/iris",
            "package": f"{bucket_uri}/staging/{sdist.name}"}


@pytest.fixture
def node(staged: dict[str, str], tmp_path: Path) -> Iterator[RunningNode]:
    with running_node(registry=str(tmp_path / "registry"), poll_interval=0.2, wait_ready=False,
                      admin_token=TOKEN, allowed_prefixes=(staged["bucket"],)) as running:
        yield running


MlClient = Callable[[RunningNode], Any]


@pytest.fixture
def ml_client() -> Iterator[MlClient]:
    """Builds Google's `ml` v1 client for a node, bearing the admin token; closes its connections."""
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build

    built: list[Any] = []

    def make(node: RunningNode) -> Any:
        credentials = Credentials(token=TOKEN)  # type: ignore[no-untyped-call]  # google-auth leaves it untyped
        built.append(build("ml", "v1", static_discovery=True, client_options={"api_endpoint": node.url},
                           credentials=credentials))
        return built[-1]

    yield make
    for client in built:
        client.close()


def _post(node: RunningNode, path: str, body: dict[str, Any], token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = http(node.url, "POST", path, json.dumps(body).encode(), headers)
    return answer.status, answer.data.decode()


def _wait_done(ml: Any, operation: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while not operation.get("done"):
        assert time.monotonic() < deadline, operation
        time.sleep(0.2)
        operation = ml.projects().operations().get(name=operation["name"]).execute()
    return operation


def test_create_predict_set_default_delete_with_the_ml_client(node: RunningNode, staged: dict[str, str],
                                                              ml_client: MlClient) -> None:
    ml = ml_client(node)
    model = ml.projects().models().create(parent="projects/p", body={"name": "iris"}).execute()
    assert model["name"] == "projects/p/models/iris"
    body = {"name": "v1", "deploymentUri": staged["origin"], "packageUris": [staged["package"]],
            "predictionClass": "predictor.MyPredictor", "runtimeVersion": "1.15", "pythonVersion": "3.7",
            "machineType": "mls1-c1-m2", "framework": "SCIKIT_LEARN"}
    operation = ml.projects().models().versions().create(parent="projects/p/models/iris", body=body).execute()
    assert operation["name"].startswith("projects/p/operations/")
    done = _wait_done(ml, operation)
    assert "error" not in done, done
    versions = ml.projects().models().versions()
    wait_until(lambda: versions.get(name="projects/p/models/iris/versions/v1").execute()["state"] == "READY",
               timeout=120, interval=0.2, what="iris/v1 READY")
    answer = ml.projects().predict(name="projects/p/models/iris", body={"instances": [[6.7, 3.0, 5.2, 2.3]]}).execute()
    assert answer == {"predictions": ["virginica"]}

    operation = versions.create(parent="projects/p/models/iris", body={**body, "name": "v2"}).execute()
    assert "error" not in _wait_done(ml, operation)
    resource = versions.setDefault(name="projects/p/models/iris/versions/v2", body={}).execute()
    assert resource["isDefault"] is True
    listed = versions.list(parent="projects/p/models/iris").execute()["versions"]
    assert {v["name"].rsplit("/", 1)[1]: v["isDefault"] for v in listed} == {"v1": False, "v2": True}
    assert _wait_done(ml, versions.delete(name="projects/p/models/iris/versions/v1").execute())["done"]


def test_management_needs_the_token(node: RunningNode) -> None:
    for token in (None, "wrong-token-of-enough-length"):
        status, text = _post(node, "/v1/projects/p/models", {"name": "iris"}, token)
        assert status == 401 and "A valid bearer token is required" in text
    assert _post(node, "/v1/projects/p/models", {"name": "iris"}, TOKEN)[0] == 200


def test_artifacts_outside_the_allowed_prefixes_are_refused(node: RunningNode, tmp_path: Path) -> None:
    assert _post(node, "/v1/projects/p/models", {"name": "iris"}, TOKEN)[0] == 200
    body = {"name": "v1", "deploymentUri": f"file://{tmp_path.as_posix()}/elsewhere",
            "packageUris": ["gs://other/x.tar.gz"], "predictionClass": "predictor.MyPredictor"}
    status, text = _post(node, "/v1/projects/p/models/iris/versions", body, TOKEN)
    assert status == 403 and "is not under an allowed prefix" in text


def test_management_is_off_without_a_token(tmp_path: Path) -> None:
    with running_node(registry=str(tmp_path / "registry"), wait_ready=False) as plain:
        status, text = _post(plain, "/v1/projects/p/models", {"name": "iris"}, TOKEN)
    assert status == 403 and "--admin-token-file" in text


def test_batch_prediction_jobs_with_the_ml_client(node: RunningNode, staged: dict[str, str], ml_client: MlClient,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    registry = node.app.manager.registry.uri
    sample = Path(staged["origin"].removeprefix("file://")).parent.parent  # the bucket folder
    assert main(["deploy", "--model", "iris", "--version", "v1", "--registry", registry, "--origin", staged["origin"],
                 "--package-uris", staged["package"], "--prediction-class", "predictor.MyPredictor"]) == 0
    capsys.readouterr()
    lines = "".join(f"[{5.0 + i / 10}, 3.5, 1.4, 0.2]\n" for i in range(25)) + "{broken\n"
    (sample / "data").mkdir(exist_ok=True)
    (sample / "data" / "rows.jsonl").write_text(lines)
    ml = ml_client(node)
    body: dict[str, Any] = {"jobId": "score_rows", "predictionInput": {
        "dataFormat": "JSON", "inputPaths": [f"{staged['bucket']}/data/rows.jsonl"],
        "outputPath": f"{staged['bucket']}/scored", "modelName": "projects/p/models/iris"}}
    created = ml.projects().jobs().create(parent="projects/p", body=body).execute()
    assert created["jobId"] == "score_rows" and created["state"] in ("QUEUED", "RUNNING")
    deadline = time.monotonic() + 120
    job = created
    while job["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
        job = ml.projects().jobs().get(name="projects/p/jobs/score_rows").execute()
    assert job["state"] == "SUCCEEDED", job
    assert job["predictionOutput"]["predictionCount"] == 25 and job["predictionOutput"]["errorCount"] == 1
    assert (sample / "scored" / "results.csv").is_file()
    assert "rows.jsonl:26" in (sample / "scored" / "errors.csv").read_text()
    listed = ml.projects().jobs().list(parent="projects/p").execute()["jobs"]
    assert [j["jobId"] for j in listed] == ["score_rows"]
    bad = {**body, "jobId": "elsewhere", "predictionInput": {**body["predictionInput"], "outputPath": "gs://x/y"}}
    status, text = _post(node, "/v1/projects/p/jobs", bad, TOKEN)
    assert status == 403 and "outputPath 'gs://x/y' is not under an allowed prefix" in text


BEHAVIOURS = Path(__file__).resolve().parent / "projects" / "behaviours"


def _finished(ml: Any, job: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while True:
        state: dict[str, Any] = ml.projects().jobs().get(name=f"projects/p/jobs/{job}").execute()
        if state["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.2)


def test_a_node_job_outlives_records_that_kill_its_workers_and_refuses_changed_inputs(
        node: RunningNode, staged: dict[str, str], ml_client: MlClient, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A record that kills its worker becomes an error line and the job ends (never RUNNING for ever);
    the same job output with an input rewritten since is refused, naming the change."""
    assert main(["package", str(BEHAVIOURS), "--out", str(tmp_path / "dist"), "-q"]) == 0
    sdist = next((tmp_path / "dist").glob("*.tar.gz"))
    bucket = open_store(staged["bucket"])
    bucket.upload_file(BEHAVIOURS / "model" / "config.json", "models/crashy/config.json")
    bucket.upload_file(sdist, f"staging/{sdist.name}")
    assert main(["deploy", "--model", "crashy", "--version", "v1", "--registry", node.app.manager.registry.uri,
                 "--origin", f"{staged['bucket']}/models/crashy", "--package-uris",
                 f"{staged['bucket']}/staging/{sdist.name}", "--prediction-class", "crashes.Crashes"]) == 0
    capsys.readouterr()
    lines = ['"ok"'] * 12
    lines[5] = '"exit"'
    bucket.write("crashdata/rows.jsonl", ("\n".join(lines) + "\n").encode())
    ml = ml_client(node)
    job_input = {"dataFormat": "JSON", "inputPaths": [f"{staged['bucket']}/crashdata/rows.jsonl"],
                 "outputPath": f"{staged['bucket']}/crash-out", "modelName": "projects/p/models/crashy",
                 "batchSize": 4}
    ml.projects().jobs().create(parent="projects/p", body={"jobId": "crashy", "predictionInput": job_input}).execute()
    job = _finished(ml, "crashy")
    assert job["state"] == "SUCCEEDED", job
    assert (job["predictionOutput"]["predictionCount"], job["predictionOutput"]["errorCount"]) == (11, 1)
    errors = [json.loads(line) for info in bucket.list("crash-out/errors/")
              for line in bucket.read(info.key).data.splitlines()]
    assert [(e["input"].rsplit("/", 1)[1], e["errorType"]) for e in errors] == [("rows.jsonl:6", "WorkerExited")]

    bucket.write("crashdata/rows.jsonl", ("\n".join(lines) + '\n"ok"\n').encode())
    ml.projects().jobs().create(parent="projects/p", body={"jobId": "crashy_again", "predictionInput": job_input}
                                ).execute()
    again = _finished(ml, "crashy_again")
    assert again["state"] == "FAILED" and "changed (size 62 -> 67)" in again["errorMessage"], again
