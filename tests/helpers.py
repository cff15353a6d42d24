"""Helpers shared by the test modules (a plain module: tests/conftest.py puts tests/ on sys.path).

Fixtures live in the plugins that conftest.py registers (servers.py, scenario.py, registries.py);
what several test modules call lives here: copying the samples and test projects, running their
scripts, small inputs (PNG images, JSON lines), waiting, plain HTTP, and `cprsdk serve` as a
subprocess. A free port comes from ``cprsdk.testing.free_port``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SAMPLES = REPO / "samples"
PROJECTS = TESTS / "projects"
# What a sample's train.py writes, and what a checkout may hold from earlier runs: never copied.
_NOT_COPIED = ("model", "dist", "build", "inputs", "sample.jsonl", "__pycache__", "*.egg-info", "*.pyc")


# ---------------------------------------------------------------- projects and samples


def copy_project(name: str, dest: Path) -> Path:
    """A copy of tests/projects/<name> at ``dest``."""
    shutil.copytree(PROJECTS / name, dest)
    return dest


def copy_sample(name: str, dest: Path) -> Path:
    """A copy of samples/<name> at ``dest``, without anything its train.py writes."""
    shutil.copytree(SAMPLES / name, dest, ignore=shutil.ignore_patterns(*_NOT_COPIED))
    return dest


def copy_built(src: Path, dest: Path) -> Path:
    """A copy of a trained project at ``dest``, without the sdists it has built (dist/)."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("dist"))
    return dest


def run_python(cwd: Path, *argv: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python ARGV`` in ``cwd``; fails the test, showing its output, unless it exits 0."""
    proc = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def train(project: Path, env: Mapping[str, str] | None = None) -> None:
    """Run the project's train.py in its folder (it writes model/ and the sample inputs)."""
    run_python(project, "train.py", env=env)


def read_jsonl(path: Path) -> list[Any]:
    """One JSON value per line of ``path``."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def png(colour: tuple[int, int, int], size: tuple[int, int] = (20, 20), fmt: str = "PNG") -> bytes:
    """An image of one colour, encoded by Pillow (PNG unless ``fmt`` says otherwise)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format=fmt)
    return out.getvalue()


def anonymous_credentials() -> Any:
    """google-auth's AnonymousCredentials, for the emulator and the node (google-auth leaves it untyped)."""
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()  # type: ignore[no-untyped-call]


# ---------------------------------------------------------------- waiting and HTTP


def wait_until(predicate: Callable[[], object], timeout: float = 60, interval: float = 0.05,
               what: str = "the condition") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(interval)


@dataclass(frozen=True)
class Answer:
    status: int
    data: bytes
    headers: dict[str, str]  # names in lower case

    def json(self, empty: Any = None) -> Any:
        """The body parsed as JSON; ``empty`` when there is no body."""
        return json.loads(self.data) if self.data else empty


def http(base_url: str, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None,
         *, chunked: bool = False, timeout: float = 60) -> Answer:
    """One request over a fresh connection to ``base_url`` (``http://host:port``); JSON unless told otherwise.

    With ``chunked``, the body goes in 64 KiB chunks with no Content-Length.
    """
    where = urlsplit(base_url)
    conn = HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=timeout)
    sent = {"Content-Type": "application/json", **(headers or {})}
    try:
        if chunked:
            conn.putrequest(method, path)
            for name, value in {**sent, "Transfer-Encoding": "chunked"}.items():
                conn.putheader(name, value)
            conn.endheaders()
            data = body or b""
            for start in range(0, len(data), 65536):
                piece = data[start:start + 65536]
                conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
        else:
            conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        return Answer(response.status, response.read(), {k.lower(): v for k, v in response.getheaders()})
    finally:
        conn.close()


def answers_200(base_url: str, path: str) -> bool:
    """Whether GET ``path`` answers 200 now (False while nothing listens)."""
    try:
        return http(base_url, "GET", path, timeout=30).status == 200
    except OSError:
        return False


@contextlib.contextmanager
def cprsdk_serve(args: Sequence[str], *, port: int, log: Path, ready_path: str = "/readyz",
                 cwd: Path | None = None, env: Mapping[str, str] | None = None,
                 timeout: float = 60) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m cprsdk serve ARGS`` as a subprocess, its stderr in ``log``, once GET ``ready_path`` is 200.

    It listens on ``port`` (pass ``--port`` in ``args`` or set AIP_HTTP_PORT in ``env``). It leads a
    process group of its own (``os.killpg(proc.pid, ...)`` reaches its workers too); at the end the
    whole group is killed if the server still runs.
    """
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "cprsdk", "serve", *args], cwd=cwd, env=full_env,
                                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not answers_200(f"http://127.0.0.1:{port}", ready_path):
            assert proc.poll() is None, f"cprsdk serve exited with {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{ready_path} never answered 200:\n{log.read_text()}"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


LABEL_PREDICTOR = '''
class MyPredictor:
    @classmethod
    def from_path(cls, model_dir):
        return cls()

    def predict(self, instances, **kwargs):
        return ["{label}" for _ in instances]
'''


def label_project(root: Path, label: str, *, folder: str | None = None, name: str | None = None) -> Path:
    """A bare project (in ``root/folder``) whose predictor answers ``label`` for every instance."""
    project = root / (folder or label)
    (project / "model").mkdir(parents=True)
    (project / "model" / "weights.txt").write_text(label)
    (project / "predictor.py").write_text(LABEL_PREDICTOR.format(label=label))
    toml = f'name = "{name or label}"\nprediction_class = "predictor.MyPredictor"\n'
    (project / "cprsdk.toml").write_text(toml)
    return project

