"""Dynamic batching: merge and split (property tests), byte-identical answers, fault isolation, and a load test."""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cprsdk.node.batching import Pending, kwargs_key, plan, split
from cprsdk.node.protocol import (
    LENGTH,
    MODE_AIP,
    MODE_RAW,
    MODE_VERTEX,
    RESPONSE_HEAD,
    raw_body,
    read_report,
    request_frame,
)
from cprsdk.node.worker import serve_frames
from cprsdk.runtime.adapters import Adapter, load_adapter
from cprsdk.testing import free_port
from helpers import copy_project, cprsdk_serve, http

# ---------------------------------------------------------------- merge and split, as properties

_KEYS = st.sampled_from(["{}", '{"k":1}', '{"k":2}', '{"other":true}'])
_REQUESTS = st.lists(st.tuples(st.integers(1, 12), _KEYS, st.sampled_from([MODE_AIP, MODE_VERTEX])), max_size=40)


def _pending(specs: list[tuple[int, str, int]]) -> list[Pending]:
    return [Pending(request_id=n + 1, mode=mode, instances=[f"{n}-{i}" for i in range(count)], key=key, body={})
            for n, (count, key, mode) in enumerate(specs)]


@given(_REQUESTS, st.integers(1, 16))
def test_every_request_is_in_exactly_one_group_in_arrival_order(specs: list[tuple[int, str, int]],
                                                                 max_size: int) -> None:
    requests = _pending(specs)
    groups = plan(requests, max_size=max_size)
    assert sorted(r.request_id for g in groups for r in g) == [r.request_id for r in requests]
    for group in groups:
        ids = [r.request_id for r in group]
        assert ids == sorted(ids)


@given(_REQUESTS, st.integers(1, 16))
def test_a_group_never_mixes_kwargs_or_modes_nor_exceeds_the_size(specs: list[tuple[int, str, int]],
                                                                  max_size: int) -> None:
    for group in plan(_pending(specs), max_size=max_size):
        assert len({(r.mode, r.key) for r in group}) == 1
        total = sum(r.count for r in group)
        assert total <= max_size or len(group) == 1  # a request over the maximum goes alone, whole
        if any(r.count >= max_size for r in group):
            assert len(group) == 1


@given(_REQUESTS)
def test_requests_that_fit_share_a_call(specs: list[tuple[int, str, int]]) -> None:
    requests = _pending(specs)
    groups = plan(requests, max_size=1000)
    assert len(groups) == len({(r.mode, r.key) for r in requests})


@given(st.lists(st.integers(1, 9), min_size=1, max_size=30))
def test_split_gives_each_request_its_own_outputs_in_order(counts: list[int]) -> None:
    outputs = list(range(sum(counts)))
    parts = split(outputs, counts)
    assert parts is not None
    assert [len(p) for p in parts] == counts
    assert [o for p in parts for o in p] == outputs


@given(st.lists(st.integers(1, 9), min_size=1, max_size=30), st.integers(-3, 3).filter(lambda d: d != 0))
def test_split_refuses_outputs_of_another_length(counts: list[int], delta: int) -> None:
    outputs = list(range(max(0, sum(counts) + delta)))
    assert split(outputs, counts) is None
    assert split({"a": 1}, [1]) is None and split("ab", [2]) is None


def test_kwargs_are_equal_only_when_predict_would_see_the_same_values() -> None:
    assert kwargs_key({"k": 1}) != kwargs_key({"k": 1.0}) != kwargs_key({"k": True})
    assert kwargs_key({"a": 1, "b": 2}) != kwargs_key({"b": 2, "a": 1})  # field order reaches **kwargs
    assert kwargs_key({"k": [1, 2]}) == kwargs_key({"k": [1, 2]})


# ---------------------------------------------------------------- the worker's frame loop, in this process


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project("batching", tmp_path_factory.mktemp("batching") / "batching")


def _adapter(project: Path, name: str) -> Adapter:
    return load_adapter(name, project / "model", paths=[project])


Frame = tuple[int, int, bytes]


