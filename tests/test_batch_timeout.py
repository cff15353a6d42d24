"""--record-timeout: a record that hangs its worker becomes an error line naming it; the job goes on."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main
from dask_cluster import DaskCluster

BEHAVIOURS = Path(__file__).resolve().parent / "projects" / "behaviours"
STUCK = ["--model-dir", str(BEHAVIOURS / "model"), "--package", str(BEHAVIOURS), "--prediction-class", "stuck.Stuck"]


@pytest.fixture(autouse=True)
def _jobs_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def _data(tmp_path: Path, count: int, hung: int) -> Path:
    lines = [f'"r{i}"' for i in range(1, count + 1)]
    lines[hung - 1] = '"hang"'
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(lines) + "\n")
    return data


def _errors(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for part in sorted((out / "errors").glob("part-*.jsonl"))
            for line in part.read_text().splitlines()]


def _predicted(out: Path) -> list[Any]:
    return [json.loads(line)["prediction"] for part in sorted((out / "predictions").glob("part-*.jsonl"))
            for line in part.read_text().splitlines()]


def assert_one_record_timed_out(data: Path, out: Path, code: int, err: str, count: int, hung: int,
                                seconds: str) -> None:
    """The job SUCCEEDED with exactly the hung record (line ``hung``) as a RecordTimeout error line."""
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0, err
    assert (summary["state"], summary["succeeded"], summary["failed"], summary["incomplete"]) == \
        ("SUCCEEDED", count - 1, 1, 0)
    assert _errors(out) == [{
        "input": f"{data.as_uri()}:{hung}", "errorType": "RecordTimeout",
        "message": f"the prediction of this record took longer than the --record-timeout of {seconds} s; "
                   "the worker was ended and replaced"}]
    assert _predicted(out) == [f"r{i}" for i in range(1, count + 1) if i != hung]
    assert f"rows.jsonl:{hung},RecordTimeout," in (out / "errors.csv").read_text()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_record_that_hangs_is_isolated_and_the_job_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             workers: str) -> None:
    data, out = _data(tmp_path, 24, hung=11), tmp_path / "out"
    started = time.monotonic()
    code = main(["batch", "predict", *STUCK, "--input", str(data), "--output", str(out), "--shard-size", "8",
                 "--batch-size", "4", "--workers", workers, "--record-timeout", "1.5"])
    assert_one_record_timed_out(data, out, code, capsys.readouterr().err, 24, 11, "1.5")
    assert time.monotonic() - started < 90


def test_the_record_timeout_comes_from_the_project_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cprsdk.toml").write_text("record_timeout = 1\n")
    monkeypatch.chdir(tmp_path)
    data, out = _data(tmp_path, 6, hung=6), tmp_path / "out"
    code = main(["batch", "predict", *STUCK, "--input", str(data), "--output", str(out), "--batch-size", "2"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert_one_record_timed_out(data, out, code, err, 6, 6, "1")


def test_a_record_timeout_of_zero_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _data(tmp_path, 2, hung=2)
    code = main(["batch", "predict", *STUCK, "--input", str(data), "--output", str(tmp_path / "o"),
                 "--record-timeout", "0"])
    assert code == 1
    assert "--record-timeout is a number of seconds above 0, got 0." in capsys.readouterr().err


def test_a_record_that_hangs_on_a_real_dask_cluster(dask_cluster: DaskCluster, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data, out = _data(tmp_path, 8, hung=3), tmp_path / "out"
    code = main(["batch", "predict", *STUCK, "--input", str(data), "--output", str(out), "--shard-size", "4",
                 "--batch-size", "4", "--record-timeout", "1", "--engine", "dask", "--scheduler",
                 dask_cluster.address])
    err = capsys.readouterr().err
    assert code == 0, err
    assert_one_record_timed_out(data, out, code, err, 8, 3, "1")
