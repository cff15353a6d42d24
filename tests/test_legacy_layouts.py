"""Google's own CPR layouts run unchanged: ``setup(scripts=['predictor.py', ...])``, fresh or as an old sdist.

AI Platform installed a version's sdist and imported ``predictor`` although its ``setup.py`` listed
the modules only as ``scripts=``; modern setuptools refuses that folder ("Multiple top-level modules
discovered in a flat-layout"). Every door must answer what the predictor answers in-process:
``package``, ``local predict``, ``deploy`` (from the folder, or ``--origin``/``--package-uris`` of an
sdist that ``python setup.py sdist`` made years ago), the node's ``:predict`` and ``batch predict``.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cprsdk.cli import main
from cprsdk.node.client import NodeClient
from cprsdk.runtime.predictor import load_predictor
from cprsdk.storage import open_store
from cprsdk.testing import running_node
from helpers import PROJECTS, read_jsonl, run_python
from scenario import Project

TRAIN = """
import json, pickle
import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from preprocess import ZeroCenterer

features, labels = load_iris(return_X_y=True)
preprocessor = ZeroCenterer()
model = LogisticRegression(max_iter=1000).fit(preprocessor.preprocess(features), labels)
joblib.dump(model, "../model/model.joblib")
with open("../model/preprocessor.pkl", "wb") as f:
    pickle.dump(preprocessor, f)
with open("../instances.jsonl", "w") as f:
    f.writelines(json.dumps(row) + "\\n" for row in features[::30].tolist())
"""
CLASS = "predictor.MyPredictor"
# What `python setup.py sdist` wrote with the setuptools of AI Platform's days (the modules as scripts).
OLD_PKG_INFO = """Metadata-Version: 1.0
Name: legacy_cpr
Version: 0.1
Summary: UNKNOWN
Home-page: UNKNOWN
Author: UNKNOWN
Author-email: UNKNOWN
License: UNKNOWN
Description: UNKNOWN
Platform: UNKNOWN
"""


@pytest.fixture(autouse=True)
def _jobs_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture(scope="module", params=["legacy-scripts", "legacy-find-packages"])
def legacy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial's folder (code/ with setup.py, predictor.py, preprocess.py), its model/ trained beside it."""
    case: str = request.param
    root = tmp_path_factory.mktemp("legacy") / case
    code = root / "code"
    shutil.copytree(PROJECTS / "legacy-scripts", code)
    if case != "legacy-scripts":
        shutil.copytree(PROJECTS / case, code, dirs_exist_ok=True)
    (root / "model").mkdir()
    run_python(code, "-c", TRAIN)
    return root


def _in_process(root: Path, **kwargs: Any) -> list[Any]:
    predictor = load_predictor(CLASS, root / "model", paths=[root / "code"])
    return list(predictor.predict(read_jsonl(root / "instances.jsonl"), **kwargs))


def _old_sdist(root: Path, dest: Path) -> Path:
    """The sdist of code/ as old setuptools built it: PKG-INFO, setup.py, setup.cfg, egg-info, the scripts."""
    files = {"PKG-INFO": OLD_PKG_INFO, "setup.cfg": "[egg_info]\ntag_build = \ntag_date = 0\n\n",
             "legacy_cpr.egg-info/PKG-INFO": OLD_PKG_INFO, "legacy_cpr.egg-info/top_level.txt": "\n",
             "legacy_cpr.egg-info/dependency_links.txt": "\n",
             "legacy_cpr.egg-info/SOURCES.txt": "predictor.py\npreprocess.py\nsetup.py\n"}
    for name in ("setup.py", "predictor.py", "preprocess.py"):
        files[name] = (root / "code" / name).read_text()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tar:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"legacy_cpr-0.1/{name}")
            info.size, info.mtime, info.mode = len(data), 1_560_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return dest


