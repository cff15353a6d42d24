"""`cprsdk deploy`: checks before the first byte, content reuse, atomic publication, recovery."""

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
from cprsdk.registry.manifest import Manifest
from cprsdk.registry.registry import Registry
from cprsdk.runtime.resolved import resolve_manifest
from cprsdk.storage import open_store
from cprsdk.testing import free_port
from helpers import copy_built


def _deploy(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["deploy", *argv, "--format", "json"]) == 0, capsys.readouterr().err
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_deploy_then_describe_and_redeploy_reuses_everything(
    trained_sample: Path, store_uri: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first = _deploy(capsys, str(trained_sample), "--model", "iris", "--version", "v1", "--registry", store_uri)
    assert first["state"] == "PUBLISHED" and first["uploadedFiles"] == 3 and first["reusedFiles"] == 0
    model_bytes = sum(f["size"] for f in first["manifest"]["files"])
    assert first["uploadedBytes"] == model_bytes + first["manifest"]["packages"][0]["size"]

    assert main(["versions", "describe", "v1", "--model", "iris", "--registry", store_uri]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["predictionClass"] == "predictor.MyPredictor" and described["isDefault"] is True
    assert sorted(f["path"] for f in described["files"]) == ["model.joblib", "preprocessor.pkl"]
    assert all(len(f["sha256"]) == 64 for f in described["files"] + described["packages"])
    assert described["packageUris"] == [f"{store_uri}/blobs/sha256/{described['packages'][0]['sha256']}"]
    assert main(["versions", "describe", "--version", "v1", "--model", "iris", "--registry", store_uri]) == 0
    assert json.loads(capsys.readouterr().out) == described  # the flag deploy takes works here too
    assert main(["versions", "describe", "v1", "--version", "v2", "--model", "iris", "--registry", store_uri]) != 0
    assert "Two versions given: v1 and --version v2." in capsys.readouterr().err

    second = _deploy(capsys, str(trained_sample), "--model", "iris", "--version", "v2", "--registry", store_uri)
    assert second["uploadedFiles"] == 0 and second["uploadedBytes"] == 0
    assert second["reusedFiles"] == 3 and second["manifest"]["isDefault"] is False

    manifest = Manifest.from_json(second["manifest"], source="of v2")
    resolved = resolve_manifest(Registry(store_uri), manifest, cache=tmp_path / "cache")
    model_file = (trained_sample / "model" / "model.joblib").read_bytes()
    assert (resolved.model_dir / "model.joblib").read_bytes() == model_file
    assert manifest.packages[0].path == "zerocenterer_sklearn-0.1.tar.gz"
    assert (resolved.sites[0] / "predictor.py").read_bytes() == (trained_sample / "predictor.py").read_bytes()


def test_table_output_says_what_was_reused(trained_sample: Path, memory_uri: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", str(trained_sample), "--model", "iris", "--version", "v1", "--registry", memory_uri]) == 0
    assert main(["deploy", str(trained_sample), "--model", "iris", "--version", "v2", "--registry", memory_uri]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["MODEL", "VERSION", "STATE", "DEFAULT", "UPLOADED", "REUSED", "PACKAGE", "URIS"]
    assert out[-1].startswith("iris   v2       PUBLISHED  no       0 files, 0 B  3 files,")


def test_same_version_twice_fails_and_keeps_the_first(trained_sample: Path, memory_uri: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _deploy(capsys, str(trained_sample), "--model", "iris", "--version", "v1", "--registry", memory_uri,
            "--description", "first")
    assert main(["deploy", str(trained_sample), "--model", "iris", "--version", "v1", "--registry", memory_uri]) == 1
    assert "ERROR: Version 'v1' of model 'iris' exists already" in capsys.readouterr().err
    assert main(["versions", "describe", "v1", "--model", "iris", "--registry", memory_uri]) == 0
    assert json.loads(capsys.readouterr().out)["description"] == "first"


def test_quota_fails_before_the_first_byte(trained_sample: Path, memory_uri: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", str(trained_sample), "--model", "iris", "--version", "v1", "--registry", memory_uri,
                 "--max-model-mb", "0.001"]) == 1
    assert "over the 0.001 MB model quota" in capsys.readouterr().err
    assert Registry(memory_uri).store.list() == []


def test_origin_and_package_uris_reference_stored_artifacts(
    trained_sample: Path, s3_uri: str, memory_uri: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["package", str(trained_sample), "--out", str(tmp_path / "dist"), "-q"]) == 0
    sdist = Path(capsys.readouterr().out.strip())
    bucket = open_store(s3_uri)
    for path in (trained_sample / "model").iterdir():
        bucket.upload_file(path, f"legacy/model/{path.name}")
    bucket.upload_file(sdist, f"staging/{sdist.name}")
    result = _deploy(capsys, "--model", "legacy", "--version", "v1", "--registry", memory_uri,
                     "--origin", f"{s3_uri}/legacy/model", "--package-uris", f"{s3_uri}/staging/{sdist.name}",
                     "--prediction-class", "predictor.MyPredictor", "--runtime-version", "1.15",
                     "--python-version", "3.7")
    manifest = result["manifest"]
    assert result["uploadedFiles"] == 0
    assert manifest["deploymentUri"] == f"{s3_uri}/legacy/model"
    assert manifest["packageUris"] == [f"{s3_uri}/staging/{sdist.name}"]
    assert (manifest["runtimeVersion"], manifest["pythonVersion"]) == ("1.15", "3.7")
    from cprsdk.packaging.install import sha256_file

    resolved = resolve_manifest(Registry(memory_uri), Manifest.from_json(manifest, source="of legacy"),
                                cache=tmp_path / "cache")
    assert sorted(p.name for p in resolved.model_dir.iterdir()) == ["model.joblib", "preprocessor.pkl"]
    assert manifest["packages"][0]["sha256"] == sha256_file(sdist)
    assert (resolved.sites[0] / "predictor.py").is_file()


def test_wait_without_a_node_says_so(trained_sample: Path, memory_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["deploy", str(trained_sample), "--model", "iris", "--version", "v1", "--registry", memory_uri,
                 "--wait", "--endpoint", f"http://127.0.0.1:{free_port()}"])
    assert code == 1
    err = capsys.readouterr().err
    assert "--wait: no prediction node answered at http://127.0.0.1:" in err
    assert "The version is published in the registry" in err


def test_wait_without_endpoint_deploys_nothing(trained_sample: Path, memory_uri: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", str(trained_sample), "--model", "iris", "--version", "v1", "--registry", memory_uri,
                 "--wait"]) == 1
    assert "--wait needs --endpoint URL (the node to ask); nothing was deployed." in capsys.readouterr().err
    assert Registry(memory_uri).store.list() == []


def test_origin_quotas_are_checked_from_the_listing(trained_sample: Path, memory_uri: str, file_uri: str,
                                                    capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bucket = open_store(file_uri)
    for path in (trained_sample / "model").iterdir():
        bucket.upload_file(path, f"legacy/model/{path.name}")
    big = tmp_path / "big-0.1.tar.gz"
    big.write_bytes(os.urandom(3_000_000))
    bucket.upload_file(big, "staging/big-0.1.tar.gz")
    assert main(["deploy", "--model", "legacy", "--version", "v1", "--registry", memory_uri,
                 "--origin", f"{file_uri}/legacy/model", "--package-uris", f"{file_uri}/staging/big-0.1.tar.gz",
                 "--prediction-class", "predictor.MyPredictor", "--max-code-mb", "1"]) == 1
    assert "over the 1 MB code quota" in capsys.readouterr().err
    assert main(["deploy", "--model", "legacy", "--version", "v1", "--registry", memory_uri,
                 "--origin", f"{file_uri}/legacy/model", "--package-uris", f"{file_uri}/staging/big-0.1.tar.gz",
                 "--prediction-class", "predictor.MyPredictor", "--max-model-files", "1"]) == 1
    assert "has 2 files, over the 1-file model quota" in capsys.readouterr().err
    assert Registry(memory_uri).store.list() == []


def _big_model(trained_sample: Path, dest: Path, files: int) -> Path:
    copy_built(trained_sample, dest)
    for i in range(files):
        (dest / "model" / f"shard{i:03d}.bin").write_bytes(os.urandom(1_000_000))
    return dest


def test_killed_deploy_leaves_nothing_visible_and_resumes(trained_sample: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    project = _big_model(trained_sample, tmp_path / "big", files=120)
    registry_dir = tmp_path / "registry"
    argv = [sys.executable, "-m", "cprsdk", "deploy", str(project), "--model", "iris", "--version", "v1",
            "--registry", str(registry_dir)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    blobs = registry_dir / "blobs" / "sha256"

    def complete() -> list[Path]:  # temporary names of uploads in flight are not objects
        return [p for p in blobs.iterdir() if len(p.name) == 64] if blobs.is_dir() else []

    deadline = time.monotonic() + 120
    while not complete() and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    uploaded_before = len(complete())
    assert 0 < uploaded_before < 123
    assert not (registry_dir / "models" / "iris" / "versions").exists() or not list(
        (registry_dir / "models" / "iris" / "versions").iterdir())

    result = _deploy(capsys, str(project), "--model", "iris", "--version", "v1", "--registry", str(registry_dir))
    assert result["reusedFiles"] >= 1
    assert result["uploadedFiles"] + result["reusedFiles"] == 123  # 122 model files and the sdist
    assert len(complete()) == 123
    assert Registry(str(registry_dir)).get_model("iris").default_version == "v1"
