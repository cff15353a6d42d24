"""The version and install caches, bounded by size.

Under the cache folder (:func:`cprsdk.packaging.install.cache_dir`), three kinds of entries:
``versions/<digest>`` (a version's fetched model directory), ``site/<key>`` (its installed
packages) and ``requirements/<key>`` (its installed requirements). :func:`prune` removes entries
until the total fits ``max_bytes``: first those whose version is no longer in the registry (when
one is given), then the least recently used. An entry a running process uses is never removed:
:func:`hold` keeps a shared lock on ``<entry>.inuse`` until the process exits, and prune removes
an entry only under the exclusive lock. The same marker's time records the last use.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cprsdk.errors import ConfigError, CprError
from cprsdk.packaging.install import site_key
from cprsdk.registry.registry import Registry

__all__ = ["DEFAULT_MAX_BYTES", "CacheEntry", "PruneResult", "bound_cache", "hold", "max_cache_bytes", "parse_size",
           "prune"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 20 * 10**9
_KINDS = ("versions", "site", "requirements")
_HELD: dict[str, int] = {}  # entry -> file descriptor of its marker, locked shared for this process's life


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    kind: str  # "versions" | "site" | "requirements"
    bytes: int
    last_used: float
    in_registry: bool | None  # None: not known (no registry given, or a requirements folder)

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind, "bytes": self.bytes, "lastUsed": self.last_used,
                "inRegistry": self.in_registry}


@dataclass(frozen=True)
class PruneResult:
    removed: tuple[CacheEntry, ...]
    kept_bytes: int
    in_use: tuple[Path, ...]
    dry_run: bool

    @property
    def freed_bytes(self) -> int:
        return sum(e.bytes for e in self.removed)

    def to_json(self) -> dict[str, Any]:
        return {"removed": [e.to_json() for e in self.removed], "freedBytes": self.freed_bytes,
                "keptBytes": self.kept_bytes, "inUse": [str(p) for p in self.in_use], "dryRun": self.dry_run}


def _marker(entry: Path) -> Path:
    return entry.with_name(entry.name + ".inuse")


def hold(entry: Path) -> None:
    """Mark ``entry`` as used by this process, until it exits; prune never removes it meanwhile."""
    marker = _marker(entry)
    if str(entry) not in _HELD:
        marker.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(marker, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits while a prune removes it
        _HELD[str(entry)] = fd
    os.utime(marker)


def _size(path: Path) -> int:
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _last_used(entry: Path) -> float:
    times = [entry.stat().st_mtime]
    if _marker(entry).exists():
        times.append(_marker(entry).stat().st_mtime)
    return max(times)


def _known(registry: Registry | None) -> tuple[set[str], set[str]] | None:
    """The version digests and site keys the registry's versions use (None: no registry)."""
    if registry is None:
        return None
    digests, sites = set(), set()
    for model in registry.list_models():
        for manifest in registry.scan_versions(model.name)[0]:
            digests.add(manifest.digest[:32])
            sites.add(site_key([p.sha256 for p in manifest.packages]))
    return digests, sites


def _entries(root: Path, known: tuple[set[str], set[str]] | None) -> Iterator[CacheEntry]:
    for kind in _KINDS:
        base = root / kind
        if not base.is_dir():
            continue
        for entry in sorted(base.iterdir()):
            if not entry.is_dir() or ".staging-" in entry.name or ".download-" in entry.name:
                continue
            in_registry = None
            if known is not None and kind != "requirements":
                in_registry = entry.name in (known[0] if kind == "versions" else known[1])
            yield CacheEntry(entry, kind, _size(entry), _last_used(entry), in_registry)


def _remove_unless_used(entry: CacheEntry, *, dry_run: bool) -> bool:
    """Remove ``entry`` under the exclusive lock of its marker; False if a process holds it."""
    marker = _marker(entry.path)
    if dry_run and not marker.exists():
        return True  # nothing holds it; no marker is created, so its last use stays as it was
    fd = os.open(marker, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not dry_run:
            shutil.rmtree(entry.path, ignore_errors=True)
            entry.path.with_name(entry.path.name + ".json").unlink(missing_ok=True)  # a version's record
            marker.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def prune(root: Path, *, max_bytes: int, registry: Registry | None = None, dry_run: bool = False) -> PruneResult:
    """Remove cache entries under ``root`` until they total at most ``max_bytes``.

    Entries whose version is no longer in ``registry`` go first, then the least recently used;
    entries a running process holds (:func:`hold`) are kept whatever their size.
    """
    entries = list(_entries(root, _known(registry)))
    total = sum(e.bytes for e in entries)
    order = sorted(entries, key=lambda e: (e.in_registry is not False, e.last_used))
    removed, in_use = [], []
    for entry in order:
        if total <= max_bytes:
            break
        if _remove_unless_used(entry, dry_run=dry_run):
            removed.append(entry)
            total -= entry.bytes
        else:
            in_use.append(entry.path)
    return PruneResult(tuple(removed), total, tuple(in_use), dry_run)


def parse_size(text: str) -> int:
    """``20GB``, ``500 MB``, ``1.5G``, ``0`` or a number of bytes, as bytes (powers of 10)."""
    units = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9,
             "T": 10**12, "TB": 10**12}
    value = text.strip().upper().replace(" ", "")
    number = value.rstrip("KMGTB")
    try:
        return int(float(number) * units[value[len(number):]])
    except (KeyError, ValueError):
        raise ConfigError(f"{text!r} is not a size.", hint="Write it like 20GB, 500MB or 0.") from None


def max_cache_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The cache bound: ``CPRSDK_CACHE_MAX_SIZE`` (``20GB``, ``500MB``...), else :data:`DEFAULT_MAX_BYTES`."""
    text = (os.environ if environ is None else environ).get("CPRSDK_CACHE_MAX_SIZE")
    return parse_size(text) if text else DEFAULT_MAX_BYTES


def bound_cache(root: Path, registry: Registry | None = None) -> PruneResult | None:
    """Prune ``root`` to :func:`max_cache_bytes` after a fetch; a failure is logged, never raised."""
    try:
        result = prune(root, max_bytes=max_cache_bytes(), registry=registry)
    except (CprError, OSError) as exc:
        log.warning("could not bound the cache in %s: %s", root, exc)
        return None
    if result.removed:
        log.info("cache %s: removed %d entries (%d bytes) to stay under the bound", root, len(result.removed),
                 result.freed_bytes)
    return result
