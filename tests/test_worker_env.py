"""Workers get the node's environment minus its secrets (cprsdk.runtime.child.worker_env)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from cprsdk.cli import main
from cprsdk.runtime.child import worker_env
from cprsdk.testing import free_port
from helpers import cprsdk_serve, http

ENV_PREDICTOR = '''
import os


class EnvPredictor:
    @classmethod
    def from_path(cls, model_dir):
        return cls()

    def predict(self, instances, **kwargs):
        return [dict(os.environ)]
'''


def test_a_workers_environment_lacks_the_token_path_and_secrets(tmp_path: Path) -> None:
    project = tmp_path / "envdump"
    (project / "model").mkdir(parents=True)
    (project / "model" / "weights.txt").write_text("x")
    (project / "envdump.py").write_text(ENV_PREDICTOR)
    token_file = tmp_path / "secrets" / "admin-token"
    token_file.parent.mkdir()
    token = secrets.token_urlsafe(24)
    token_file.write_text(token + "\n")
    env = {"CPRSDK_ADMIN_TOKEN_FILE": str(token_file), "TOKEN_LOCATION": str(token_file),
           "CPRSDK_ADMIN_TOKEN": token, "LEGACY_AUTH": f"Bearer {token}", "CPRSDK_REGISTRY_PASSWORD": "pw",
           "MODEL_FLAVOUR": "vanilla"}
    port = free_port()
    args = ["--port", str(port), "--model-dir", "model", "--package", ".", "--prediction-class",
            "envdump.EnvPredictor", "--admin-token-file", str(token_file)]
    with cprsdk_serve(args, port=port, log=tmp_path / "serve.log", cwd=project, env=env):
        answer = http(f"http://127.0.0.1:{port}", "POST", "/v1/projects/p/models/default:predict",
                      json.dumps({"instances": [1]}).encode())
    assert answer.status == 200, answer.data
    seen: dict[str, str] = answer.json()["predictions"][0]
    assert seen["MODEL_FLAVOUR"] == "vanilla" and "PATH" in seen  # the rest passes
    for name in ("CPRSDK_ADMIN_TOKEN_FILE", "TOKEN_LOCATION", "CPRSDK_ADMIN_TOKEN", "LEGACY_AUTH",
                 "CPRSDK_REGISTRY_PASSWORD"):
        assert name not in seen, name
    assert not [name for name, value in seen.items() if str(token_file) in value or token in value]


def test_worker_env_keeps_ordinary_variables() -> None:
    environ = {"HOME": "/home/u", "CPRSDK_CACHE_DIR": "/c", "CPRSDK_ADMIN_TOKEN_2": "t", "cprsdk_api_secret": "s",
               "GOOGLE_APPLICATION_CREDENTIALS": "/k.json"}
    passed = {"HOME": "/home/u", "CPRSDK_CACHE_DIR": "/c", "GOOGLE_APPLICATION_CREDENTIALS": "/k.json"}
    assert worker_env(environ) == passed


def test_a_local_batch_workers_environment_lacks_the_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "envdump"
    (project / "model").mkdir(parents=True)
    (project / "model" / "weights.txt").write_text("x")
    (project / "envdump.py").write_text(ENV_PREDICTOR)
    (tmp_path / "in.jsonl").write_text("1\n")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("CPRSDK_ADMIN_TOKEN", "a-secret")
    monkeypatch.setenv("MODEL_FLAVOUR", "vanilla")
    code = main(["batch", "predict", "--model-dir", str(project / "model"), "--package", str(project),
                 "--prediction-class", "envdump.EnvPredictor", "--input", str(tmp_path / "in.jsonl"),
                 "--output", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    line = (tmp_path / "out" / "predictions" / "part-00000.jsonl").read_text().splitlines()[0]
    seen = json.loads(line)["prediction"]
    assert seen["MODEL_FLAVOUR"] == "vanilla" and "CPRSDK_ADMIN_TOKEN" not in seen
