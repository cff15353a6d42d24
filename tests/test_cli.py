"""The command line: help that reads well, one error translator, `python -m cprsdk`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cprsdk
from cprsdk.cli import main
from scenario import Project


def test_help_lists_commands_and_the_usual_path(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("init", "package", "local", "deploy", "serve", "predict", "batch"):
        assert f"    {command}" in out
    assert "cprsdk local predict --json-instances sample.jsonl" in out


def test_python_dash_m_runs_the_command() -> None:
    proc = subprocess.run([sys.executable, "-m", "cprsdk", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"cprsdk {cprsdk.__version__}"


def test_package_prints_the_path_and_writes_the_report(project: Project, capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    src = project("ok")
    report = tmp_path / "report.json"
    assert main(["package", str(src), "--report", str(report)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(src / "dist" / "ok_project-1.0.tar.gz")
    assert "ok  pickle references" in err and "sha256 " in err
    data = json.loads(report.read_text())
    assert data["sdist"] == out.strip() and len(data["sha256"]) == 64
    assert all(check["ok"] for check in data["checks"])


def test_package_errors_are_one_error_line_and_a_tip(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    src = project("ok")
    assert main(["package", str(src), "--prediction-class", "predictor.Nope", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: Module 'predictor' has no attribute 'Nope'")
    assert "Traceback" not in err


def test_config_errors_are_translated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cprsdk.toml").write_text("prediction_clas = 'a.B'\n")
    assert main(["package", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "ERROR: Unknown setting 'prediction_clas' in cprsdk.toml." in err
    assert "TIP: Did you mean 'prediction_class'?" in err


def test_local_predict_needs_exactly_one_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["local", "predict", "--json-instances", "a", "--text-instances", "b"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
