"""`cprsdk cache prune` and the cache bound: deleted versions go first, then the least recently used,
and nothing a running node uses is ever removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cprsdk.cli import main
from cprsdk.registry.registry import Registry
from cprsdk.runtime.cache import parse_size, prune
from cprsdk.testing import free_port
from helpers import cprsdk_serve, label_project


def _deploy(root: Path, registry: str, label: str, capsys: pytest.CaptureFixture[str]) -> None:
    project = label_project(root, label, name=label)
    (project / "model" / "weights.bin").write_bytes(os.urandom(300_000))
    assert main(["deploy", str(project), "--model", "m", "--version", label, "--registry", registry,
                 "--skip-load-check"]) == 0, capsys.readouterr().err
    capsys.readouterr()


def _resolve_in_a_child(registry: str, version: str, cache: Path) -> None:
    """Resolve a version into ``cache`` in another process, which then exits (so nothing holds it)."""
    code = ("import sys; from cprsdk.registry.registry import Registry; "
            "from cprsdk.runtime.resolved import resolve_registry_version; "
            "resolve_registry_version(Registry(sys.argv[1]), 'm', sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, registry, version], check=True,
                   env={**os.environ, "CPRSDK_CACHE_DIR": str(cache)})


def _prune(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["cache", "prune", *argv, "--format", "json"]) == 0, capsys.readouterr().err
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _entries(cache: Path) -> set[str]:
    return {f"{p.parent.name}/{p.name}" for kind in ("versions", "site") if (cache / kind).is_dir()
            for p in (cache / kind).iterdir() if p.is_dir()}


def test_prune_removes_deleted_versions_first_then_the_least_recently_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = str(tmp_path / "registry")
    cache = tmp_path / "cache"
    for label in ("old", "new"):
        _deploy(tmp_path / "src", registry, label, capsys)
    _resolve_in_a_child(registry, "old", cache)
    first = _entries(cache)
    time.sleep(0.05)
    _resolve_in_a_child(registry, "new", cache)
    second = _entries(cache) - first
    assert len(first) == 2 and len(second) == 2  # a model directory and an install each

    monkeypatch.setenv("CPRSDK_CACHE_DIR", str(cache))
    stale = time.time() - 86400
    for entry in second:  # "new" looks older, yet "old" goes first: it is no longer in the registry
        os.utime(cache / f"{entry}.inuse", (stale, stale))
        os.utime(cache / entry, (stale, stale))
    Registry(registry).set_default("m", "new")
    Registry(registry).delete_version("m", "old")
    assert _prune(capsys, "--max-size", "1TB")["removed"] == []  # under the bound: nothing to do

    bound = str(sum(_size(cache / entry) for entry in second))  # room for "new" alone
    dry = _prune(capsys, "--max-size", bound, "--registry", registry, "--dry-run")
    assert {Path(e["path"]).parent.name + "/" + Path(e["path"]).name for e in dry["removed"]} == first
    assert _entries(cache) == first | second  # a dry run removes nothing

    done = _prune(capsys, "--max-size", bound, "--registry", registry)
    assert all(e["inRegistry"] is False for e in done["removed"]) and done["freedBytes"] > 300_000
    assert _entries(cache) == second

    assert main(["cache", "prune", "--max-size", "0"]) == 0  # least recently used: the rest goes too
    out = capsys.readouterr()
    assert "removed" in out.out and "bytes freed" in out.err
    assert _entries(cache) == set()


def test_a_running_node_keeps_what_it_uses(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    registry = str(tmp_path / "registry")
    cache = tmp_path / "cache"
    _deploy(tmp_path / "src", registry, "served", capsys)
    monkeypatch.setenv("CPRSDK_CACHE_DIR", str(cache))
    port = free_port()
    with cprsdk_serve(["--registry", registry, "--port", str(port)], port=port, log=tmp_path / "serve.log",
                      env={"CPRSDK_CACHE_DIR": str(cache)}):
        used = _entries(cache)
        assert len(used) == 2
        held = _prune(capsys, "--max-size", "0")
        assert held["removed"] == [] and len(held["inUse"]) == 2
        assert _entries(cache) == used
    assert len(prune(cache, max_bytes=0).removed) == 2  # once the node is gone, nothing holds them
    assert _entries(cache) == set()


@pytest.mark.parametrize(("text", "size"), [("20GB", 20 * 10**9), ("500 MB", 500 * 10**6), ("1.5G", 1_500_000_000),
                                            ("0", 0), ("1234", 1234)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size
