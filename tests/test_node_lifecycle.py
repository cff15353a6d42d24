"""Worker lifecycle on a real node: requests wait through a replacement, a timeout kill is not
blamed on the next request, failed starts and crash loops back off and say so, and the log stays short.

The predictor is tests/projects/lifecycle (``flaky.Flaky``): files in its model directory switch
its faults on and off while the node runs.
"""

from __future__ import annotations

import itertools
import json
import logging
import resource
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main
from cprsdk.errors import ConfigError
from cprsdk.node.lifecycle import CrashWindow, LifecyclePolicy, RestartBackoff
from cprsdk.node.logthrottle import LogThrottle
from cprsdk.testing import RunningNode, free_port, running_node
from helpers import Answer, copy_project, cprsdk_serve, http, wait_until

PREDICT = "/v1/projects/p/models/default/versions/v1:predict"
TOKEN = "a-lifecycle-test-token-long-enough"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = copy_project("lifecycle", tmp_path / "lifecycle")
    (tmp_path / "model").mkdir()
    return root


def _node(project: Path, **options: Any) -> AbstractContextManager[RunningNode]:
    return running_node(model_dir=project.parent / "model", packages=[project], prediction_class="flaky.Flaky",
                        admin_token=TOKEN, **options)


def _predict(node: RunningNode | str, *instances: Any) -> Answer:
    url = node if isinstance(node, str) else node.url
    return http(url, "POST", PREDICT, json.dumps({"instances": list(instances)}).encode())


def _versions(node: RunningNode | str) -> dict[str, str]:
    url = node if isinstance(node, str) else node.url
    states: dict[str, str] = http(url, "GET", "/readyz").json()["versions"]
    return states


def _resource(node: RunningNode) -> dict[str, Any]:
    found: dict[str, Any] = http(node.url, "GET", "/v1/projects/p/models/default/versions/v1", headers=AUTH).json()
    return found


def _starts(project: Path) -> int:
    return len((project.parent / "model" / "starts").read_text().splitlines())


def _in_threads(count: int, call: Any) -> list[Answer]:
    answers: list[Answer] = []
    lock = threading.Lock()

    def one() -> None:
        answer = call()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_requests_arriving_during_a_replacement_wait_for_it(project: Path) -> None:
    with _node(project) as node:
        old = _predict(node, "x").json()["predictions"]
        (project.parent / "model" / "slow-start").write_text("1.5")  # the replacement takes 1.5 s to load
        crashed = _predict(node, "exit")
        assert crashed.status == 500 and "exited (exit code 7)" in crashed.json()["error"]["message"]
        assert _versions(node) == {"default/v1": "RESTARTING"}
        assert http(node.url, "GET", "/readyz").status == 503
        assert _resource(node)["state"] == "READY" and _resource(node)["servingState"] == "RESTARTING"
        answers = _in_threads(20, lambda: _predict(node, "y"))
    assert [a.status for a in answers] == [200] * 20, [a.json() for a in answers if a.status != 200]
    assert {a.json()["predictions"][0] for a in answers} != {old[0]}  # the new worker answered them all


