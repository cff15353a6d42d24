"""``cprsdk serve`` runs on uvloop when it is installed (uvicorn's loop setup, not ``asyncio.run``)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from cprsdk.testing import free_port
from helpers import cprsdk_serve, http, label_project


def test_cprsdk_serve_runs_on_uvloop_and_still_drains_on_sigterm(tmp_path: Path) -> None:
    project = label_project(tmp_path, "loop")
    port = free_port()
    log = tmp_path / "serve.log"
    with cprsdk_serve(["--port", str(port), "--model-dir", "model", "--package", ".",
                       "--prediction-class", "predictor.MyPredictor"], port=port, log=log, cwd=project) as proc:
        answer = http(f"http://127.0.0.1:{port}", "POST", "/v1/projects/p/models/default:predict",
                      json.dumps({"instances": [1, 2]}).encode(), timeout=30)
        assert answer.status == 200, answer.data
        assert json.loads(answer.data) == {"predictions": ["loop", "loop"]}
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "uvloop" in maps, "uvloop is not loaded in the node process"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    assert "event loop: uvloop.Loop" in log.read_text(), log.read_text()
