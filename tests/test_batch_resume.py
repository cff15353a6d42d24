"""Exact resume: a rerun continues only the same job (inputs, version, output shape), else it names what changed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main

ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(autouse=True)
def _jobs_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def _rows(count: int, offset: float = 0.0) -> str:
    return "".join(json.dumps([r + offset + i % 3 for r in ROW]) + "\n" for i in range(count))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(["batch", "predict", *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, err


def _local(sample: Path) -> list[str]:
    return ["--model-dir", str(sample / "model"), "--package", str(sample), "--prediction-class",
            "predictor.MyPredictor"]


def _predictions(output: Path) -> list[str]:
    return [line for part in sorted((output / "predictions").glob("part-*.jsonl"))
            for line in part.read_text().splitlines()]


def test_a_new_input_matching_the_glob_is_refused_then_restart_starts_over(
    trained_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "in"
    data.mkdir()
    (data / "b.jsonl").write_text(_rows(8))
    (data / "c.jsonl").write_text(_rows(4, 1.0))
    out = tmp_path / "out"
    argv = [*_local(trained_sample), "--input", str(data / "*.jsonl"), "--output", str(out), "--shard-size", "4"]
    code, first, err = _run(capsys, *argv)
    assert code == 0 and first["succeeded"] == 12
    assert "12 of 12 rows (100%)" in err.splitlines()[-1]  # not a terminal: plain progress lines
    (data / "a.jsonl").write_text(_rows(4, 2.0))  # sorts first: every record number would shift
    code, _, err = _run(capsys, *argv)
    assert code == 1
    assert f"input file://{data}/a.jsonl is new" in err and "--restart" in err
    assert len(_predictions(out)) == 12  # the earlier output is untouched
    code, again, _ = _run(capsys, *argv, "--restart")
    assert code == 0 and again["succeeded"] == again["total"] == 16 and again["shards"] == 4
    assert len(_predictions(out)) == 16  # no duplicate, none missing
    code, resumed, _ = _run(capsys, *argv)  # unchanged now: resumes (nothing left to do)
    assert code == 0 and resumed["succeeded"] == 16


def test_a_rewritten_input_and_another_shard_size_are_named(
    trained_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text(_rows(6))
    out = tmp_path / "out"
    argv = [*_local(trained_sample), "--input", str(data), "--output", str(out)]
    assert _run(capsys, *argv)[0] == 0
    data.write_text(_rows(7))
    code, _, err = _run(capsys, *argv, "--shard-size", "5")
    assert code == 1
    assert f"input file://{data} changed (size " in err
    assert "--shard-size was 1000, now 5" in err


def test_another_version_of_the_model_is_refused(
    trained_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = str(tmp_path / "registry")
    for version in ("v1", "v2"):
        assert main(["deploy", str(trained_sample), "--model", "iris", "--version", version,
                     "--registry", registry, "--description", version]) == 0
    data = tmp_path / "rows.jsonl"
    data.write_text(_rows(5))
    argv = ["--model", "iris", "--registry", registry, "--input", str(data), "--output", str(tmp_path / "out")]
    capsys.readouterr()
    assert _run(capsys, *argv)[0] == 0  # v1, the default
    assert main(["versions", "set-default", "v2", "--model", "iris", "--registry", registry]) == 0
    capsys.readouterr()
    code, _, err = _run(capsys, *argv)
    assert code == 1 and "the version changed (digest " in err


def test_a_job_in_which_every_record_failed_is_failed(
    trained_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("{not json\n[1, 2]\n")  # malformed, then the wrong number of features
    code, summary, err = _run(capsys, *_local(trained_sample), "--input", str(data), "--output", str(tmp_path / "o"))
    assert code == 1 and summary["state"] == "FAILED" and summary["failed"] == 2
    assert "every record failed (2 of 2)" in err


BEHAVIOURS = Path(__file__).resolve().parent / "projects" / "behaviours"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_records_that_kill_the_worker_become_error_lines_and_the_job_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: str
) -> None:
    data = tmp_path / "rows.jsonl"
    lines = ['"ok"'] * 40
    lines[7], lines[29] = '"exit"', '"segfault"'
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    code, summary, _ = _run(capsys, "--model-dir", str(BEHAVIOURS / "model"), "--package", str(BEHAVIOURS),
                            "--prediction-class", "crashes.Crashes", "--input", str(data), "--output", str(out),
                            "--shard-size", "16", "--batch-size", "4", "--workers", workers)
    assert code == 0, summary
    assert (summary["state"], summary["succeeded"], summary["failed"], summary["incomplete"]) == ("SUCCEEDED", 38, 2, 0)
    errors = [json.loads(line) for part in sorted((out / "errors").glob("part-*.jsonl"))
              for line in part.read_text().splitlines()]
    assert [(e["input"], e["errorType"]) for e in errors] == [(f"{data.as_uri()}:8", "WorkerExited"),
                                                              (f"{data.as_uri()}:30", "WorkerExited")]
    # How it exited is named when the pool still knew the process (nearly always; a reaping race can hide it).
    assert re.fullmatch(r"the worker process exited( with exit code 7)? while predicting this record",
                        errors[0]["message"]), errors[0]
    assert re.fullmatch(r"the worker process exited( with signal SIGSEGV)? while predicting this record",
                        errors[1]["message"]), errors[1]
    assert len(_predictions(out)) == 38
