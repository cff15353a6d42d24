"""Installing packages the way a prediction node does, into content-addressed, verified folders.

A version's packages (sdists or wheels) are installed into one private folder that goes first on
the worker's ``sys.path``. The folder is keyed by the sha256 of the bytes that were verified (and
the interpreter's cache tag), never by a file name. Installing happens in a private staging
folder that is renamed into place, and writes a record of every installed file's sha256; a
folder whose files no longer match their record is moved aside and installed again, so a cache
entry that changed on disk is never used::

    <cache>/site/<key>/                      the installed files, plus .cprsdk-record.json
    <cache>/requirements/<key>/              unmet declared requirements, keyed by their set (see requirements)
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cprsdk.errors import BuildError, IntegrityError

__all__ = [
    "PackageFile",
    "cache_dir",
    "cached_site",
    "check_wheel_tags",
    "discard",
    "install_package",
    "install_wheel",
    "publish",
    "record_tree",
    "sha256_file",
    "site_key",
    "verify_tree",
]

log = logging.getLogger("cprsdk.install")
RECORD = ".cprsdk-record.json"
_SKIPPED_DIRS = {"__pycache__"}


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


@dataclass(frozen=True)
class PackageFile:
    """A package to install: a private file, the sha256 its bytes must have, and a prebuilt wheel."""

    path: Path
    sha256: str
    wheel: Path | None = None  # built by us from this sdist, in a private folder


# ---------------------------------------------------------------- records


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        for name in sorted(names):
            path = Path(folder, name)
            relative = path.relative_to(root).as_posix()
            if relative != RECORD:
                yield relative, path


def record_tree(root: Path) -> None:
    """Write the sha256 of every file under ``root`` to its record."""
    record = {relative: sha256_file(path) for relative, path in _files(root)}
    (root / RECORD).write_text(json.dumps(record, indent=0, sort_keys=True), encoding="utf-8")


def verify_tree(root: Path) -> str | None:
    """What changed under ``root`` since it was recorded (a sentence), or None when nothing did.

    Errors that say nothing about the files (too many open files, a failing disk) are raised as they
    are, so they are not taken for a changed install.
    """
    try:
        record = json.loads((root / RECORD).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return f"{root} has no readable install record"
    seen = set()
    for relative, path in _files(root):
        seen.add(relative)
        expected = record.get(relative)
        if expected is None:
            return f"{relative} was added to {root} after it was installed"
        if sha256_file(path) != expected:
            return f"{relative} in {root} changed after it was installed"
    missing = sorted(set(record) - seen)
    return f"{missing[0]} was removed from {root} after it was installed" if missing else None


def discard(folder: Path) -> None:
    """Move a cache entry out of the way (atomically), then delete it."""
    trash = folder.with_name(f"{folder.name}.discarded-{os.getpid()}-{os.urandom(3).hex()}")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def publish(staging: Path, final: Path) -> None:
    """Rename a finished staging folder into place; if another process won, keep theirs."""
    try:
        os.rename(staging, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------- installing


def _verified_bytes(package: PackageFile) -> bytes:
    data = package.path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != package.sha256:
        raise IntegrityError(f"{package.path.name} has sha256 {actual}, expected {package.sha256}; it was not "
                             "installed.", hint="The file changed after it was verified; fetch or build it again.")
    return data


def _safe_extract_tar(data: bytes, name: str, dest: Path) -> Path:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for info in tar.getmembers():
            target = PurePosixPath(info.name)
            if target.is_absolute() or ".." in target.parts or not (info.isfile() or info.isdir()):
                raise BuildError(f"{name} contains an unsafe member {info.name!r}; rebuild it.")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - Python builds without extraction filters
            tar.extractall(dest)
    roots = [p for p in dest.iterdir() if p.is_dir()]
    if len(roots) != 1:
        raise BuildError(f"{name} is not an sdist: expected one top-level folder.")
    return roots[0]


def _wheel_destination(parts: tuple[str, ...]) -> tuple[str, ...] | None:
    """Where a wheel member lands under the target (None: not installed), as a node installs it.

    ``*.data/purelib|platlib|data`` land beside the modules; a ``*.data/scripts/NAME.py`` (a
    module listed in ``setup(scripts=[...])``, as AI Platform's tutorials shipped ``predictor.py``)
    lands there too, so that it imports by its module name, as it did on AI Platform.
    """
    if not parts[0].endswith(".data"):
        return parts
    if len(parts) >= 3 and parts[1] in ("purelib", "platlib", "data"):
        return parts[2:]
    if len(parts) == 3 and parts[1] == "scripts" and parts[2].endswith(".py") and parts[2][:-3].isidentifier():
        return parts[2:]
    return None


def _is_script(parts: tuple[str, ...]) -> bool:
    return parts[0].endswith(".data") and parts[1:2] == ("scripts",)


def _unpack_wheel(source: Path | io.BytesIO, name: str, target: Path) -> None:
    with zipfile.ZipFile(source) as zf:
        members = [(PurePosixPath(info.filename), info) for info in zf.infolist() if not info.is_dir()]
        members.sort(key=lambda member: _is_script(member[0].parts))  # modules first: a script never replaces one
        for path, info in members:
            if ".." in path.parts or path.is_absolute():
                raise BuildError(f"{name} contains an unsafe path {info.filename!r}.")
            parts = _wheel_destination(path.parts) if path.parts else None
            if parts is None:
                continue
            dest = target.joinpath(*parts)
            if _is_script(path.parts) and dest.exists():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out)


def install_wheel(wheel: Path, target: Path) -> None:
    """Unpack a pure-Python wheel into ``target`` (its purelib/platlib data included)."""
    _unpack_wheel(wheel, wheel.name, target)


def check_wheel_tags(name: str) -> None:
    """Refuse a wheel this interpreter cannot run (named for another Python, ABI or platform)."""
    from packaging.tags import sys_tags
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    try:
        tags = parse_wheel_filename(name)[3]
    except InvalidWheelFilename as exc:
        raise BuildError(f"{name} is not named as a wheel is ({exc}).",
                         hint="Keep the name the build gave it: name-version-python-abi-platform.whl.") from None
    if tags.isdisjoint(sys_tags()):
        here = next(iter(sys_tags()))
        raise BuildError(
            f"{name} is built for {', '.join(sorted(str(t) for t in tags))}, which this Python ({here}) cannot run.",
            hint=f"Build the wheel with Python {sys.version_info.major}.{sys.version_info.minor} on this platform, "
                 "or deploy the sdist instead.",
        )


def install_package(package: PackageFile, target: Path) -> None:
    """Install one sdist or wheel into ``target`` from the bytes verified against its sha256."""
    from cprsdk.packaging.build import build_distribution, with_flat_layout

    name = package.path.name
    if package.wheel is not None:
        _verified_bytes(package)
        install_wheel(package.wheel, target)
        return
    if name.endswith(".whl"):
        check_wheel_tags(name)
        _unpack_wheel(io.BytesIO(_verified_bytes(package)), name, target)
        return
    if not name.endswith((".tar.gz", ".tgz")):
        raise BuildError(f"{name} is neither an sdist (.tar.gz) nor a wheel (.whl).",
                         hint="Build one with `cprsdk package`.")
    data = _verified_bytes(package)
    with tempfile.TemporaryDirectory(prefix="cprsdk-install-") as tmp:
        root = _safe_extract_tar(data, name, Path(tmp, "src"))
        wheel, declared = with_flat_layout(root, lambda: build_distribution(root, "wheel", Path(tmp, "wheel")))
        if declared:
            log.info("%s: setuptools refused its flat layout; installed with %s declared", name, ", ".join(declared))
        install_wheel(wheel, target)


def site_key(digests: Sequence[str]) -> str:
    key = hashlib.sha256(sys.implementation.cache_tag.encode())
    for digest in digests:
        key.update(b"\n" + digest.encode())
    return key.hexdigest()[:32]


def cached_site(
    digests: Sequence[str], fetch: Callable[[Path], Sequence[PackageFile]], *, root: Path | None = None
) -> tuple[Path, bool]:
    """The installed folder of the packages whose sha256 are ``digests`` (in order); (folder, was cached).

    ``fetch(folder)`` is called only when the folder must be (re)built: it puts the packages in
    the private ``folder`` and returns them, each with the sha256 it must have.
    """
    base = (root or cache_dir()) / "site"
    final = base / site_key(digests)
    if final.is_dir():
        problem = verify_tree(final)
        if problem is None:
            return final, True
        log.warning("%s; installing it again", problem)
        discard(final)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=final.name + ".staging-", dir=base))
    try:
        with tempfile.TemporaryDirectory(prefix=final.name + ".download-", dir=base) as download:
            packages = list(fetch(Path(download)))
            if [p.sha256 for p in packages] != list(digests):
                raise IntegrityError("The packages fetched for installation are not the ones asked for.")
            for package in packages:
                install_package(package, staging)
        record_tree(staging)
        publish(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final, False
