"""A `cprsdk deploy` SIGKILLed mid-upload: its temporary object is swept by a later deploy, once old."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cprsdk.cli import main
from cprsdk.registry.registry import Registry
from cprsdk.storage import open_store
from helpers import label_project
from servers import gcs_client

BIG = 120_000_000


def _big_project(root: Path) -> Path:
    project = label_project(root, "big")
    with (project / "model" / "weights.bin").open("wb") as out:
        for _ in range(BIG // 4_000_000):
            out.write(os.urandom(4_000_000))
    return project


def _kill_mid_upload(project: Path, registry: str, uploading: Callable[[], bool]) -> None:
    """Start a real deploy, SIGKILL it once ``uploading()`` says the big upload is under way."""
    argv = [sys.executable, "-m", "cprsdk", "deploy", str(project), "--model", "big", "--version", "v1",
            "--registry", registry, "--skip-load-check"]
    log = project.parent / "deploy.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 180
        while not uploading():
            assert proc.poll() is None, f"the deploy ended (exit {proc.returncode}) too soon:\n{log.read_text()}"
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def _temporaries(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.cprsdk-tmp-*") if p.is_file())


def test_a_killed_uploads_temporary_file_is_swept_once_older_than_an_hour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    project = _big_project(tmp_path)
    root = tmp_path / "registry"
    _kill_mid_upload(project, str(root), lambda: any(p.stat().st_size > 1_000_000 for p in _temporaries(root)))
    left = _temporaries(root)
    assert any(1_000_000 < p.stat().st_size < BIG for p in left)  # what the killed upload of the big file left
    assert not Registry(str(root)).version_exists("big", "v1")
    assert all(".cprsdk-tmp-" not in info.key for info in open_store(root.as_uri()).list())  # never an object

    assert main(["deploy", str(project), "--model", "big", "--version", "v1", "--registry", str(root),
                 "--skip-load-check"]) == 0, capsys.readouterr().err
    assert _temporaries(root) == left  # young: it could be an upload still running, so it stays
    capsys.readouterr()

    old = time.time() - 2 * 3600
    for path in left:
        os.utime(path, (old, old))
    second = label_project(tmp_path / "second", "small", name="small")
    assert main(["deploy", str(second), "--model", "small", "--version", "v1", "--registry", str(root),
                 "--skip-load-check"]) == 0
    err = capsys.readouterr().err
    assert f"removed {len(left)} temporary object(s) left by interrupted uploads" in err, err
    assert _temporaries(root) == []
    assert Registry(str(root)).version_exists("big", "v1")


def test_a_killed_upload_to_gcs_leaves_no_object_to_sweep(tmp_path: Path, gcs_uri: str) -> None:
    """GCS uploads are resumable sessions, not objects: nothing of a killed one is in the bucket."""
    project = _big_project(tmp_path)
    bucket = gcs_uri.removeprefix("gs://").split("/")[0]
    client = gcs_client()
    try:
        seen: list[float] = []

        def uploading() -> bool:  # the sdist and weights.txt stored: only the big file is left, in flight
            if not seen and sum(1 for _ in client.list_blobs(bucket)) >= 2:
                seen.append(time.monotonic())
            return bool(seen) and time.monotonic() - seen[0] > 0.3  # the 120 MB upload takes about a second

        _kill_mid_upload(project, gcs_uri, uploading)
        sizes = {blob.name: blob.size for blob in client.list_blobs(bucket)}
    finally:
        client.close()
    assert not [name for name in sizes if name.endswith("model.json")], "the deploy finished before the kill"
    assert len(sizes) == 2 and BIG not in sizes.values()  # killed before the big file was stored
    assert not [name for name in sizes if "cprsdk-tmp" in name]
    assert open_store(gcs_uri).sweep_temporaries(older_than=0) == []