def _stdout_json(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def _local_predict(root: Path, package: Path, capsys: pytest.CaptureFixture[str]) -> list[Any]:
    assert main(["local", "predict", "--package", str(package), "--model-dir", str(root / "model"),
                 "--prediction-class", CLASS, "--json-instances", str(root / "instances.jsonl")]) == 0
    return list(_stdout_json(capsys)["predictions"])


def _batch(registry: str, version: str, root: Path, out: Path) -> list[Any]:
    assert main(["batch", "predict", "--model", "iris", "--version", version, "--registry", registry,
                 "--input", str(root / "instances.jsonl"), "--output", str(out)]) == 0
    return [line["prediction"] for line in read_jsonl(out / "predictions" / "part-00000.jsonl")]


def test_the_tutorial_folder_packages_unchanged_and_predicts_as_in_process(
    legacy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    assert main(["package", str(legacy / "code"), "--prediction-class", CLASS, "--model-dir", str(legacy / "model"),
                 "--out", str(tmp_path / "dist"), "--report", str(report), "-q"]) == 0
    sdist = Path(capsys.readouterr().out.strip())
    assert sdist == tmp_path / "dist" / "legacy_cpr-0.1.tar.gz"
    data = json.loads(report.read_text())
    checks = {c["name"]: c["detail"] for c in data["checks"]}
    assert checks["prediction class"] == f"{CLASS} imports from legacy_cpr-0.1.tar.gz alone"
    assert checks["pickle references"].endswith("globals resolve (1 from the package, the rest from the runtime)")
    if legacy.name == "legacy-scripts":  # setuptools refuses to discover it: the report says so
        assert data["layout"] == "flat"
        assert "refused to discover the modules of this flat layout" in checks["layout"]
        assert "predictor, preprocess" in checks["layout"]
    else:  # find_packages() names the (no) packages: the modules are scripts only
        assert data["layout"] == "project" and "layout" not in checks
    assert not (legacy / "code" / "setup.cfg").exists()  # the user's folder is left as it was
    expected = _in_process(legacy)
    assert len(expected) == 5
    assert _local_predict(legacy, sdist, capsys) == expected
    assert _local_predict(legacy, legacy / "code", capsys) == expected


def test_an_old_sdist_deployed_from_storage_serves_on_the_node_and_in_batch(
    legacy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket_dir = tmp_path / "bucket"
    old = _old_sdist(legacy, bucket_dir / "staging" / "legacy_cpr-0.1.tar.gz")
    shutil.copytree(legacy / "model", bucket_dir / "model")
    bucket = f"file://{bucket_dir}"
    assert sorted(i.key for i in open_store(bucket).list()) == ["model/model.joblib", "model/preprocessor.pkl",
                                                                "staging/legacy_cpr-0.1.tar.gz"]
    registry = str(tmp_path / "registry")
    assert main(["deploy", "--model", "iris", "--version", "v1", "--registry", registry, "--origin", f"{bucket}/model",
                 "--package-uris", f"{bucket}/staging/{old.name}", "--prediction-class", CLASS,
                 "--runtime-version", "1.15", "--python-version", "3.7", "--format", "json"]) == 0
    assert _stdout_json(capsys)["manifest"]["packageUris"] == [f"{bucket}/staging/{old.name}"]
    assert main(["deploy", str(legacy / "code"), "--model", "iris", "--version", "v2", "--registry", registry,
                 "--prediction-class", CLASS, "--model-dir", str(legacy / "model"), "--format", "json"]) == 0
    capsys.readouterr()
    expected = _in_process(legacy)
    probabilities = _in_process(legacy, probabilities=True)
    with running_node(registry=registry, poll_interval=0.2) as node:
        for version in ("v1", "v2"):
            path = f"/v1/projects/p/models/iris/versions/{version}:predict"
            response = node.client.request("POST", path, {"instances": read_jsonl(legacy / "instances.jsonl")})
            assert response.status == 200, response.body
            assert response.body["predictions"] == expected
            response = node.client.request("POST", path, {"instances": read_jsonl(legacy / "instances.jsonl"),
                                                          "probabilities": True})
            assert np.allclose(response.body["predictions"], probabilities)
    for version in ("v1", "v2"):
        assert _batch(registry, version, legacy, tmp_path / f"out-{version}") == expected
    capsys.readouterr()
    assert _local_predict(legacy, old, capsys) == expected


def test_an_old_sdist_passes_the_checks_of_deploy_package(
    legacy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _old_sdist(legacy, tmp_path / "legacy_cpr-0.1.tar.gz")
    registry = str(tmp_path / "registry")
    assert main(["deploy", "--package", str(old), "--model", "iris", "--version", "v1", "--registry", registry,
                 "--prediction-class", CLASS, "--model-dir", str(legacy / "model"), "--format", "json"]) == 0
    manifest = _stdout_json(capsys)["manifest"]
    assert [p["path"] for p in manifest["packages"]] == ["legacy_cpr-0.1.tar.gz"]


def test_sklearn_externals_joblib_fails_package_with_its_real_cause_and_the_fix(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    src = project("legacy-joblib")
    assert main(["package", str(src), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("ERROR: ") == 1 and "could not run" not in err and "without an answer" not in err
    assert ("Importing module 'predictor' for prediction class 'predictor.MyPredictor' failed with ImportError: "
            "cannot import name 'joblib' from 'sklearn.externals' at predictor.py line 6: "
            "`from sklearn.externals import joblib`. sklearn.externals.joblib was removed in scikit-learn 0.23: "
            "write `import joblib` instead") in err
    assert not (src / "dist").exists()
    (src / "one.jsonl").write_text("[1, 2]\n")
    assert main(["local", "predict", "--package", str(src), "--model-dir", str(src / "model"),
                 "--prediction-class", CLASS, "--json-instances", str(src / "one.jsonl")]) == 1
    message = json.loads(capsys.readouterr().out)["error"]["message"]
    assert "ImportError: cannot import name 'joblib' from 'sklearn.externals' at predictor.py line 6" in message
    assert "write `import joblib` instead" in message
    token = "a-legacy-layouts-token-long-enough"
    with running_node(model_dir=src / "model", packages=[src], prediction_class=CLASS, admin_token=token) as node:
        version = NodeClient(node.url, token=token).request("GET", "/v1/projects/p/models/default/versions/v1").body
    assert version["state"] == "FAILED"
    assert "ImportError: cannot import name 'joblib' from 'sklearn.externals' at predictor.py line 6" in \
        version["errorMessage"]
    assert "write `import joblib` instead" in version["errorMessage"]


def test_python_2_syntax_is_named_with_its_line(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    src = project("ok")
    (src / "scaler.py").write_text((src / "scaler.py").read_text() + '\n\nprint "loaded"\n')
    assert main(["package", str(src), "-q"]) == 1  # a module that a pickle needs
    err = capsys.readouterr().err
    assert ("model/scaler.pkl needs scaler.Scaler, which cannot be loaded: SyntaxError: Missing parentheses in call "
            "to 'print'. Did you mean print(...)? at scaler.py line 12: `print \"loaded\"`. That is Python 2 syntax") \
        in err
    (src / "predictor.py").write_text('print "importing"\n' + (src / "predictor.py").read_text())
    assert main(["package", str(src), "-q"]) == 1  # the predictor's own module
    err = capsys.readouterr().err
    assert ("Importing module 'predictor' for prediction class 'predictor.MyPredictor' failed with SyntaxError: "
            "Missing parentheses in call to 'print'. Did you mean print(...)? at predictor.py line 1: "
            "`print \"importing\"`. That is Python 2 syntax") in err
