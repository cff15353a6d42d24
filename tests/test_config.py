"""One precedence chain: flag > CPRSDK_* variable > project file > default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cprsdk import ConfigError, load_settings
from cprsdk.config import KEYS
from helpers import REPO

DOCS = REPO / "docs" / "configuration.md"


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(tmp_path, environ={})
    assert s.model_dir == tmp_path / "model"
    assert s.max_model_mb == 250 and s.max_model_files == 1000 and s.max_code_mb == 250
    assert s.allow_unsafe_pickles is False
    assert s.describe("model_dir") == "default"


def test_precedence_flag_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _write(tmp_path / "p", "pyproject.toml",
                     '[tool.cprsdk]\nmax_model_mb = 10\nmodel_dir = "artifacts"\nprediction_class = "a.B"\n')
    monkeypatch.chdir(tmp_path)
    s = load_settings(project, {"max_model_mb": None}, environ={"CPRSDK_MAX_MODEL_MB": "20"})
    assert s.max_model_mb == 20 and s.describe("max_model_mb") == "variable CPRSDK_MAX_MODEL_MB"
    assert s.model_dir == project / "artifacts"  # file paths are relative to the file
    assert s.describe("model_dir") == "[tool.cprsdk]"
    s = load_settings(project, {"max_model_mb": 30, "model_dir": "m"}, environ={"CPRSDK_MAX_MODEL_MB": "20"})
    assert s.max_model_mb == 30 and s.describe("max_model_mb") == "flag --max-model-mb"
    assert s.model_dir == tmp_path / "m"  # flag paths are relative to the current folder


def test_cprsdk_toml_wins_over_pyproject(tmp_path: Path) -> None:
    _write(tmp_path, "pyproject.toml", '[tool.cprsdk]\nversion = "1"\n')
    _write(tmp_path, "cprsdk.toml", 'version = "2"\n')
    assert load_settings(tmp_path, environ={}).version == "2"


def test_typo_in_file_gets_did_you_mean(tmp_path: Path) -> None:
    _write(tmp_path, "pyproject.toml", "[tool.cprsdk]\nmax_model_mbs = 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, environ={})
    assert info.value.message == "Unknown setting 'max_model_mbs' in [tool.cprsdk]."
    assert info.value.hint == "Did you mean 'max_model_mb'?"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_model_files = 'many'", "max_model_files in cprsdk.toml must be a whole number, got 'many'."),
        ("allow_unsafe_pickles = 'perhaps'", "must be true or false, got 'perhaps'."),
        ("max_code_mb = -1", "max_code_mb in cprsdk.toml must not be negative, got -1."),
        ("prediction_class = ''", "prediction_class in cprsdk.toml must be a non-empty string"),
        ("this is = not toml", "is not valid TOML"),
    ],
)
def test_bad_values_name_key_value_and_type(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path, "cprsdk.toml", text + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, environ={})
    assert message in info.value.message


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, environ={"CPRSDK_MAX_MODEL_FILES": "lots"})
    assert info.value.message == "CPRSDK_MAX_MODEL_FILES must be a whole number, got 'lots'."


def test_docs_list_every_key() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", DOCS.read_text(), flags=re.M))
    assert documented == {k.name for k in KEYS}
