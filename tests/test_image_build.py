"""`cprsdk image build`: the build context (always), and a real image run in Docker (where Docker runs).

The context tests need no Docker daemon. The image test builds the trained ZeroCenterer sample on
the debootstrap base that .ci/docker-setup imports (cprsdk-base:bookworm), offline, runs it with
``--network host`` on a free loopback port, compares a prediction with the in-process one, and
stops it with ``docker stop``, expecting exit code 0; then it rebuilds after a code-only change and
checks that Docker reused the dependency layers, printing both build times and the image size.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from cprsdk import load_predictor
from cprsdk.cli import main
from cprsdk.registry.registry import Registry
from cprsdk.testing import free_port
from helpers import answers_200, copy_built, http, read_jsonl, wait_until

BASE = "cprsdk-base:bookworm"
SKLEARN = f"scikit-learn=={metadata.version('scikit-learn')}"  # the version that pickled the model


def _local_build(sample: Path, *extra: str) -> list[str]:
    return ["image", "build", "--model", "zc", "--model-dir", str(sample / "model"), "--package", str(sample),
            "--prediction-class", "predictor.MyPredictor", "--requirement", SKLEARN, "--base", BASE, *extra]


def _layers(dockerfile: str) -> list[str]:
    return [line.split()[0] for line in dockerfile.splitlines() if line and not line.startswith("#")]


def test_context_from_local_files(trained_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    context = tmp_path / "ctx"
    assert main(_local_build(trained_sample, "--context-only", str(context), "--tag", "zc:1")) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(context)
    assert f"docker build --network none -t zc:1 {context}" in captured.err
    dockerfile = (context / "Dockerfile").read_text()
    assert dockerfile.startswith(f"FROM {BASE}\n")
    # base, then the wheelhouse in a layer of its own, cprsdk, the packages, the model, a non-root user
    order = [line for line in dockerfile.splitlines() if line.startswith(("COPY", "USER"))]
    assert [line.split()[1] for line in order] == ["wheelhouse/", "cprsdk/", "packages/", "entrypoint.sh", "model/",
                                                    "10001:10001"]
    assert "RUN pip install --no-index --find-links /opt/cprsdk/wheelhouse" in dockerfile
    assert {"HEALTHCHECK", "ENTRYPOINT", "LABEL"} <= set(_layers(dockerfile))
    assert 'dev.cprsdk.cprsdk-version="0.1.0"' in dockerfile
    requirements = (context / "wheelhouse" / "requirements.txt").read_text().splitlines()
    assert SKLEARN in requirements and any(r.startswith("uvicorn") for r in requirements)
    wheels = {p.name.split("-")[0].lower() for p in (context / "wheelhouse").glob("*.whl")}
    assert {"numpy", "scikit_learn", "scipy", "uvicorn", "google_cloud_storage"} <= wheels
    assert sorted(p.name for p in (context / "model").iterdir()) == sorted(
        p.name for p in (trained_sample / "model").iterdir())
    assert [p.name for p in (context / "packages").iterdir()] == ["00-zerocenterer_sklearn-0.1.tar.gz"]
    script = (context / "entrypoint.sh").read_text()
    assert 'if [ "${1:-}" = "serve" ]; then shift; fi' in script  # SageMaker's `serve` argument
    assert "--prediction-class predictor.MyPredictor" in script


def test_unchanged_wheelhouse_is_the_same_files(trained_sample: Path, tmp_path: Path) -> None:
    """Docker reuses the wheelhouse layer only if its files are the same: a second context gets the same bytes."""
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(_local_build(trained_sample, "--context-only", str(first))) == 0
    assert main(_local_build(trained_sample, "--context-only", str(second))) == 0
    for wheel in (first / "wheelhouse").iterdir():
        assert (second / "wheelhouse" / wheel.name).read_bytes() == wheel.read_bytes()
    assert sorted(p.name for p in (first / "wheelhouse").iterdir()) == sorted(
        p.name for p in (second / "wheelhouse").iterdir())
    (wheel_a,), (wheel_b,) = (first / "cprsdk").iterdir(), (second / "cprsdk").iterdir()
    assert wheel_a.read_bytes() == wheel_b.read_bytes()  # cprsdk's own wheel is reproducible too


def test_context_from_a_registry_version_fetches_the_model_at_start(
        trained_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = (tmp_path / "registry").as_uri()
    assert main(["deploy", str(trained_sample), "--model", "iris", "--version", "v1", "--registry", registry]) == 0
    digest = Registry(registry).get_version("iris", "v1").digest
    context = tmp_path / "ctx"
    assert main(["image", "build", "--model", "iris", "--version", "v1", "--registry", registry,
                 "--requirement", SKLEARN, "--context-only", str(context)]) == 0
    dockerfile = (context / "Dockerfile").read_text()
    assert f'dev.cprsdk.digest="{digest}"' in dockerfile
    assert f'CPRSDK_IMAGE_REGISTRY="{registry}"' in dockerfile
    assert "COPY model/" not in dockerfile and not (context / "model").exists()
    assert dockerfile.startswith("FROM python:3.11-slim\n")
    capsys.readouterr()


def test_build_needs_a_version_or_local_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["image", "build", "--context-only", str(tmp_path / "ctx")]) == 1
    assert "needs --model" in capsys.readouterr().err


# ------------------------------------------------------------------ a real image


def _docker_runs() -> str | None:
    """None when a Docker daemon answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker command"
    proc = subprocess.run(["docker", "info"], capture_output=True, text=True)
    return None if proc.returncode == 0 else f"docker info failed: {proc.stderr.strip()[-200:]}"


