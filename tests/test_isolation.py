"""One version, one resolution: two versions that differ only in their code never serve each other's.

The twins below have identical model files and the same distribution name and version (so the same
sdist file name, ``twin-0.1.tar.gz``); only ``predictor.py`` differs. Every path that runs a version
(the node over a registry, batch jobs, ``serve --model-dir``, ``local predict``) must answer with
each version's own code, with a fresh cache and with a kept one; a changed installed file is
never served.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cprsdk.cli import main
from cprsdk.config import load_settings
from cprsdk.packaging.install import verify_tree
from cprsdk.registry.registry import Registry
from cprsdk.runtime.local import local_predict
from cprsdk.runtime.resolved import resolve_registry_version
from cprsdk.testing import running_node

PREDICTOR = '''
import os
from pathlib import Path

CODE = "{code}"


class Twin:
    @classmethod
    def from_path(cls, model_dir):
        self = cls()
        self.weights = Path(model_dir, "weights.txt").read_text().strip()
        return self

    def predict(self, instances, **kwargs):
        if "crash" in instances:
            os._exit(3)
        return [f"{{CODE}}:{{self.weights}}:{{x}}" for x in instances]
'''
CODES = {"va": "code-A", "vb": "code-B"}
STARTS = 20


def _twin(root: Path, code: str) -> Path:
    project = root / code
    (project / "model").mkdir(parents=True)
    (project / "model" / "weights.txt").write_text("same-weights\n")
    (project / "predictor.py").write_text(PREDICTOR.format(code=code))
    (project / "cprsdk.toml").write_text('name = "twin"\nversion = "0.1"\nprediction_class = "predictor.Twin"\n')
    return project


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("twins")
    return {version: _twin(root, code) for version, code in CODES.items()}


@pytest.fixture(scope="module")
def twin_registry(twins: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    registry = str(tmp_path_factory.mktemp("twin-registry") / "registry")
    for version, project in twins.items():
        assert main(["deploy", str(project), "--model", "twin", "--version", version, "--registry", registry,
                     "--format", "json"]) == 0
    manifests = [Registry(registry).get_version("twin", v) for v in CODES]
    assert manifests[0].files == manifests[1].files  # identical model files ...
    assert [p.path for p in manifests[0].packages] == [p.path for p in manifests[1].packages] == ["twin-0.1.tar.gz"]
    assert manifests[0].packages[0].sha256 != manifests[1].packages[0].sha256  # ... different code
    return registry


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CPRSDK_CACHE_DIR", str(folder))
    yield folder


def _answers(node_client: object, version: str) -> list[object]:
    response = node_client.request(  # type: ignore[attr-defined]
        "POST", f"/v1/projects/p/models/twin/versions/{version}:predict", {"instances": [1, 2]})
    assert response.status == 200, response.body
    return list(response.body["predictions"])


def _expected(version: str) -> list[str]:
    return [f"{CODES[version]}:same-weights:{x}" for x in (1, 2)]


@pytest.mark.parametrize("keep_cache", [False, True], ids=["fresh-cache", "kept-cache"])
def test_each_version_answers_with_its_own_code_on_every_node_start(
    twin_registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_cache: bool
) -> None:
    for start in range(STARTS):
        cache = tmp_path / ("cache" if keep_cache else f"cache{start}")
        monkeypatch.setenv("CPRSDK_CACHE_DIR", str(cache))
        with running_node(registry=twin_registry, poll_interval=0.2) as node:
            for version in CODES:
                assert _answers(node.client, version) == _expected(version), f"start {start}, {version}"
    if keep_cache:
        assert len(list((tmp_path / "cache" / "site").glob("*.requirements"))) == 0
        assert len([p for p in (tmp_path / "cache" / "site").iterdir() if p.is_dir()]) == 2


def _batch(registry: str, version: str, data: Path, out: Path) -> list[object]:
    assert main(["batch", "predict", "--model", "twin", "--version", version, "--registry", registry,
                 "--input", str(data), "--output", str(out)]) == 0
    lines = (out / "predictions" / "part-00000.jsonl").read_text().splitlines()
    return [json.loads(line)["prediction"] for line in lines]


@pytest.mark.parametrize("keep_cache", [False, True], ids=["fresh-cache", "kept-cache"])
def test_batch_jobs_run_each_versions_own_code(
    twin_registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_cache: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text("1\n2\n")
    for round_ in range(2):
        for version in CODES:
            cache = tmp_path / ("cache" if keep_cache else f"cache-{round_}-{version}")
            monkeypatch.setenv("CPRSDK_CACHE_DIR", str(cache))
            assert _batch(twin_registry, version, data, tmp_path / f"out-{round_}-{version}") == _expected(version)
    capsys.readouterr()


def test_one_worker_process_switching_versions_forgets_the_other_versions_modules(
    twin_registry: str, cache: Path
) -> None:
    """A long-lived (Dask) worker scores shards of both versions in turn: each with its own predictor.py."""
    from cprsdk.batch.jobs import JobSpec
    from cprsdk.batch.scoring import score_shard

    registry = Registry(twin_registry)
    for version in [*CODES, *CODES]:
        spec = JobSpec(inputs=("x",), output="y", version=resolve_registry_version(registry, "twin", version))
        shard = score_shard(spec.worker_payload(), [{"ref": "x:1", "line": "1"}, {"ref": "x:2", "line": "2"}])
        predictions = [json.loads(line)["prediction"] for line in shard["predictions"].decode().splitlines()]
        assert predictions == _expected(version)


def test_serve_model_dir_with_two_packages_of_one_name(twins: dict[str, Path], cache: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    sdists = {}
    for version, project in twins.items():
        assert main(["package", str(project), "--out", str(tmp_path / version), "-q"]) == 0
        sdists[version] = Path(capsys.readouterr().out.strip())
    assert sdists["va"].name == sdists["vb"].name == "twin-0.1.tar.gz"
    model_dir = twins["va"] / "model"
    with running_node(model_dir=model_dir, packages=[sdists["va"]], prediction_class="predictor.Twin",
                      model="twin", version="va") as node_a, \
         running_node(model_dir=model_dir, packages=[sdists["vb"]], prediction_class="predictor.Twin",
                      model="twin", version="vb") as node_b:
        for _ in range(3):
            assert _answers(node_a.client, "va") == _expected("va")
            assert _answers(node_b.client, "vb") == _expected("vb")
    for version, project in twins.items():  # source folders, as `serve --package .` builds them
        with running_node(model_dir=model_dir, packages=[project], prediction_class="predictor.Twin",
                          model="twin", version=version) as node:
            assert _answers(node.client, version) == _expected(version)


def test_local_predict_runs_each_folders_own_code(twins: dict[str, Path], cache: Path) -> None:
    for _ in range(2):
        for version, project in twins.items():
            settings = load_settings(project, {"model_dir": str(project / "model"), "packages": [str(project)]})
            result = local_predict(settings, {"instances": [1, 2]})
            assert result.ok and result.body["predictions"] == _expected(version)


def _site_of(cache: Path, version: str) -> Path:
    for site in (cache / "site").iterdir():
        module = site / "predictor.py"
        if site.is_dir() and module.is_file() and CODES[version] in module.read_text():
            return site
    raise AssertionError(f"no installed folder of {version} in {cache}")


def test_a_changed_installed_module_is_reinstalled_never_served(twin_registry: str, cache: Path) -> None:
    with running_node(registry=twin_registry, poll_interval=0.2) as node:
        assert _answers(node.client, "va") == _expected("va")
    installed = _site_of(cache, "va") / "predictor.py"
    installed.write_text(installed.read_text().replace('"code-A"', '"TAMPERED"'))
    assert verify_tree(installed.parent) == f"predictor.py in {installed.parent} changed after it was installed"
    with running_node(registry=twin_registry, poll_interval=0.2) as node:
        assert _answers(node.client, "va") == _expected("va")
    assert '"code-A"' in installed.read_text()  # installed again from the verified package


def test_a_module_changed_under_a_running_node_never_reaches_a_replacement_worker(
    twin_registry: str, cache: Path
) -> None:
    with running_node(registry=twin_registry, poll_interval=0.2) as node:
        assert _answers(node.client, "va") == _expected("va")
        installed = _site_of(cache, "va") / "predictor.py"
        installed.write_text(installed.read_text().replace('"code-A"', '"TAMPERED"'))
        crashed = node.client.request("POST", "/v1/projects/p/models/twin/versions/va:predict",
                                      {"instances": ["crash"]})
        assert crashed.status == 500
        for _ in range(20):  # the replacement worker refuses to start on changed code
            response = node.client.request("POST", "/v1/projects/p/models/twin/versions/va:predict",
                                           {"instances": [1]})
            assert "TAMPERED" not in json.dumps(response.body)
            assert response.status == 503
        assert _answers(node.client, "vb") == _expected("vb")  # the other version is untouched
    assert os.path.exists(installed)
