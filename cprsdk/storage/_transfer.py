"""Parallel uploads with skipping, verification and a small progress bar."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from cprsdk.storage._base import Store
from cprsdk.storage._errors import AlreadyExists, StorageError

__all__ = ["TransferStats", "upload_many"]


@dataclass(frozen=True)
class TransferStats:
    uploaded_files: int
    uploaded_bytes: int
    skipped_files: int
    skipped_bytes: int
    seconds: float


def _human(size: float) -> str:
    units, step = ("B", "kB", "MB", "GB"), 0
    while size >= 1000 and step < len(units) - 1:
        size, step = size / 1000, step + 1
    return f"{size:.0f} B" if step == 0 else f"{size:.1f} {units[step]}"


class _ProgressBar:
    """``upload 12/20 files [#########---------------]  41% 82.0 MB/200.0 MB 31.5 MB/s`` on one line."""

    WIDTH = 24

    def __init__(self, *, total_files: int, total_bytes: int, stream: TextIO | None) -> None:
        self.total_files, self.total_bytes, self.stream = total_files, total_bytes, stream
        self.files = self.bytes = 0
        self.start = self._last = time.monotonic()
        self._lock = threading.Lock()

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.files += 1
            self.bytes += nbytes
            now = time.monotonic()
            if self.stream is not None and (now - self._last >= 0.1 or self.files == self.total_files):
                self._last = now
                self.stream.write("\r" + self.line(now))
                self.stream.flush()

    def line(self, now: float) -> str:
        done = self.bytes / self.total_bytes if self.total_bytes else self.files / max(self.total_files, 1)
        filled = int(done * self.WIDTH)
        rate = self.bytes / max(now - self.start, 1e-6)
        return (
            f"upload {self.files:>{len(str(self.total_files))}}/{self.total_files} files "
            f"[{'#' * filled}{'-' * (self.WIDTH - filled)}] {done:4.0%} "
            f"{_human(self.bytes)}/{_human(self.total_bytes)} {_human(rate)}/s  "
        )

    def close(self) -> None:
        if self.stream is not None and self.total_files:
            self.stream.write("\n")
            self.stream.flush()


def _progress_stream(progress: bool | None) -> TextIO | None:
    if progress is None:
        progress = sys.stderr.isatty()
    return sys.stderr if progress else None


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError as exc:
        raise StorageError(f"cannot upload {path}: {exc.strerror}.") from exc


def _upload_one(store: Store, path: Path, key: str, size: int, skip_existing: bool, sha256: str | None) -> bool:
    """Upload ``path`` to ``key`` unless an object of the same size is there; True if uploaded.

    With ``sha256`` the file must still have that digest when it is sent (a file that changed
    after it was hashed never lands under its old content address).
    """
    if not skip_existing:
        store.upload_file(path, key, sha256=sha256)
        return True
    current = store.stat(key)
    if current is not None and current.size == size:
        return False
    try:
        store.upload_file(path, key, if_absent=current is None, sha256=sha256)  # a wrong-sized object is replaced
    except AlreadyExists:
        return False  # another uploader put it there meanwhile
    return True


def upload_many(
    store: Store,
    items: Sequence[tuple[Path, str] | tuple[Path, str, str]],
    *,
    workers: int = 8,
    skip_existing: bool = True,
    progress: bool | None = None,
) -> TransferStats:
    """Upload ``(local path, key)`` or ``(local path, key, sha256)`` items in parallel threads.

    With ``skip_existing`` a key that already holds an object of the file's size is skipped: the
    registry's keys are content addresses, so an existing key already has these bytes. Every
    upload is verified by :meth:`Store.upload_file` (size, and MD5 where the backend reports one).
    ``progress`` draws a bar on stderr (``None``: only when stderr is a terminal). At most
    ``store.max_workers`` threads run when the store sets it. The first failure cancels the uploads
    not yet started and is raised.
    """
    if workers < 1:
        raise StorageError(f"upload_many needs at least one worker, got workers={workers}.")
    sizes = [_size(Path(item[0])) for item in items]
    bar = _ProgressBar(total_files=len(items), total_bytes=sum(sizes), stream=_progress_stream(progress))

    def task(item: tuple[Any, ...], size: int) -> bool:
        sha256 = item[2] if len(item) > 2 else None
        sent = _upload_one(store, Path(item[0]), item[1], size, skip_existing, sha256)
        bar.advance(size)
        return sent

    workers = min(workers, store.max_workers or workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cprsdk-upload") as pool:
        futures = [pool.submit(task, tuple(item), size) for item, size in zip(items, sizes, strict=True)]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.cancel()  # only those not started yet
    bar.close()
    failures = [exc for f in futures if not f.cancelled() and (exc := f.exception()) is not None]
    if failures:
        raise failures[0]
    sent = [f.result() for f in futures]
    return TransferStats(
        uploaded_files=sum(sent),
        uploaded_bytes=sum(size for size, was_sent in zip(sizes, sent, strict=True) if was_sent),
        skipped_files=len(sent) - sum(sent),
        skipped_bytes=sum(size for size, was_sent in zip(sizes, sent, strict=True) if not was_sent),
        seconds=time.monotonic() - bar.start,
    )