@pytest.fixture
def docker() -> Iterator[None]:
    reason = _docker_runs()
    if reason is not None:
        print(f"SKIPPED: Docker cannot run here ({reason}); .ci/docker-setup installs and starts it")
        pytest.skip(f"Docker cannot run here: {reason}")
    if subprocess.run(["docker", "image", "inspect", BASE], capture_output=True).returncode:
        pytest.fail(f"Docker runs but the base image {BASE} is missing: run .ci/docker-setup first.")
    yield


def _built_image(argv: list[str], tag: str, capsys: pytest.CaptureFixture[str], *, log: list[str] | None = None
                 ) -> dict[str, str]:
    """``cprsdk image build ARGV --tag TAG``'s JSON line; its stderr lines go into ``log``."""
    code = main([*argv, "--tag", tag])
    out, error = capsys.readouterr()
    assert code == 0, error
    if log is not None:
        log.extend(error.splitlines())
    built: dict[str, str] = json.loads(out)
    return built


@pytest.fixture
def image_registry(tmp_path: Path) -> Iterator[str]:
    """A Docker registry (Debian's docker-registry, .ci/docker-setup installs it) on a free loopback port."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed: run .ci/docker-setup first.")
    address = f"127.0.0.1:{free_port()}"
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'blobs'}\n"
                      f"http:\n  addr: {address}\n")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: answers_200(f"http://{address}", "/v2/"), timeout=30, what="the image registry")
        yield address
    finally:
        proc.terminate()
        proc.wait(10)


def _run(tag: str, name: str, env: dict[str, str], mounts: tuple[Path, ...] = ()) -> None:
    """``docker run -d`` on the host's network, bound to 127.0.0.1; ``mounts`` read-only at the same paths."""
    args = [arg for key, value in {"CPRSDK_HOST": "127.0.0.1", **env}.items() for arg in ("-e", f"{key}={value}")]
    volumes = [arg for path in mounts for arg in ("-v", f"{path}:{path}:ro")]
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", *volumes, *args, tag], check=True,
                   capture_output=True)


def _stop(name: str) -> str:
    """``docker stop`` (SIGTERM, 30 s grace); the container's exit code."""
    start = time.monotonic()
    subprocess.run(["docker", "stop", "-t", "30", name], check=True, capture_output=True)
    assert time.monotonic() - start < 30
    return subprocess.run(["docker", "inspect", "--format", "{{.State.ExitCode}}", name],
                          capture_output=True, text=True, check=True).stdout.strip()


def _check_pushed(tag: str, digest: str, log: list[str]) -> None:
    """The registry holds ``tag`` with ``digest``; the build and the push each showed their steps."""
    address, _, rest = tag.partition("/")
    name, _, reference = rest.partition(":")
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    answer = http(f"http://{address}", "HEAD", f"/v2/{name}/manifests/{reference}", None, accept)
    assert answer.headers.get("docker-content-digest") == digest
    steps = [line for line in log if line.startswith("build ")]
    assert steps and steps[0].startswith("build 1/") and "FROM" in steps[0], log
    assert any(line.startswith("push ") for line in log), log
    assert f"pushed as {digest}" in log[-1]


def test_push_needs_a_tag_that_names_a_registry(trained_sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*_local_build(trained_sample), "--tag", "zc:v1", "--push"]) == 1
    error = capsys.readouterr().err
    assert "--push needs --tag naming a registry, got 'zc:v1'" in error and "127.0.0.1:5000/iris:v1" in error


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("docker")
def test_image_serves_the_sample_and_stops_cleanly(trained_sample: Path, tmp_path: Path, image_registry: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    tag = f"cprsdk-test-zc:{int(time.time())}"
    port = free_port()
    name = f"cprsdk-test-{port}"
    try:
        start = time.monotonic()
        built = _built_image(_local_build(trained_sample), tag, capsys)
        first_build = time.monotonic() - start
        assert built["tag"] == tag and built["id"].startswith("sha256:") and int(built["size"]) > 0
        _run(tag, name, {"CPRSDK_PORT": str(port)})
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers_200(base, "/readyz"), timeout=120, what="the container to be ready")
        instances = read_jsonl(trained_sample / "sample.jsonl")
        in_process = load_predictor("predictor.MyPredictor", trained_sample / "model", paths=[trained_sample])
        body = json.dumps({"instances": instances}).encode()
        answer = http(base, "POST", "/v1/models/zc:predict", body, {"Content-Type": "application/json"})
        assert answer.json()["predictions"] == in_process.predict(instances)
        user = subprocess.run(["docker", "exec", name, "id", "-u"], capture_output=True, text=True).stdout.strip()
        assert user == "10001"
        assert _stop(name) == "0"
        pushed_as = f"{image_registry}/cprsdk-test-zc:code-{port}"
        _rebuild_code_only(trained_sample, tmp_path, tag, first_build, capsys, pushed_as=pushed_as)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", tag, pushed_as], capture_output=True)


