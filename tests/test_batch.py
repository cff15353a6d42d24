"""`cprsdk batch predict`: every record ends as a prediction or an error line; resumable; engines agree."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main
from cprsdk.storage import open_store

ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(autouse=True)
def _jobs_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def _lines(count: int, bad_every: int | None = None) -> str:
    rows = []
    for i in range(1, count + 1):
        rows.append("{not json" if bad_every and i % bad_every == 0 else json.dumps([r + i % 3 for r in ROW]))
    return "\n".join(rows) + "\n"


def _predict_argv(sample: Path) -> list[str]:
    """`batch predict` of the trained sample, before the input and output flags."""
    return ["batch", "predict", "--model-dir", str(sample / "model"), "--package", str(sample),
            "--prediction-class", "predictor.MyPredictor"]


def _batch(sample: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main([*_predict_argv(sample), *argv])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def _csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


def test_bad_lines_and_an_unreadable_file_are_named_and_nothing_is_lost(
    trained_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.jsonl").write_text(_lines(300, bad_every=100))  # 1% malformed
    (inputs / "b.jsonl").write_text(_lines(200))
    (inputs / "c.jsonl").write_bytes(b"\xff\xfe not utf-8 at all")
    code, summary = _batch(trained_sample, capsys, "--input", str(inputs), "--output", str(tmp_path / "out"),
                           "--shard-size", "64", "--workers", "2")
    assert code == 0 and summary["state"] == "SUCCEEDED"
    assert (summary["succeeded"], summary["failed"], summary["incomplete"]) == (497, 4, 0)
    assert summary["total"] == 501
    out = open_store(str(tmp_path / "out"))
    errors = _csv(out.read("errors.csv").data)
    assert errors[0] == ["input", "error_type", "message"]
    refs = sorted(row[0].rsplit("/", 1)[1] for row in errors[1:])
    assert refs == ["a.jsonl:100", "a.jsonl:200", "a.jsonl:300", "c.jsonl"]
    assert all(row[2] for row in errors[1:])
    results = _csv(out.read("results.csv").data)
    assert len(results) == 1 + 497 and results[1][0].endswith("a.jsonl:1") and results[1][1] == '"setosa"'
    lines = [json.loads(line) for info in out.list("predictions/") for line in out.read(info.key).data.splitlines()]
    assert len(lines) == 497 and set(lines[0]) == {"input", "instance", "prediction"}


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_killed_job_resumes_to_the_same_output(trained_sample: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text(_lines(2000, bad_every=97))
    common = ["--input", str(data), "--shard-size", "50", "--batch-size", "10"]
    code, clean = _batch(trained_sample, capsys, *common, "--output", str(tmp_path / "clean"))
    assert code == 0
    argv = [sys.executable, "-m", "cprsdk", *_predict_argv(trained_sample), *common,
            "--output", str(tmp_path / "killed")]
    # Only the job itself is SIGKILLed (it cannot clean up): its workers must notice and end by
    # themselves. Its own process group, killed whole at the end, so that a failure leaks nothing.
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    marks = tmp_path / "killed" / "_committed"
    try:
        deadline = time.monotonic() + 120
        while not (marks.is_dir() and len(list(marks.iterdir())) >= 3) and time.monotonic() < deadline:
            time.sleep(0.01)
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert workers, "the job had no worker processes to watch"
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)], "worker processes outlived the killed job"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert 3 <= len(list(marks.iterdir())) < 40
    assert not (tmp_path / "killed" / "summary.json").exists()
    left = sorted(p.name.split("-")[2] for p in Path(tempfile.gettempdir()).glob(f"cprsdk-batch-*-{proc.pid}-*"))
    assert left == ["staging", "timeouts"], "the killed job had no scratch folders to leave behind"
    code, resumed = _batch(trained_sample, capsys, *common, "--output", str(tmp_path / "killed"))
    assert code == 0
    assert not list(Path(tempfile.gettempdir()).glob(f"cprsdk-batch-*-{proc.pid}-*")), \
        "the next job did not remove the killed job's scratch folders"
    for key in ("total", "succeeded", "failed", "incomplete", "state"):
        assert resumed[key] == clean[key]
    for name in ("results.csv", "errors.csv"):
        assert (tmp_path / "killed" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    shards = sorted(p.name for p in (tmp_path / "clean" / "predictions").iterdir())
    for shard in shards:
        assert (tmp_path / "killed" / "predictions" / shard).read_bytes() == \
            (tmp_path / "clean" / "predictions" / shard).read_bytes()


def test_over_the_error_rate_the_job_fails_with_its_summary(trained_sample: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text(_lines(100, bad_every=10))
    code = main([*_predict_argv(trained_sample), "--input", str(data), "--output", str(tmp_path / "out"),
                 "--max-error-rate", "0.05"])
    out, err = capsys.readouterr()
    assert code == 1 and json.loads(out)["state"] == "FAILED"
    assert "10 of 100 records failed (10.00%), over --max-error-rate 0.05" in err
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["failed"] == 10


def test_csv_input_with_a_key_field(trained_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("id,sl,sw,pl,pw\nfirst,5.1,3.5,1.4,0.2\nsecond,6.7,3.0,5.2,2.3\nbroken,1,2\n")
    code, summary = _batch(trained_sample, capsys, "--input", str(data), "--output", str(tmp_path / "out"),
                           "--data-format", "csv", "--key-field", "id")
    assert code == 0 and (summary["succeeded"], summary["failed"]) == (2, 1)
    lines = (tmp_path / "out" / "predictions" / "part-00000.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"input": f"file://{data}:2", "key": "first", "prediction": "setosa"},
        {"input": f"file://{data}:3", "key": "second", "prediction": "virginica"},
    ]
    errors = (tmp_path / "out" / "errors.csv").read_text()
    assert "rows.csv:4,ValueError,\"the row has 3 fields, the header 5\"" in errors


def test_status_list_stop_and_results(trained_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cprsdk.batch.jobs import job_id

    data = tmp_path / "rows.jsonl"
    data.write_text(_lines(20))
    output = str(tmp_path / "out")
    assert _batch(trained_sample, capsys, "--input", str(data), "--output", output)[0] == 0
    job = job_id(output)
    assert main(["batch", "status", job]) == 0
    assert json.loads(capsys.readouterr().out)["succeeded"] == 20
    assert main(["batch", "list", "--format", "json"]) == 0
    assert [j["job"] for j in json.loads(capsys.readouterr().out)] == [job]
    assert main(["batch", "results", job]) == 0
    assert len(_csv(capsys.readouterr().out.encode())) == 21
    assert main(["batch", "stop", job]) == 0
    assert "Asked" in capsys.readouterr().err
    assert main(["batch", "status", "job-nope"]) == 1
    assert "No job 'job-nope' on this machine." in capsys.readouterr().err


def test_dask_and_local_engines_agree(trained_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text(_lines(300, bad_every=50))
    common = ["--input", str(data), "--shard-size", "40", "--workers", "2"]
    assert _batch(trained_sample, capsys, *common, "--output", str(tmp_path / "local"))[0] == 0
    code, summary = _batch(trained_sample, capsys, *common, "--output", str(tmp_path / "dask"), "--engine", "dask")
    assert code == 0 and summary["succeeded"] == 294
    for name in ("results.csv", "errors.csv"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_inputs_and_outputs_in_a_gcs_bucket(trained_sample: Path, gcs_uri: str, capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    bucket = open_store(gcs_uri)
    data = tmp_path / "sample.jsonl"
    data.write_text(_lines(30, bad_every=10))
    bucket.upload_file(data, "data/sample.jsonl")
    code, summary = _batch(trained_sample, capsys, "--input", f"{gcs_uri}/data/*.jsonl", "--output", f"{gcs_uri}/out")
    assert code == 0 and (summary["succeeded"], summary["failed"]) == (27, 3)
    keys = {info.key for info in bucket.list("out/")}
    assert {"out/results.csv", "out/errors.csv", "out/summary.json", "out/predictions/part-00000.jsonl"} <= keys
    assert f"{gcs_uri}/data/sample.jsonl:10" in bucket.read("out/errors.csv").data.decode()


def test_a_different_job_in_the_same_output_is_refused(trained_sample: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    one.write_text(_lines(5))
    two.write_text(_lines(5))
    assert _batch(trained_sample, capsys, "--input", str(one), "--output", str(tmp_path / "out"))[0] == 0
    assert main([*_predict_argv(trained_sample), "--input", str(two), "--output", str(tmp_path / "out")]) == 1
    assert "holds another job's output" in capsys.readouterr().err
