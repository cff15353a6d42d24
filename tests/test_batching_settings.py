"""Where batching is turned on: the manifest, `cprsdk deploy`, `versions.create`, `cprsdk serve`; and its latency."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main
from cprsdk.errors import ManifestError
from cprsdk.registry.manifest import Manifest
from cprsdk.registry.registry import Registry
from cprsdk.testing import running_node
from helpers import copy_project, http

TOKEN = "a-batching-test-token-long-enough"


def _manifest(**fields: Any) -> Manifest:
    return Manifest.from_json({"model": "m", "name": "v1", "predictionClass": "p.P", **fields}, source="of m/v1")


def test_the_manifest_records_batching_and_reads_it_back() -> None:
    manifest = _manifest(maxBatchSize=64, maxBatchWaitMs=2)
    assert (manifest.max_batch_size, manifest.max_batch_wait_ms) == (64, 2.0)
    again = Manifest.from_json(manifest.to_json(), source="again")
    assert again == manifest and again.digest == manifest.digest
    assert "maxBatchSize" not in _manifest().to_json()  # off unless asked: an older manifest reads as before
    assert _manifest().max_batch_size is None


@pytest.mark.parametrize("fields,named", [
    ({"maxBatchSize": 0}, "maxBatchSize is 0;"),
    ({"maxBatchSize": 2.5}, "maxBatchSize is 2.5;"),
    ({"maxBatchSize": True}, "maxBatchSize is true;"),
    ({"maxBatchWaitMs": -1}, "maxBatchWaitMs is -1;"),
    ({"maxBatchWaitMs": "2"}, 'maxBatchWaitMs is "2";'),
])
def test_a_manifest_with_bad_batching_names_the_field(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ManifestError, match=named):
        _manifest(**fields)


def test_deploy_records_the_batching_flags(trained_sample: Path, memory_uri: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", str(trained_sample), "--model", "iris", "--version", "v1", "--registry", memory_uri,
                 "--max-batch-size", "16", "--max-batch-wait-ms", "2.5", "--format", "json"]) == 0
    manifest = json.loads(capsys.readouterr().out)["manifest"]
    assert (manifest["maxBatchSize"], manifest["maxBatchWaitMs"]) == (16, 2.5)


def test_a_whole_number_written_as_a_float_is_that_number() -> None:
    assert _manifest(maxBatchSize=8.0).max_batch_size == 8


def test_batching_comes_from_the_project_file_and_the_environment_too(
        trained_sample: Path, memory_uri: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sample = shutil.copytree(trained_sample, tmp_path / "sample")
    with (sample / "cprsdk.toml").open("a") as file:
        file.write("\nmax_batch_size = 16\n")
    monkeypatch.setenv("CPRSDK_MAX_BATCH_WAIT_MS", "4")
    assert main(["deploy", str(sample), "--model", "iris", "--version", "v1", "--registry", memory_uri,
                 "--format", "json"]) == 0
    manifest = json.loads(capsys.readouterr().out)["manifest"]
    assert (manifest["maxBatchSize"], manifest["maxBatchWaitMs"]) == (16, 4.0)
    (sample / "cprsdk.toml").write_text((sample / "cprsdk.toml").read_text().replace("= 16", "= 0"))
    assert main(["deploy", str(sample), "--model", "iris", "--version", "v2", "--registry", memory_uri]) != 0
    assert "max_batch_size in cprsdk.toml is 0;" in capsys.readouterr().err


def test_deploy_refuses_a_batch_size_of_zero_before_anything_is_uploaded(
        trained_sample: Path, memory_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", str(trained_sample), "--model", "iris", "--version", "v1", "--registry", memory_uri,
                 "--max-batch-size", "0"]) != 0
    assert "--max-batch-size is 0" in capsys.readouterr().err
    assert not Registry(memory_uri).version_exists("iris", "v1")


def test_serve_refuses_a_negative_wait(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--registry", str(tmp_path / "registry"), "--max-batch-wait-ms", "-5"]) != 0
    assert "--max-batch-wait-ms must not be negative, got -5.0." in capsys.readouterr().err


def test_versions_create_refuses_bad_batching_fields_with_a_400_naming_them(tmp_path: Path) -> None:
    bucket = f"file://{tmp_path.as_posix()}/bucket"
    with running_node(registry=str(tmp_path / "registry"), wait_ready=False, admin_token=TOKEN,
                      allowed_prefixes=(bucket,)) as node:
        body = {"name": "v1", "deploymentUri": f"{bucket}/model", "packageUris": [f"{bucket}/p-0.1.tar.gz"],
                "predictionClass": "p.P", "maxBatchSize": "8"}
        answer = http(node.url, "POST", "/v1/projects/p/models/m/versions", json.dumps(body).encode(),
                      {"Authorization": f"Bearer {TOKEN}"})
    assert answer.status == 400
    assert 'maxBatchSize is "8"' in answer.json()["error"]["message"]


def test_an_idle_worker_never_waits_and_metrics_show_the_batches(tmp_path: Path) -> None:
    project = copy_project("batching", tmp_path / "batching")
    with running_node(model_dir=project / "model", packages=[project], prediction_class="tagged.Tagged",
                      max_batch_size=16, max_batch_wait_ms=2000) as node:
        path = "/v1/projects/p/models/default/versions/v1:predict"
        timings = []
        for n in range(5):
            start = time.perf_counter()
            answer = http(node.url, "POST", path, json.dumps({"instances": [n, n + 1], "scale": 2}).encode())
            timings.append(time.perf_counter() - start)
            assert answer.json() == {"predictions": [2.0 * n, 2.0 * (n + 1)]}
        metrics = http(node.url, "GET", "/metrics").data.decode()
    assert max(timings) < 1.0, timings  # the 2 s wait applies only while every worker is busy
    assert 'cprsdk_batch_requests_count{model="default",version="v1"} 5' in metrics
    assert 'cprsdk_batch_instances_sum{model="default",version="v1"} 10' in metrics
    assert 'cprsdk_batch_queue_wait_seconds_count{model="default",version="v1"} 5' in metrics


def test_raw_bodies_and_raw_body_forms_never_wait_in_the_batching_queue(tmp_path: Path) -> None:
    project = copy_project("batching", tmp_path / "batching")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    resource = "/v1/projects/p/models/default/versions/v1"
    with running_node(model_dir=project / "model", packages=[project], prediction_class="tagged.Tagged",
                      max_batch_size=16, max_batch_wait_ms=50, admin_token=TOKEN) as node:
        shown = http(node.url, "GET", resource, headers=auth).json()
        for n in range(4):  # :rawPredict takes the body as it is: never merged, so never queued
            answer = http(node.url, "POST", "/v1/projects/p/models/default/versions/v1:rawPredict",
                          json.dumps({"instances": [n]}).encode())
            assert answer.json() == {"predictions": [1.0 * n]}
        assert http(node.url, "POST", "/v1/projects/p/models/default/versions/v1:predict",
                    b'{"instances": [3]}').json() == {"predictions": [3.0]}
        metrics = http(node.url, "GET", "/metrics").data.decode()
    assert 'cprsdk_batch_queue_wait_seconds_count{model="default",version="v1"} 1' in metrics
    assert (shown["maxBatchSize"], shown["maxBatchWaitMs"]) == (16, 50)
    styles = copy_project("styles", tmp_path / "styles")
    with running_node(model_dir=styles / "model", packages=[styles], prediction_class="sm_full",
                      max_batch_size=16, max_batch_wait_ms=50, admin_token=TOKEN) as node:
        shown = http(node.url, "GET", resource, headers=auth).json()
        answer = http(node.url, "POST", "/invocations", b"2,0,0\n", {"Content-Type": "text/csv",
                                                                     "Accept": "application/json"})
        assert answer.status == 200
        metrics = http(node.url, "GET", "/metrics").data.decode()
    assert "cprsdk_batch_" not in metrics  # a SageMaker module's version does not batch at all
    assert shown["maxBatchSize"] == 1  # and says so


def _post_all(url: str, bodies: list[dict[str, Any]]) -> list[tuple[int, Any, float]]:
    """Each body POSTed from its own thread, started 0.3 s after the first; (status, answer, seconds) in order."""
    results: list[tuple[int, Any, float]] = [(0, None, 0.0)] * len(bodies)

    def post(index: int) -> None:
        start = time.monotonic()
        answer = http(url, "POST", "/v1/projects/p/models/default/versions/v1:predict",
                      json.dumps(bodies[index]).encode())
        results[index] = (answer.status, answer.json(), time.monotonic() - start)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    threads[0].start()
    time.sleep(0.3)
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_requests_queued_while_the_worker_is_busy_go_together_when_it_frees(tmp_path: Path) -> None:
    project = copy_project("batching", tmp_path / "batching")
    (project / "model" / "config.json").write_text(json.dumps({"delay": 1.0}))
    with running_node(model_dir=project / "model", packages=[project], prediction_class="tagged.Tagged",
                      max_batch_size=64, max_batch_wait_ms=20_000) as node:
        results = _post_all(node.url, [{"instances": [n]} for n in range(6)])
        metrics = http(node.url, "GET", "/metrics").data.decode()
    assert [(s, a) for s, a, _ in results] == [(200, {"predictions": [float(n)]}) for n in range(6)]
    assert max(t for _, _, t in results) < 10  # sent when the worker freed, long before the 20 s wait
    assert 'cprsdk_batch_requests_count{model="default",version="v1"} 2' in metrics  # one call, then one for 5
    assert 'cprsdk_batch_requests_bucket{model="default",version="v1",le="4"} 1' in metrics
    assert 'cprsdk_batch_instances_sum{model="default",version="v1"} 6' in metrics


def test_a_request_that_times_out_in_the_queue_is_a_504_and_the_node_recovers(tmp_path: Path) -> None:
    project = copy_project("behaviours", tmp_path / "behaviours")
    with running_node(model_dir=project / "model", packages=[project], prediction_class="hangs.Hangs",
                      max_batch_size=8, max_batch_wait_ms=20_000, predict_timeout=1.5) as node:
        results = _post_all(node.url, [{"instances": [30]}, {"instances": [0]}])
        (first, hung, _), (second, queued, waited) = results
        assert first == 504 and "longer than the 1.5 s timeout" in hung["error"]["message"]
        # the queued request waits for the worker that replaces the hung one, within its own timeout:
        # answered by it when it starts in time, else a 504 of its own, never a 500 or a 503
        if second == 200:
            assert queued == {"predictions": ["woke"]} and waited < 1.5 + 1.0
        else:
            assert second == 504 and "longer than the 1.5 s timeout" in queued["error"]["message"]
        deadline = time.monotonic() + 60
        while (answer := http(node.url, "POST", "/v1/projects/p/models/default/versions/v1:predict",
                              b'{"instances": [0]}')).status != 200:
            assert time.monotonic() < deadline, answer.data
            time.sleep(0.1)
        assert answer.json() == {"predictions": ["woke"]}