def _image_layers(tag: str) -> list[str]:
    """The image's layer diff IDs, base first (``docker image inspect .RootFS.Layers``)."""
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", tag],
                         capture_output=True, text=True, check=True).stdout
    layers: list[str] = json.loads(out)
    return layers


# After the base's layers, the classic builder adds one layer per RUN and COPY: the venv and user, the
# wheelhouse, its pip install, cprsdk's wheel, its install, then the packages (the predictor's code).
# The classic builder takes the newest cached child that matches, so a build of the same steps by
# someone else on the same daemon between our two builds can hand the rebuild their (equal) layers.
_BEFORE_PACKAGES = 5


def _rebuild_code_only(sample: Path, tmp_path: Path, tag: str, first_build: float,
                       capsys: pytest.CaptureFixture[str], *, pushed_as: str) -> None:
    """A copy of ``sample`` with one harmless constant changed in predictor.py, rebuilt as ``pushed_as`` and
    pushed there: every layer up to the packages is the first image's own, the packages layer is new."""
    changed = copy_built(sample, tmp_path / "changed")
    predictor = changed / "predictor.py"
    predictor.write_text(predictor.read_text() + '\nBUILD_NOTE = "a code-only change"\n')
    start = time.monotonic()
    log: list[str] = []
    rebuilt = _built_image(_local_build(changed, "--push"), pushed_as, capsys, log=log)
    rebuild = time.monotonic() - start
    _check_pushed(pushed_as, rebuilt["digest"], log)
    base = len(_image_layers(BASE))
    first, second = _image_layers(tag), _image_layers(pushed_as)
    packages = base + _BEFORE_PACKAGES
    assert first[:packages] == second[:packages], "the dependency (wheelhouse) layers were rebuilt"
    assert first[packages] != second[packages], "the packages layer should hold the changed code"
    with capsys.disabled():
        print(f"\nimage build: first {first_build:.1f} s, code-only rebuild {rebuild:.1f} s, "
              f"image {int(rebuilt['size']) / 1e6:.0f} MB, {packages} of {len(second)} layers reused")


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("docker")
def test_registry_image_fetches_its_version_at_start(trained_sample: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Not baked: the container fetches the version's model from the registry (mounted here), verified; or,
    run as Vertex AI runs it, downloads AIP_STORAGE_URI and serves on AIP_HTTP_PORT and the AIP routes."""
    registry = tmp_path / "registry"
    assert main(["deploy", str(trained_sample), "--model", "iris", "--version", "v1", "--registry", str(registry)]) == 0
    capsys.readouterr()
    tag = f"cprsdk-test-iris:{int(time.time())}"
    instances = read_jsonl(trained_sample / "sample.jsonl")[:3]
    expected = load_predictor("predictor.MyPredictor", trained_sample / "model", paths=[trained_sample]).predict(
        instances)
    body = json.dumps({"instances": instances}).encode()
    port = free_port()
    names = [f"cprsdk-test-{port}", f"cprsdk-test-{port}-vertex"]
    try:
        _built_image(["image", "build", "--model", "iris", "--version", "v1", "--registry", str(registry),
                      "--requirement", SKLEARN, "--base", BASE], tag, capsys)
        _run(tag, names[0], {"CPRSDK_PORT": str(port)}, (registry,))
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers_200(base, "/readyz"), timeout=120, what="the container to be ready")
        assert http(base, "POST", "/invocations", body).json()["predictions"] == expected  # SageMaker's route
        assert _stop(names[0]) == "0"
        # as Vertex AI runs it: its port and routes, and the model from AIP_STORAGE_URI
        vertex = {"AIP_HTTP_PORT": str(port), "AIP_PREDICT_ROUTE": "/predict", "AIP_HEALTH_ROUTE": "/health",
                  "AIP_STORAGE_URI": str(trained_sample / "model")}
        _run(tag, names[1], vertex, (trained_sample / "model",))
        wait_until(lambda: answers_200(base, "/health"), timeout=120, what="the Vertex AI health route")
        assert http(base, "POST", "/predict", body).json()["predictions"] == expected
        assert _stop(names[1]) == "0"
    finally:
        for name in names:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