def test_a_crash_among_20_arriving_requests_fails_only_those_sent_to_the_crashed_worker(project: Path) -> None:
    with _node(project) as node:
        _predict(node, "x")
        (project.parent / "model" / "slow-start").write_text("0.5")
        start, order = time.monotonic(), itertools.count()
        crash_answered: list[float] = []
        timed: list[tuple[float, float, Answer]] = []  # (sent, latency, answer)

        def one() -> None:
            time.sleep(0.1 * next(order))  # one request every 0.1 s for 2 s
            sent = time.monotonic()
            answer = _predict(node, 0.02)
            timed.append((sent - start, time.monotonic() - sent, answer))

        def crash() -> None:
            time.sleep(0.45)
            _predict(node, "exit")
            crash_answered.append(time.monotonic() - start)

        threads = [threading.Thread(target=crash)] + [threading.Thread(target=one) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert all(a.status in (200, 500) for _, _, a in timed), [a.json() for _, _, a in timed]
    failed = [a.json()["error"]["message"] for _, _, a in timed if a.status == 500]
    assert all("exited (exit code 7) while handling this request" in m for m in failed)
    later = [(latency, a) for sent, latency, a in timed if sent > crash_answered[0]]
    assert len(later) >= 10 and all(a.status == 200 for _, a in later)
    assert any(latency > 0.3 for latency, _ in later)  # some arrived during the replacement and waited for it


def test_with_two_workers_a_crash_never_makes_requests_wait(project: Path) -> None:
    with _node(project, workers=2) as node:
        (project.parent / "model" / "slow-start").write_text("3")
        assert _predict(node, "exit").status == 500
        start = time.monotonic()
        answers = [_predict(node, "x") for _ in range(5)]
        elapsed = time.monotonic() - start
        states, resource = _versions(node), _resource(node)
    assert [a.status for a in answers] == [200] * 5 and elapsed < 2  # the other worker answered at once
    assert len({a.json()["predictions"][0] for a in answers}) == 1
    assert states == {"default/v1": "READY"} and resource["servingState"] == "SERVING"
    assert "servingDetail" not in resource


def test_after_a_timeout_kill_the_next_request_gets_200(project: Path) -> None:
    with _node(project, predict_timeout=1.0) as node:
        first = _predict(node, "x").json()["predictions"][0]
        queued: list[Answer] = []

        def send_behind() -> None:  # written to the worker while it hangs
            time.sleep(0.3)
            queued.append(_predict(node, "z"))

        behind = threading.Thread(target=send_behind)
        behind.start()
        slow = _predict(node, 30)
        behind.join()
        after = _predict(node, "x")  # sent right after the 504, while the killed worker is being replaced
    assert slow.status == 504 and "longer than the 1 s timeout" in slow.json()["error"]["message"]
    assert queued[0].status == 500
    assert "another request on it took longer than the 1 s timeout" in queued[0].json()["error"]["message"]
    assert after.status == 200 and after.json()["predictions"][0] != first


def test_a_wait_for_a_replacement_ends_at_the_request_timeout(project: Path) -> None:
    with _node(project, predict_timeout=1.0) as node:
        (project.parent / "model" / "slow-start").write_text("4")
        _predict(node, "exit")
        start = time.monotonic()
        answer = _predict(node, "x")
        elapsed = time.monotonic() - start
    assert answer.status == 504 and "within the 1 s timeout" in answer.json()["error"]["message"]
    assert 0.8 < elapsed < 3


def test_time_spent_waiting_for_a_worker_is_not_held_against_it(project: Path) -> None:
    with _node(project, predict_timeout=2.5) as node:
        (project.parent / "model" / "slow-start").write_text("1")
        _predict(node, "exit")
        late = _predict(node, 2.0)  # waits about 1.5 s for the replacement, then runs 2 s on it: 504 at 2.5 s
        after = _predict(node, "x")  # queued behind it on the same worker, which is not killed
    assert late.status == 504
    assert after.status == 200
    assert _starts(project) == 2  # the first worker and one replacement: nothing was killed for the 504


@pytest.mark.parametrize("batch", [1, 64], ids=["unbatched", "batched"])
def test_time_spent_behind_a_slow_request_is_not_held_against_the_worker(project: Path, batch: int) -> None:
    with _node(project, predict_timeout=2.0, max_batch_size=batch, max_batch_wait_ms=2.0) as node:
        behind: list[Answer] = []

        def send_behind() -> None:  # waits about 1.3 s behind the first, then runs 1.2 s: 504 at 2.2 s
            time.sleep(0.2)
            behind.append(_predict(node, 1.2))

        thread = threading.Thread(target=send_behind)
        thread.start()
        first = _predict(node, 1.5)
        thread.join()
        after = _predict(node, "x")  # sent after that 504, to the same worker, still answering
    assert first.status == 200
    assert behind[0].status == 504 and "longer than the 2 s timeout" in behind[0].json()["error"]["message"]
    assert after.status == 200 and after.json()["predictions"] == first.json()["predictions"]
    assert _starts(project) == 1  # no prediction ran 2 s: the worker was never killed


def test_a_replacement_that_fails_to_load_backs_off_and_says_so(project: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    policy = LifecyclePolicy(backoff_initial=0.2, backoff_max=0.4, log_interval=600)
    model = project.parent / "model"
    with _node(project, lifecycle=policy) as node:
        (model / "fail-load").write_text("")
        _predict(node, "exit")
        wait_until(lambda: _starts(project) >= 5, timeout=30, what="five start attempts")
        wait_until(lambda: _versions(node) == {"default/v1": "BACKOFF"}, timeout=10, what="BACKOFF in /readyz")
        ready = http(node.url, "GET", "/readyz")
        refused = _predict(node, "x")  # in BACKOFF at once; while a start is tried, once it has failed
        more = [_predict(node, "x").status for _ in range(5)]
        resources = [_resource(node)]

        def backing_off() -> bool:
            resources.append(_resource(node))
            return bool(resources[-1]["servingState"] == "BACKOFF")

        wait_until(backing_off, timeout=10, what="BACKOFF in the Version resource")
        resource = resources[-1]
        kserve = http(node.url, "GET", "/v1/models/default").json()
        ping = http(node.url, "GET", "/ping")
        (model / "fail-load").unlink()
        wait_until(lambda: _versions(node) == {"default/v1": "READY"}, timeout=30, what="the version to recover")
        recovered = _predict(node, "x")
    assert ready.status == 503
    assert refused.status == 503 and int(refused.headers["retry-after"]) >= 1
    message = refused.json()["error"]["message"]
    assert "has no running worker: a replacement worker failed to start" in message
    assert "fail-load is set in the model directory" in message
    assert resource["state"] == "READY" and resource["servingState"] == "BACKOFF"
    assert "next attempt in" in resource["servingDetail"]
    assert kserve == {"name": "default", "ready": False}
    assert ping.status == 503 and ping.json()["status"] in ("BACKOFF", "RESTARTING")
    assert recovered.status == 200
    failures = [r for r in caplog.records if "failed to start" in r.getMessage()]
    assert len(failures) == 1  # five or more failed starts, one log line within the interval
    assert more == [503] * 5
    predict_503s = [m for m in (r.getMessage() for r in caplog.records) if '"status": 503' in m and ":predict" in m]
    assert len(predict_503s) == 1  # six 503s, one line


def test_a_crash_loop_backs_off_then_recovers(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    policy = LifecyclePolicy(backoff_initial=2, backoff_max=4, crash_loop_crashes=3, crash_loop_window=60)
    model = project.parent / "model"
    with _node(project, lifecycle=policy) as node:
        (model / "crash-soon").write_text("")  # every new worker dies 0.2 s after loading
        _predict(node, "exit")
        wait_until(lambda: _versions(node) == {"default/v1": "CRASH_LOOP"}, timeout=30, what="CRASH_LOOP")
        refused = _predict(node, "x")  # the pause after the third crash lasts 2 s
        starts = _starts(project)
        (model / "crash-soon").unlink()
        wait_until(lambda: _versions(node) == {"default/v1": "READY"}, timeout=30, what="the version to recover")
        time.sleep(0.5)  # a worker started now stays up
        recovered = _predict(node, "x")
        assert _versions(node) == {"default/v1": "READY"}
    assert refused.status == 503 and int(refused.headers["retry-after"]) >= 1
    assert "worker crashes within 60 s" in refused.json()["error"]["message"]
    assert recovered.status == 200
    assert 3 <= starts <= 6  # backing off, not spinning
    assert any("is crash-looping" in r.getMessage() for r in caplog.records)


def test_the_access_log_has_one_json_line_a_request(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cprsdk.node"), _node(project, access_log=True) as node:
        answers = [_predict(node, "x"), http(node.url, "GET", "/v1/models/none"),
                   http(node.url, "GET", "/readyz", headers={"X-Request-Id": "probe-7"})]
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith('{"requestId"')]
    ours = lines[-3:]  # after running_node's own readiness probes
    assert [(line["method"], line["path"], line["status"]) for line in ours] == [
        ("POST", PREDICT, 200), ("GET", "/v1/models/none", 404), ("GET", "/readyz", 200)]
    assert [line["requestId"] for line in ours] == [a.headers["x-request-id"] for a in answers]
    assert ours[2]["requestId"] == "probe-7" and all(line["ms"] >= 0 for line in ours)
    assert all(line["path"] == "/readyz" for line in lines[:-3])


def test_cprsdk_serve_takes_the_crash_loop_flags_and_logs_each_fault_once(project: Path, tmp_path: Path) -> None:
    model, port, log = project.parent / "model", free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    args = ["--port", str(port), "--model-dir", str(model), "--package", str(project),
            "--prediction-class", "flaky.Flaky", "--crash-loop", "2/60", "--restart-backoff-max", "1"]
    with cprsdk_serve(args, port=port, log=log) as proc:
        (model / "crash-soon").write_text("")
        _predict(url, "exit")
        wait_until(lambda: _starts(project) >= 5, timeout=60, what="five worker starts")
        (model / "crash-soon").unlink()
        wait_until(lambda: _versions(url) == {"default/v1": "READY"}, timeout=30, what="the version to recover")
        assert _predict(url, "x").status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    text = log.read_text()
    assert text.count("is crash-looping (2 worker crashes within 60 s); next start in 1 s") == 1, text
    assert text.count("worker of default/v1 exited") == 1, text  # four crashes or more, one line in 30 s


def test_a_replacement_that_cannot_open_files_backs_off_and_recovers(project: Path, tmp_path: Path) -> None:
    """The issue's case: file descriptors exhausted when the replacement starts (the limit lowered on the node)."""
    model, port, log = project.parent / "model", free_port(), tmp_path / "serve.log"
    args = ["--port", str(port), "--model-dir", str(model), "--package", str(project),
            "--prediction-class", "flaky.Flaky", "--restart-backoff-max", "1"]
    with cprsdk_serve(args, port=port, log=log) as proc:
        conn = HTTPConnection("127.0.0.1", port, timeout=30)  # one keep-alive connection: no new fd is needed

        def call(method: str, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers={"Content-Type": "application/json"})
            answer = conn.getresponse()
            return answer.status, json.loads(answer.read()), {k.lower(): v for k, v in answer.getheaders()}

        assert call("POST", PREDICT, {"instances": ["x"]})[0] == 200
        soft, hard = resource.prlimit(proc.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (3, hard))  # no new file descriptor from now on
        try:
            assert call("POST", PREDICT, {"instances": ["exit"]})[0] == 500
            wait_until(lambda: call("GET", "/readyz")[1]["versions"] == {"default/v1": "BACKOFF"}, timeout=30,
                       interval=0.5, what="BACKOFF")
            refused = call("POST", PREDICT, {"instances": ["x"]})
        finally:
            resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
        wait_until(lambda: call("GET", "/readyz")[0] == 200, timeout=30, interval=0.5, what="the version to recover")
        recovered = call("POST", PREDICT, {"instances": ["x"]})
        conn.close()
    assert refused[0] == 503 and int(refused[2]["retry-after"]) >= 1
    assert "has no running worker: a replacement worker failed to start" in refused[1]["error"]["message"]
    assert recovered[0] == 200
    assert log.read_text().count("failed to start") == 1


def test_a_bad_crash_loop_flag_is_refused() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--crash-loop", "five"])
    assert exited.value.code == 2


# ---------------------------------------------------------------- the parts, on their own


def test_log_throttle_logs_a_key_once_per_interval_with_a_repeat_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttle = LogThrottle(logging.getLogger("cprsdk.test"), interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="cprsdk.test"):
        for second in range(25):
            now[0] = float(second)
            throttle.log(logging.INFO, "k", "start failed: %s", "EMFILE")
            throttle.log(logging.INFO, ("other", 1), "other")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("start failed")]
    assert lines == ["start failed: EMFILE", "start failed: EMFILE (repeated 9 times)",
                     "start failed: EMFILE (repeated 9 times)"]
    assert sum(r.getMessage().startswith("other") for r in caplog.records) == 3


def test_backoff_doubles_to_its_cap_and_crash_window_forgets_old_crashes() -> None:
    backoff = RestartBackoff(initial=1, cap=60)
    assert backoff.delay() == 0
    assert [backoff.failed() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    backoff.reset()
    assert backoff.delay() == 0
    now = [0.0]
    window = CrashWindow(limit=3, window=60, clock=lambda: now[0])
    for t in (0, 10, 20):
        now[0] = t
        window.record()
    assert window.looping
    now[0] = 61
    assert not window.looping and window.count() == 2


def test_a_policy_that_cannot_work_is_refused() -> None:
    with pytest.raises(ConfigError, match="backoff_initial"):
        LifecyclePolicy(backoff_initial=10, backoff_max=1)
    with pytest.raises(ConfigError, match="crash loop of 0 crashes"):
        LifecyclePolicy(crash_loop_crashes=0)


@pytest.fixture(autouse=True)
def _node_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO, logger="cprsdk.node")
    yield