def _serve(adapter: Adapter, frames: list[Frame], tmp_path: Path, *,
           max_batch_size: int) -> tuple[dict[int, tuple[int, bytes]], list[tuple[int, int]]]:
    """The worker's answers to ``frames``, all waiting on its input at once, and its batch reports."""
    source, sink = tmp_path / "frames.in", tmp_path / "frames.out"
    source.write_bytes(b"".join(request_frame(i, mode, body) for i, mode, body in frames))
    with source.open("rb") as inp, sink.open("wb") as out:
        serve_frames(adapter, "v1", inp.fileno(), out.fileno(), max_batch_size=max_batch_size)
    data, answers, reports, offset = sink.read_bytes(), {}, [], 0
    while offset < len(data):
        (size,) = LENGTH.unpack_from(data, offset)
        payload = data[offset + LENGTH.size:offset + LENGTH.size + size]
        request_id, status = RESPONSE_HEAD.unpack_from(payload)
        if request_id == 0:
            reports += read_report(payload[RESPONSE_HEAD.size:])
        else:
            answers[request_id] = (status, payload[RESPONSE_HEAD.size:])
        offset += LENGTH.size + size
    return answers, reports


def _mixed_frames(seed: int, count: int, instance: Callable[[random.Random, int], Any]) -> list[Frame]:
    rng = random.Random(seed)
    frames = []
    for n in range(1, count + 1):
        mode = rng.choice([MODE_AIP, MODE_VERTEX])
        kwargs: dict[str, Any] = rng.choice([{}, {"scale": 2}, {"scale": 3, "tag": "a"}])
        instances = [instance(rng, n) for _ in range(rng.randint(1, 8))]
        body = {"instances": instances, "parameters": kwargs} if mode == MODE_VERTEX else {"instances": instances,
                                                                                             **kwargs}
        frames.append((n, mode, json.dumps(body).encode()))
    return frames


_FORMS = {
    "cpr, numbers (NumPy outputs)": ("tagged.Tagged", lambda rng, n: rng.randint(-50, 50)),
    "cpr, objects": ("tagged.Tagged", lambda rng, n: {"req": n, "x": rng.random()}),
    "vertex class": ("vertex_tagged.VertexTagged", lambda rng, n: [n, rng.randint(0, 9)]),
}


@pytest.mark.parametrize("form", sorted(_FORMS))
def test_batched_answers_are_byte_identical_to_one_call_each(project: Path, tmp_path: Path, form: str) -> None:
    name, instance = _FORMS[form]
    adapter = _adapter(project, name)
    frames = _mixed_frames(7, 60, instance)
    alone, no_reports = _serve(adapter, frames, tmp_path, max_batch_size=1)
    merged, reports = _serve(adapter, frames, tmp_path, max_batch_size=16)
    assert merged == alone and all(status == 200 for status, _ in alone.values())
    assert no_reports == []
    assert sum(r for _, r in reports) == len(frames)  # every request reached exactly one predict call
    assert max(r for _, r in reports) > 1 and max(n for n, _ in reports) <= 16  # calls merged, none over the size


def test_framework_versions_merge_with_identical_answers(tmp_path: Path) -> None:
    import joblib  # type: ignore[import-untyped]
    import numpy as np
    from sklearn.tree import DecisionTreeRegressor

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    rng = np.random.default_rng(3)
    features = rng.normal(size=(40, 3))
    # A tree's outputs are exact; a linear model's BLAS product may round the last bit differently for a
    # batch than for one row (docs/node.md says so), which would say nothing about the node's merging.
    joblib.dump(DecisionTreeRegressor(max_depth=4).fit(features, features @ [1.0, -2.0, 0.5]),
                model_dir / "model.joblib")
    adapter = load_adapter("cprsdk-framework:SCIKIT_LEARN", model_dir)
    frames = _mixed_frames(11, 40, lambda r, n: [r.random(), r.random(), float(n)])
    alone, _ = _serve(adapter, frames, tmp_path, max_batch_size=1)
    merged, reports = _serve(adapter, frames, tmp_path, max_batch_size=64)
    assert merged == alone and max(r for _, r in reports) > 1


def test_a_vertex_response_with_more_than_predictions_is_never_split(project: Path, tmp_path: Path) -> None:
    adapter = _adapter(project, "vertex_counted.VertexCounted")
    frames = [(n, MODE_VERTEX, json.dumps({"instances": list(range(n))}).encode()) for n in range(1, 6)]
    merged, _ = _serve(adapter, frames, tmp_path, max_batch_size=64)
    for n in range(1, 6):
        assert json.loads(merged[n][1]) == {"predictions": list(range(n)), "count": n, "deployedModelId": "v1"}


def test_raw_bodies_are_never_merged(project: Path, tmp_path: Path) -> None:
    adapter = _adapter(project, "tagged.Tagged")
    meta = json.dumps({"contentType": "application/json", "accept": ""}).encode()
    frames = [(n, MODE_RAW, raw_body(meta, json.dumps({"instances": [n]}).encode())) for n in range(1, 5)]
    merged, reports = _serve(adapter, frames, tmp_path, max_batch_size=64)
    assert merged == _serve(adapter, frames, tmp_path, max_batch_size=1)[0]
    assert reports == []


