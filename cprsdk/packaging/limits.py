"""Size quotas: the model directory and the code packages, checked before anything is sent."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cprsdk.errors import QuotaError

__all__ = ["MB", "DirStats", "check_code_quota_sizes", "check_code_size", "check_model_dir", "dir_stats", "format_mb"]

MB = 1_000_000
_SKIP_DIRS = frozenset({"__pycache__", ".git", ".ipynb_checkpoints"})


@dataclass(frozen=True)
class DirStats:
    root: Path
    files: tuple[tuple[Path, int], ...]  # (path, apparent size in bytes), sorted by path

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    def largest(self, n: int = 3) -> list[tuple[Path, int]]:
        return sorted(self.files, key=lambda item: (-item[1], item[0]))[:n]


def format_mb(size: int) -> str:
    """A size for people: 812 B, 14.2 kB, 3.4 MB, 612 MB (decimal units, as the quotas)."""
    if size < 1000:
        return f"{size} B"
    if size < MB:
        return f"{size / 1000:.1f} kB"
    return f"{size / MB:.1f} MB" if size < 10 * MB else f"{size / MB:.0f} MB"


def dir_stats(root: Path) -> DirStats:
    """Every regular file under ``root`` (apparent sizes: a sparse file counts in full)."""
    found: list[tuple[Path, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_file():
                found.append((path, path.stat().st_size))
    return DirStats(root, tuple(sorted(found)))


def _shown(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _largest_text(stats: DirStats, base: Path) -> str:
    return ", ".join(f"{_shown(p, base)} ({format_mb(s)})" for p, s in stats.largest())


def check_model_dir(root: Path, *, max_mb: float, max_files: int, base: Path, source: str) -> DirStats:
    """Raise :class:`QuotaError` if ``root`` is over its size or file-count quota.

    ``base`` is the folder paths are shown relative to; ``source`` names where the quota came from.
    """
    stats = dir_stats(root)
    shown = _shown(root, base).rstrip("/") + "/"
    if len(stats.files) > max_files:
        raise QuotaError(
            f"{shown} has {len(stats.files)} files, over the {max_files}-file model quota.",
            hint=f"Bundle small files into an archive, or raise max_model_files ({source}).",
        )
    if stats.total_bytes > max_mb * MB:
        raise QuotaError(
            f"{shown} is {format_mb(stats.total_bytes)}, over the {max_mb:g} MB model quota. "
            f"Largest files: {_largest_text(stats, base)}.",
            hint=f"Move large files out, or raise max_model_mb ({source}).",
        )
    return stats


def check_code_size(packages: Sequence[Path], *, max_mb: float, source: str) -> int:
    """Raise :class:`QuotaError` if the packages together are over the code quota."""
    return check_code_quota_sizes([(p.name, p.stat().st_size) for p in packages], max_mb=max_mb, source=source)


def check_code_quota_sizes(sizes: Sequence[tuple[str, int]], *, max_mb: float, source: str) -> int:
    """The code quota over (name, size) pairs, e.g. objects already in storage."""
    total = sum(s for _, s in sizes)
    if total > max_mb * MB:
        listing = ", ".join(f"{p} ({format_mb(s)})" for p, s in sorted(sizes, key=lambda x: -x[1]))
        raise QuotaError(
            f"The code packages total {format_mb(total)}, over the {max_mb:g} MB code quota: {listing}.",
            hint=f"Keep data out of the package (put it in the model directory), or raise max_code_mb ({source}).",
        )
    return total
