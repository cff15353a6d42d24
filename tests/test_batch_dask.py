"""Batch on a real Dask cluster: `dask scheduler` and two `dask worker` processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main
from dask_cluster import DaskCluster

BEHAVIOURS = Path(__file__).resolve().parent / "projects" / "behaviours"
LOCAL = ["--model-dir", str(BEHAVIOURS / "model"), "--package", str(BEHAVIOURS), "--prediction-class",
         "sleepy.Sleepy"]


@pytest.fixture(autouse=True)
def _jobs_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def _outputs(out: Path) -> dict[str, bytes]:
    names = ["results.csv", "errors.csv"] + [f"predictions/{p.name}" for p in sorted((out / "predictions").iterdir())]
    return {name: (out / name).read_bytes() for name in names}


def _summary(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return {k: data[k] for k in ("state", "total", "succeeded", "failed", "incomplete", "shards")}


def _job(data: Path, out: Path, *extra: str) -> list[str]:
    return ["batch", "predict", *LOCAL, "--input", str(data), "--output", str(out), "--shard-size", "5",
            "--batch-size", "5", *extra]


def test_a_job_on_a_real_cluster_equals_the_local_engines(dask_cluster: DaskCluster, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(f"{i}\n" for i in range(60)) + "{bad\n")
    assert main(_job(data, tmp_path / "local")) == 0
    assert main(_job(data, tmp_path / "dask", "--engine", "dask", "--scheduler", dask_cluster.address)) == 0
    capsys.readouterr()
    assert _summary(tmp_path / "dask") == _summary(tmp_path / "local") == {
        "state": "SUCCEEDED", "total": 61, "succeeded": 60, "failed": 1, "incomplete": 0, "shards": 13}
    assert _outputs(tmp_path / "dask") == _outputs(tmp_path / "local")


def test_a_worker_killed_mid_job_loses_nothing(dask_cluster: DaskCluster, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(f"{i}\n" for i in range(200)))
    assert main(_job(data, tmp_path / "local", "--workers", "2")) == 0
    capsys.readouterr()
    argv = [sys.executable, "-m", "cprsdk", *_job(data, tmp_path / "dask", "--engine", "dask", "--scheduler",
                                                  dask_cluster.address)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        marks = tmp_path / "dask" / "_committed"
        deadline = time.monotonic() + 120
        while not (marks.is_dir() and len(list(marks.iterdir())) >= 4) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(list(marks.iterdir())) < 40, "the job finished before a worker could be killed"
        victim = dask_cluster.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)  # its nanny starts a new one; its tasks run elsewhere
        assert proc.wait(timeout=180) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert _summary(tmp_path / "dask") == _summary(tmp_path / "local")
    assert _outputs(tmp_path / "dask") == _outputs(tmp_path / "local")