@pytest.mark.parametrize("marked,status,message", [
    ("short", 500, "predict returned 2 outputs for 3 instances"),
    ("raise", 422, "instance 'raise' is refused"),
])
def test_only_the_request_at_fault_fails(project: Path, tmp_path: Path, marked: str, status: int,
                                         message: str) -> None:
    adapter = _adapter(project, "faulty.Faulty")
    bodies: list[dict[str, list[Any]]] = [{"instances": [n, n + 1, n + 2]} for n in range(0, 30, 3)]
    bodies[4] = {"instances": [7, marked, 8]}
    frames = [(n + 1, MODE_AIP, json.dumps(b).encode()) for n, b in enumerate(bodies)]
    merged, _ = _serve(adapter, frames, tmp_path, max_batch_size=64)
    for n, body in enumerate(bodies, start=1):
        code, answer = merged[n]
        if n == 5:
            assert code == status and message in json.loads(answer)["error"]["message"]
        else:
            assert (code, json.loads(answer)) == (200, {"predictions": [i * 2 for i in body["instances"]]})


@pytest.mark.parametrize("parameters", [None, [], 0, False, "", [1]])
def test_a_vertex_body_is_refused_alike_alone_and_among_others(project: Path, tmp_path: Path,
                                                               parameters: Any) -> None:
    adapter = _adapter(project, "tagged.Tagged")
    bad = json.dumps({"instances": [1], "parameters": parameters}).encode()
    good = json.dumps({"instances": [2], "parameters": {}}).encode()
    alone, _ = _serve(adapter, [(1, MODE_VERTEX, bad)], tmp_path, max_batch_size=64)
    among, _ = _serve(adapter, [(1, MODE_VERTEX, good), (2, MODE_VERTEX, bad), (3, MODE_VERTEX, good)], tmp_path,
                      max_batch_size=64)
    unbatched, _ = _serve(adapter, [(1, MODE_VERTEX, bad)], tmp_path, max_batch_size=1)
    assert alone[1] == among[2] == unbatched[1]
    assert alone[1][0] == 400 and json.loads(alone[1][1])["error"]["message"].startswith(
        '"parameters" must be an object, got ')
    assert among[1][0] == among[3][0] == 200


# ---------------------------------------------------------------- a real node under load


