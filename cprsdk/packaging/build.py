"""Building distributions: PEP 517 builds through ``build``, and reproducible sdists.

:func:`build_sdist_and_wheel` builds the sdist, then the wheel from that sdist, in one backend
process; :func:`normalize_sdist` rewrites an sdist so its bytes depend only on file names and
contents (a fresh checkout has new mtimes, the same sdist).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal, TypeVar

from cprsdk.errors import BuildError

__all__ = ["SDIST_MTIME", "build_distribution", "build_sdist_and_wheel", "normalize_sdist", "refused_flat_layout",
           "tail", "with_flat_layout"]

T = TypeVar("T")

# Fixed member time for reproducible sdists (2000-01-01, safely after the zip epoch everywhere).
SDIST_MTIME = 946684800


def _capturing_runner(
    cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None
) -> None:
    env = dict(os.environ)
    env.update(extra_environ or {})
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd, output=proc.stdout)


def tail(text: bytes | str | None, lines: int = 15) -> str:
    if not text:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "\n".join(text.strip().splitlines()[-lines:])


# How setuptools (>= 61) refuses a flat layout it will not guess the modules of.
_FLAT_REFUSAL = "discovered in a flat-layout"


def _failure_output(text: bytes | str | None) -> str:
    """The end of a failed build's output; from setuptools' refusal of a flat layout on, when it is there."""
    output = tail(text, lines=400)
    at = output.find(_FLAT_REFUSAL)
    if at < 0:
        return tail(output)
    return output[output.rfind("\n", 0, at) + 1:]


def refused_flat_layout(error: BuildError) -> bool:
    """Whether ``error`` is setuptools refusing to discover the modules of a flat layout."""
    return _FLAT_REFUSAL in error.message


def with_flat_layout(source: Path, build: Callable[[], T]) -> tuple[T, tuple[str, ...]]:
    """``build()``; where setuptools refuses ``source``'s flat layout, declare its modules and build again.

    Returns what ``build`` returned, and the modules and packages declared (none when the first
    build worked). See :func:`cprsdk.packaging.layout.declare_flat_layout`.
    """
    from cprsdk.packaging.layout import declare_flat_layout

    try:
        return build(), ()
    except BuildError as exc:
        if not refused_flat_layout(exc):
            raise
    declared = declare_flat_layout(source)
    return build(), declared


def build_distribution(
    source: Path, kind: Literal["sdist", "wheel"], out_dir: Path, *, isolated: bool = False
) -> Path:
    """Build an sdist or wheel of ``source`` into ``out_dir`` through its PEP 517 backend."""
    import build
    import build.env

    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        if isolated:
            with build.env.DefaultIsolatedEnv() as env:
                builder = build.ProjectBuilder.from_isolated_env(env, source, runner=_capturing_runner)
                env.install(builder.build_system_requires)
                env.install(builder.get_requires_for_build(kind))
                return Path(builder.build(kind, out_dir))
        builder = build.ProjectBuilder(source, runner=_capturing_runner)
        # Only the static build-system requirements: asking the backend for dynamic ones costs a
        # process start, and a dynamic requirement that is missing fails the build with its name.
        missing = {chain for req in builder.build_system_requires for chain in build.check_dependency(req)}
        if missing:
            names = sorted(" -> ".join(chain) for chain in missing)
            raise BuildError(
                f"Building {source.name} needs {', '.join(names)}, which is not installed here.",
                hint=f"pip install {' '.join(sorted({chain[0] for chain in missing}))}, or pass --isolated.",
            )
        return Path(builder.build(kind, out_dir))
    except build.BuildBackendException as exc:
        inner = exc.exception
        output = getattr(inner, "output", None)
        raise BuildError(
            f"Building the {kind} of {source} failed: {exc}.\n{_failure_output(output)}".rstrip(),
            hint="Fix the build configuration (pyproject.toml or setup.py) shown above.",
        ) from None
    except build.BuildException as exc:
        raise BuildError(f"Cannot build {source}: {exc}.") from None


_BOTH = """
import importlib, json, os, sys, tarfile
job = json.loads(sys.argv[1])
sys.path[:0] = job["backend_path"]
module, _, attrs = job["backend"].partition(":")
backend = importlib.import_module(module)
for attr in filter(None, attrs.split(".")):
    backend = getattr(backend, attr)
os.chdir(job["source"])
sdist = os.path.join(job["out"], backend.build_sdist(job["out"]))
with tarfile.open(sdist) as tar:
    tar.extractall(job["unpack"], **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
os.chdir(os.path.join(job["unpack"], os.listdir(job["unpack"])[0]))
wheel = os.path.join(job["out"], backend.build_wheel(job["out"]))
with open(job["answer"], "w") as fh:
    json.dump([sdist, wheel], fh)
"""


def build_sdist_and_wheel(source: Path, out_dir: Path) -> tuple[Path, Path]:
    """Build the sdist, then the wheel from that sdist, in one backend process (no isolation).

    Two hook calls through ``build`` start two interpreters and import the backend twice; one
    process doing both halves the cost of the common case. Same backend, same hooks, same files.
    """
    import build

    from cprsdk.config import load_toml

    pyproject = source / "pyproject.toml"
    system = load_toml(pyproject).get("build-system", {}) if pyproject.is_file() else {}
    requires = system.get("requires", ["setuptools>=40.8.0"])
    missing = {chain for req in requires for chain in build.check_dependency(req)}
    if missing:
        raise BuildError(
            f"Building {source.name} needs {', '.join(sorted(' -> '.join(c) for c in missing))}, "
            "which is not installed here.",
            hint=f"pip install {' '.join(sorted({c[0] for c in missing}))}, or pass --isolated.",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / "unpacked", ignore_errors=True)  # left by an earlier attempt
    job = {"backend": system.get("build-backend", "setuptools.build_meta:__legacy__"),
           "backend_path": [str(source / p) for p in system.get("backend-path", [])],
           "source": str(source), "out": str(out_dir), "unpack": str(out_dir / "unpacked"),
           "answer": str(out_dir / "answer.json")}
    proc = subprocess.run([sys.executable, "-c", _BOTH, json.dumps(job)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    if proc.returncode:
        raise BuildError(f"Building {source} failed:\n{_failure_output(proc.stdout)}",
                         hint="Fix the build configuration (pyproject.toml or setup.py) shown above.")
    sdist, wheel = json.loads((out_dir / "answer.json").read_text())
    return Path(sdist), Path(wheel)


def _normal_mode(info: tarfile.TarInfo) -> int:
    if info.isdir():
        return 0o755
    return 0o755 if info.mode & 0o111 else 0o644


def normalize_sdist(path: Path) -> None:
    """Rewrite an sdist so that its bytes depend only on file names and contents."""
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    with tarfile.open(path, "r:gz") as tar:
        for info in tar.getmembers():
            data = tar.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
            members.append((info, data))
    members.sort(key=lambda item: item[0].name)
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as out:
        for info, data in members:
            info.mtime = SDIST_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = _normal_mode(info)
            info.pax_headers = {}
            out.addfile(info, io.BytesIO(data) if data is not None else None)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
