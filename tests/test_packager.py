"""`cprsdk package`: reproducible sdists, and every check failing before anything is written."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from cprsdk import ConfigError, PackageResult, PickleCheckError, PredictorLoadError, QuotaError, load_settings, package
from cprsdk.cli import main
from cprsdk.packaging.packager import is_bare_folder
from scenario import Project


def _package(src: Path, **flags: object) -> PackageResult:
    flags.setdefault("out", str(src / "dist"))
    return package(load_settings(src, flags))


def test_bare_folder_packages_with_every_check(project: Project) -> None:
    src = project("ok")
    result = _package(src)
    assert result.sdist == src / "dist" / "ok_project-1.0.tar.gz"
    assert result.layout == "bare" and result.name == "ok_project" and result.version == "1.0"
    assert [c.name for c in result.checks] == ["model quota", "code quota", "prediction class", "pickle references",
                                               "requirements", "load"]
    assert result.pickles[0]["path"] == "model/scaler.pkl"
    assert "scaler.Scaler" in result.pickles[0]["references"]
    with tarfile.open(result.sdist) as tar:
        names = sorted(tar.getnames())
    assert "ok_project-1.0/predictor.py" in names and "ok_project-1.0/scaler.py" in names
    assert not any("/model/" in n or n.endswith("make_model.pyc") for n in names)


def test_same_contents_same_sha256_whatever_the_mtimes(project: Project, tmp_path: Path) -> None:
    src = project("ok")
    first = _package(src, out=str(tmp_path / "out1"))
    copy = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(src, copy)
    for path in copy.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    second = _package(copy, out=str(tmp_path / "out2"))
    assert first.sha256 == second.sha256
    assert first.sdist.read_bytes() == second.sdist.read_bytes()


def test_module_left_out_fails_before_anything_is_written(project: Project) -> None:
    src = project("missing-module")
    assert not is_bare_folder(src)
    with pytest.raises(PickleCheckError) as info:
        _package(src)
    message = info.value.message
    assert "model/scaler.pkl needs scaler.Scaler" in message
    assert "module 'scaler' is neither in the package nor installed in the runtime" in message
    assert not (src / "dist").exists()


def test_main_pickle_is_refused_with_the_fix(project: Project) -> None:
    src = project("main-pickle")
    with pytest.raises(PickleCheckError) as info:
        _package(src)
    assert "model/scaler.pkl references __main__.Scaler" in info.value.message
    assert "Move the class into a module that you package" in info.value.message
    assert not (src / "dist").exists()


def test_dangerous_pickle_is_refused_unless_allowed(project: Project) -> None:
    src = project("dangerous-pickle")
    with pytest.raises(PickleCheckError) as info:
        _package(src)
    assert f"model/scaler.pkl references {os.system.__module__}.system" in info.value.message
    assert "--allow-unsafe-pickles" in info.value.message
    assert not (src / "dist").exists()
    allowed = _package(src, allow_unsafe_pickles=True)
    assert allowed.sdist.is_file()


def test_class_typo_fails_the_clean_import(project: Project) -> None:
    src = project("ok")
    with pytest.raises(PredictorLoadError) as info:
        _package(src, prediction_class="predictor.MyPredicter")
    assert "Module 'predictor' has no attribute 'MyPredicter'" in info.value.message
    assert "Did you mean 'predictor.MyPredictor'?" in info.value.message
    assert not (src / "dist").exists()


def test_class_only_in_the_source_folder_is_not_enough(project: Project) -> None:
    src = project("ok")
    (src / "extra").mkdir()
    (src / "extra" / "late.py").write_text("class Late:\n    pass\n")  # not a package: not shipped
    with pytest.raises(PredictorLoadError) as info:
        _package(src, prediction_class="late.Late")
    assert "Cannot import module 'late'" in info.value.message
    assert "the built package ok_project-1.0.tar.gz" in info.value.message


def test_oversized_model_dir_fails_first(project: Project) -> None:
    src = project("ok")
    with (src / "model" / "huge.bin").open("wb") as fh:
        fh.truncate(300_000_000)  # sparse: no disk used
    with pytest.raises(QuotaError) as info:
        _package(src)
    assert "model/ is 300 MB, over the 250 MB model quota" in info.value.message
    assert "model/huge.bin (300 MB)" in info.value.message
    assert not (src / "dist").exists()
    assert _package(src, max_model_mb=400).sdist.is_file()


def test_code_quota(project: Project) -> None:
    src = project("ok")
    with pytest.raises(QuotaError, match="over the 0.0001 MB code quota"):
        _package(src, max_code_mb=0.0001)


def test_missing_model_dir_named_explicitly_is_an_error(project: Project) -> None:
    src = project("ok")
    with pytest.raises(Exception, match=r"Model directory .*nowhere \(flag --model-dir\) does not exist"):
        _package(src, model_dir=str(src / "nowhere"))


def test_requirements_txt_and_extra_files_ship_with_a_bare_folder(project: Project, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    src = project("ok")
    (src / "requirements.txt").write_text("numpy>=1.0  # arrays\n-i https://example.invalid/simple\n")
    (src / "vocab.txt").write_text("alpha\nbeta\n")
    (src / "reads_vocab.py").write_text(
        "from pathlib import Path\n\n\nclass ReadsVocab:\n    @classmethod\n    def from_path(cls, model_dir):\n"
        "        return cls()\n\n    def predict(self, instances, **kwargs):\n"
        "        return (Path(__file__).parent / 'vocab.txt').read_text().split()\n")
    result = _package(src)
    with tarfile.open(result.sdist) as tar:
        assert "ok_project-1.0/vocab.txt" in tar.getnames()
        pkg_info = tar.extractfile("ok_project-1.0/PKG-INFO")
        assert pkg_info is not None
        info = pkg_info.read().decode()
    assert "Requires-Dist: numpy>=1.0" in info
    assert next(c for c in result.checks if c.name == "requirements").detail == "1 declared, all installed here"
    monkeypatch.chdir(src)
    (src / "one.jsonl").write_text("[1]\n")
    assert main(["local", "predict", "--prediction-class", "reads_vocab.ReadsVocab", "--json-instances",
                 "one.jsonl"]) == 0
    assert json.loads(capsys.readouterr().out) == {"predictions": ["alpha", "beta"]}


def test_a_bad_requirements_line_is_named(project: Project) -> None:
    src = project("ok")
    (src / "requirements.txt").write_text("numpy>=1.0\nnot a requirement!!\n")
    with pytest.raises(ConfigError, match=r"requirements.txt line 2: 'not a requirement!!' is not a requirement"):
        _package(src)