async def _client(port: int, jobs: list[tuple[int, dict[str, Any]]], answers: dict[int, tuple[int, Any]]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    path = "/v1/projects/p/models/default/versions/v1:predict"
    try:
        for number, body in jobs:
            data = json.dumps(body).encode()
            writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            answers[number] = (int(head.split()[1]), json.loads(await reader.readexactly(length)))
    finally:
        writer.close()


def _load(port: int, requests: list[dict[str, Any]], clients: int) -> dict[int, tuple[int, Any]]:
    answers: dict[int, tuple[int, Any]] = {}
    jobs = list(enumerate(requests))

    async def run() -> None:
        await asyncio.gather(*(_client(port, jobs[c::clients], answers) for c in range(clients)))

    asyncio.run(run())
    return answers


@pytest.fixture
def recorder_node(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    project = copy_project("batching", tmp_path / "project")
    calls = tmp_path / "calls"
    calls.mkdir()
    (project / "model" / "config.json").write_text(json.dumps({"log_dir": str(calls)}))
    port = free_port()
    args = ["--port", str(port), "--model-dir", str(project / "model"), "--package", str(project),
            "--prediction-class", "recorder.Recorder", "--workers", "2", "--max-batch-size", "32",
            "--max-batch-wait-ms", "2", "--predict-timeout", "120"]
    with cprsdk_serve(args, port=port, log=tmp_path / "serve.log", cwd=tmp_path):
        yield port, calls
    shutil.rmtree(project)


def _calls(folder: Path) -> dict[str, dict[str, Any]]:
    records = [json.loads(line) for path in folder.glob("calls-*.jsonl") for line in path.read_text().splitlines()]
    return {r["call"]: r for r in records}


def test_20000_requests_from_64_clients_each_get_their_own_answer(recorder_node: tuple[int, Path]) -> None:
    port, folder = recorder_node
    rng = random.Random(12)
    choices: list[dict[str, Any]] = [{}, {"signature": "a"}, {"signature": "b"}, {"signature": "a", "top": 3},
                                     {"top": 3, "signature": "a"}]
    requests = [{"instances": [f"r{n}-{i}" for i in range(rng.randint(1, 8))], **rng.choice(choices)}
                for n in range(20_000)]
    answers = _load(port, requests, 64)
    assert len(answers) == len(requests)  # no request lost
    calls, shared = _calls(folder), 0
    for number, body in enumerate(requests):
        status, answer = answers[number]
        kwargs = {k: v for k, v in body.items() if k != "instances"}
        assert status == 200, answer
        predictions = answer["predictions"]
        call = predictions[0]["call"]
        assert predictions == [{"instance": i, "kwargs": kwargs, "call": call} for i in body["instances"]]
        record = calls[call]  # the call that answered it, as the predictor recorded it
        assert record["kwargs"] == kwargs and list(record["kwargs"]) == list(kwargs)
        start = record["instances"].index(body["instances"][0])
        assert record["instances"][start:start + len(body["instances"])] == body["instances"]
        shared += len(record["instances"]) > len(body["instances"])
    for record in calls.values():  # no call mixed kwargs: every instance of a call came with those kwargs
        owners = {int(i.split("-")[0][1:]) for i in record["instances"]}
        assert all({k: v for k, v in requests[o].items() if k != "instances"} == record["kwargs"] for o in owners)
        assert len(record["instances"]) <= 32 or len(owners) == 1
    assert shared > 1000, f"only {shared} requests shared a predict call"
    assert sum(len(r["instances"]) for r in calls.values()) == sum(len(b["instances"]) for b in requests)
    metrics = http(f"http://127.0.0.1:{port}", "GET", "/metrics").data.decode()
    counted = re.search(r'cprsdk_batch_requests_sum\{model="default",version="v1"\} (\S+)', metrics)
    assert counted is not None and float(counted.group(1)) == len(requests)
    calls_counted = re.search(r'cprsdk_batch_instances_count\{model="default",version="v1"\} (\d+)', metrics)
    assert calls_counted is not None and int(calls_counted.group(1)) == len(calls)
    assert 'cprsdk_batch_queue_wait_seconds_count{model="default",version="v1"} 20000' in metrics


def test_under_load_only_the_marked_requests_fail(tmp_path: Path) -> None:
    project = copy_project("batching", tmp_path / "project")
    port = free_port()
    args = ["--port", str(port), "--model-dir", str(project / "model"), "--package", str(project),
            "--prediction-class", "faulty.Faulty", "--max-batch-size", "16", "--max-batch-wait-ms", "1"]
    rng = random.Random(5)
    requests: list[dict[str, Any]] = []
    for n in range(3000):
        instances: list[Any] = [n * 10 + i for i in range(rng.randint(1, 4))]
        if n % 37 == 0:
            instances.insert(rng.randrange(len(instances) + 1), rng.choice(["short", "raise"]))
        requests.append({"instances": instances})
    with cprsdk_serve(args, port=port, log=tmp_path / "serve.log", cwd=tmp_path):
        answers = _load(port, requests, 64)
        metrics = http(f"http://127.0.0.1:{port}", "GET", "/metrics").data.decode()
    for number, body in enumerate(requests):
        status, answer = answers[number]
        if "short" in body["instances"]:
            count = len(body["instances"])
            assert status == 500, answer
            assert f"returned {count - 1} output{'s' * (count > 2)} for {count} instances; batching needs a list" in \
                answer["error"]["message"], answer
        elif "raise" in body["instances"]:
            assert (status, answer["error"]["message"]) == (422, "instance 'raise' is refused")
        else:
            assert (status, answer) == (200, {"predictions": [i * 2 for i in body["instances"]]})
    merged = re.search(r'cprsdk_batch_requests_bucket\{model="default",version="v1",le="1"\} (\d+)', metrics)
    total = re.search(r'cprsdk_batch_requests_count\{model="default",version="v1"\} (\d+)', metrics)
    assert merged is not None and total is not None and int(merged.group(1)) < int(total.group(1))  # calls merged


def test_a_sagemaker_module_is_never_merged_and_the_log_says_the_setting_has_no_effect(
        styles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    adapter = load_adapter("sm_full", styles / "model", paths=[styles])
    frames = [(n, MODE_AIP, json.dumps({"instances": [[1.0, 2.0]]}).encode()) for n in range(1, 5)]
    merged, reports = _serve(adapter, frames, tmp_path, max_batch_size=64)
    assert merged == _serve(adapter, frames, tmp_path, max_batch_size=1)[0] and reports == []
    assert "max batch size 64 has no effect: a sagemaker predictor" in capsys.readouterr().err
