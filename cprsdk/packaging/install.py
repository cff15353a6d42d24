"""Building sdists and installing them the way a prediction node does.

A node installs each package of a version into a private folder: the sdist is built into a wheel
(PEP 517, no isolated environment, so no index is needed) and the wheel's files are unpacked into
the folder, which then goes first on the worker's ``sys.path``. Installed folders are cached by
the sha256 of their sdists, so a second run or a second node with the same cache does not redo it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Literal

from cprsdk.errors import BuildError

__all__ = [
    "SDIST_MTIME",
    "build_distribution",
    "build_sdist_and_wheel",
    "install_wheel",
    "cache_dir",
    "cached_site",
    "install_sdist",
    "normalize_sdist",
    "sha256_file",
]

# Fixed member time for reproducible sdists (2000-01-01, safely after the zip epoch everywhere).
SDIST_MTIME = 946684800


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir() -> Path:
    """cprsdk's cache: ``$CPRSDK_CACHE_DIR``, else ``$XDG_CACHE_HOME/cprsdk``, else ``~/.cache/cprsdk``."""
    if os.environ.get("CPRSDK_CACHE_DIR"):
        return Path(os.environ["CPRSDK_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cprsdk"


def _capturing_runner(
    cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None
) -> None:
    env = dict(os.environ)
    env.update(extra_environ or {})
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd, output=proc.stdout)


def _tail(text: bytes | str | None, lines: int = 15) -> str:
    if not text:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "\n".join(text.strip().splitlines()[-lines:])


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
            f"Building the {kind} of {source} failed: {exc}.\n{_tail(output)}".rstrip(),
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
    job = {"backend": system.get("build-backend", "setuptools.build_meta:__legacy__"),
           "backend_path": [str(source / p) for p in system.get("backend-path", [])],
           "source": str(source), "out": str(out_dir), "unpack": str(out_dir / "unpacked"),
           "answer": str(out_dir / "answer.json")}
    proc = subprocess.run([sys.executable, "-c", _BOTH, json.dumps(job)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    if proc.returncode:
        raise BuildError(f"Building {source} failed:\n{_tail(proc.stdout)}",
                         hint="Fix the build configuration (pyproject.toml or setup.py) shown above.")
    sdist, wheel = json.loads((out_dir / "answer.json").read_text())
    return Path(sdist), Path(wheel)


def install_wheel(wheel: Path, target: Path) -> None:
    """Unpack a pure-Python wheel into ``target`` (its purelib/platlib data included)."""
    _unpack_wheel(wheel, target)


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
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as out:
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


def _safe_extract_tar(archive: Path, dest: Path) -> Path:
    with tarfile.open(archive, "r:*") as tar:
        for info in tar.getmembers():
            target = PurePosixPath(info.name)
            if target.is_absolute() or ".." in target.parts or not (info.isfile() or info.isdir()):
                raise BuildError(f"{archive.name} contains an unsafe member {info.name!r}; rebuild it.")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - Python builds without extraction filters
            tar.extractall(dest)
    roots = [p for p in dest.iterdir() if p.is_dir()]
    if len(roots) != 1:
        raise BuildError(f"{archive.name} is not an sdist: expected one top-level folder.")
    return roots[0]


def _unpack_wheel(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts
            if not parts or info.is_dir():
                continue
            if parts[0].endswith(".data"):  # data files land beside the modules, like purelib
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib", "data"):
                    continue
                parts = parts[2:]
            if ".." in parts or PurePosixPath(info.filename).is_absolute():
                raise BuildError(f"{wheel.name} contains an unsafe path {info.filename!r}.")
            dest = target.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out)


def install_sdist(sdist: Path, target: Path) -> None:
    """Build ``sdist`` into a wheel and unpack it into ``target``."""
    if not sdist.name.endswith((".tar.gz", ".tgz")):
        raise BuildError(f"{sdist} is not an sdist (.tar.gz).", hint="Build one with `cprsdk package`.")
    with tempfile.TemporaryDirectory(prefix="cprsdk-install-") as tmp:
        root = _safe_extract_tar(sdist, Path(tmp, "src"))
        wheel = build_distribution(root, "wheel", Path(tmp, "wheel"))
        _unpack_wheel(wheel, target)


def cached_site(
    sdists: Sequence[Path], *, root: Path | None = None, wheels: Mapping[Path, Path] | None = None
) -> tuple[Path, bool]:
    """Install ``sdists`` (in order) into a cached folder keyed by their sha256; (folder, was cached).

    ``wheels`` maps an sdist to the wheel already built from it, which is then unpacked directly.
    """
    key = hashlib.sha256()
    key.update(sys.implementation.cache_tag.encode())
    for sdist in sdists:
        key.update(sha256_file(sdist).encode())
    base = (root or cache_dir()) / "site"
    final = base / key.hexdigest()[:32]
    if final.is_dir():
        return final, True
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=base))
    try:
        for sdist in sdists:
            if wheels and sdist in wheels:
                install_wheel(wheels[sdist], staging)
            else:
                install_sdist(sdist, staging)
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final, False
