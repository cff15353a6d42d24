"""The load check of `cprsdk package` and `cprsdk deploy`: a version that does not load is never uploaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cprsdk.cli import main
from cprsdk.registry.registry import Registry
from scenario import Project


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_from_path_that_raises_fails_package_and_deploy_before_any_upload(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = project("load-fails")
    code, out, err = _run(capsys, "package", str(src))
    assert code != 0 and not (src / "dist").exists()
    assert "does not load" in err and "ValueError: weights.bin is missing from" in err
    assert "--skip-load-check" in err
    registry = tmp_path / "registry"
    code, _, err = _run(capsys, "deploy", str(src), "--model", "m", "--version", "v1", "--registry", str(registry))
    assert code != 0 and "ValueError: weights.bin is missing from" in err
    assert not Registry(str(registry)).version_exists("m", "v1")
    assert not (registry / "blobs").exists()  # nothing uploaded
    code, out, err = _run(capsys, "package", str(src), "--skip-load-check", "--format", "json")
    assert code == 0, err
    load = next(c for c in json.loads(out)["checks"] if c["name"] == "load")
    assert load == {"name": "load", "ok": True, "detail": "skipped (flag --skip-load-check)", "warning": False}


def test_a_good_version_reports_load_time_and_memory_and_a_smoke_prediction(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    src = project("ok")
    (src / "smoke.jsonl").write_text("[1, 2]\n[3, 4]\n")
    report = src / "report.json"
    code, _, err = _run(capsys, "package", str(src), "--json-instances", str(src / "smoke.jsonl"),
                        "--report", str(report))
    assert code == 0, err
    checks = {c["name"]: c["detail"] for c in json.loads(report.read_text())["checks"]}
    assert checks["load"].startswith("loaded in ") and " s; peak memory of the loading process " in checks["load"]
    assert checks["load"].endswith(" MB")
    assert checks["smoke prediction"].startswith("2 predictions from smoke.jsonl, JSON, in ")


def test_a_smoke_prediction_that_is_not_json_fails_naming_it(project: Project, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    src = project("smoke-not-json")
    (src / "cprsdk.toml").write_text('name = "opaque"\nprediction_class = "predictor.MyPredictor"\n'
                                     'smoke_instances = "smoke.jsonl"\n')
    (src / "smoke.jsonl").write_text('{"a": 1}\n')
    code, _, err = _run(capsys, "package", str(src))
    assert code != 0 and not (src / "dist").exists()
    assert f"The smoke prediction on {src / 'smoke.jsonl'} failed" in err and "Opaque" in err
    registry = tmp_path / "registry"
    code, _, err = _run(capsys, "deploy", str(src), "--model", "m", "--version", "v1", "--registry", str(registry))
    assert code != 0 and "Opaque" in err and not (registry / "blobs").exists()
