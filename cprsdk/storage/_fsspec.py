"""Stores on fsspec filesystems: any protocol, with ``memory://`` made exact for tests.

The generic store relies on what the filesystem offers: ``pipe_file``/``put_file`` with
``mode="create"`` for create-only writes (atomic only where the backend makes it so) and a read
of the current version before a compare-and-swap write, which is *not* atomic. Backends that can
do better get a subclass: ``memory://`` (a process-wide lock) and ``s3://`` (conditional requests,
in :mod:`._s3`).
"""

from __future__ import annotations

import builtins
import contextlib
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cprsdk.storage._base import CHUNK, Blob, HashingReader, ObjectInfo, Sink, Store, list_base, md5_hex
from cprsdk.storage._errors import AlreadyExists, NotFound, StorageError

Info = dict[str, Any]


class FsspecStore(Store):
    """A store rooted at ``root`` on the fsspec filesystem ``fs``."""

    def __init__(self, *, fs: Any, root: str, uri: str) -> None:
        super().__init__(uri=uri)
        self.fs = fs
        self.root = root.rstrip("/") or root[:1]  # a root marker "/" stays
        self._prefix = self.root.rstrip("/") + "/" if self.root else ""

    def _full(self, key: str) -> str:
        return self._prefix + key

    def _key_of(self, full: str) -> str | None:
        if not full.startswith(self._prefix) or full.endswith("/"):
            return None
        return full[len(self._prefix) :]

    def _token(self, info: Info, full: str) -> str:
        for field in ("generation", "ETag", "etag", "version_id", "VersionId"):
            if info.get(field):
                return str(info[field]).strip('"')
        stamp = info.get("mtime") or info.get("LastModified") or info.get("created") or ""
        return f"{stamp}-{info.get('size')}"

    def _md5(self, info: Info, full: str) -> str | None:
        return None

    def _info(self, key: str, info: Info, full: str) -> ObjectInfo:
        return ObjectInfo(key=key, size=int(info["size"]), token=self._token(info, full), md5=self._md5(info, full))

    @contextmanager
    def _errors(self, key: str, *, if_absent: bool = False, if_token: str | None = None) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise self._translate(exc, key, if_absent=if_absent, if_token=if_token) from exc

    def _translate(self, exc: OSError, key: str, *, if_absent: bool, if_token: str | None) -> StorageError:
        where = self._where(key)
        if isinstance(exc, FileExistsError):
            return AlreadyExists(f"{where} already exists; it is written only once.")
        if isinstance(exc, FileNotFoundError):
            if if_token is not None:
                return self._stale(key, if_token, None)
            return NotFound(f"{where} does not exist.")
        if isinstance(exc, PermissionError):
            return StorageError(f"permission denied for {where}: {exc}", hint="Check the credentials.")
        return StorageError(f"storage call for {where} failed: {exc}")


    def _read(self, key: str) -> Blob:
        full = self._full(key)
        with self._errors(key):
            data = self.fs.cat_file(full)
            return Blob(data=bytes(data), token=self._token(self.fs.info(full), full))

    def _write(self, key: str, data: bytes, *, if_absent: bool, if_token: str | None) -> str:
        full = self._full(key)
        if if_token is not None:
            current = self._stat(key)
            if current is None or current.token != if_token:
                raise self._stale(key, if_token, None if current is None else current.token)
        with self._errors(key, if_absent=if_absent):
            self.fs.pipe_file(full, data, mode="create" if if_absent else "overwrite")
            return self._token(self.fs.info(full), full)

    def _stat(self, key: str) -> ObjectInfo | None:
        full = self._full(key)
        try:
            with self._errors(key):
                info = self.fs.info(full)
        except NotFound:
            return None
        return self._info(key, info, full) if info.get("type") == "file" else None

    def _list(self, prefix: str) -> builtins.list[ObjectInfo]:
        base = list_base(prefix)
        start = self._full(base) if base else self.root
        try:
            with self._errors(base):
                found: dict[str, Info] = self.fs.find(start, detail=True)
        except NotFound:
            return []
        infos = []
        for full, info in found.items():
            key = self._key_of(full)
            if key is not None and info.get("type", "file") == "file":
                infos.append(self._info(key, info, full))
        return infos

    def _delete(self, key: str) -> None:
        with self._errors(key), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._full(key))

    def _upload(self, source: HashingReader, path: Path, key: str, *, if_absent: bool) -> ObjectInfo:
        """fsspec reads the file itself (put_file); ``source`` hashes it afterwards."""
        with self._errors(key, if_absent=if_absent):
            self.fs.put_file(str(path), self._full(key), mode="create" if if_absent else "overwrite")
        info = self._stat(key)
        if info is None:
            raise StorageError(f"{self.url(key)} is missing right after its upload from {path}.")
        return info

    def _download(self, key: str, sink: Sink) -> None:
        with self._errors(key), self.fs.open(self._full(key), "rb") as src:
            shutil.copyfileobj(src, sink, CHUNK)


_MEMORY_LOCK = threading.RLock()


class MemoryStore(FsspecStore):
    """``memory://``: fsspec's process-wide in-memory filesystem, made exact for tests.

    Every operation holds one process-wide lock, so create-only and compare-and-swap are atomic;
    the token is the MD5 of the bytes (so it is also ``ObjectInfo.md5``).
    """

    def _token(self, info: Info, full: str) -> str:
        return md5_hex(bytes(self.fs.cat_file(full)))

    def _md5(self, info: Info, full: str) -> str | None:
        return self._token(info, full)

    def _read(self, key: str) -> Blob:
        with _MEMORY_LOCK:
            return super()._read(key)

    def _write(self, key: str, data: bytes, *, if_absent: bool, if_token: str | None) -> str:
        with _MEMORY_LOCK:
            return super()._write(key, data, if_absent=if_absent, if_token=if_token)

    def _stat(self, key: str) -> ObjectInfo | None:
        with _MEMORY_LOCK:
            return super()._stat(key)

    def _list(self, prefix: str) -> builtins.list[ObjectInfo]:
        with _MEMORY_LOCK:
            return super()._list(prefix)

    def _delete(self, key: str) -> None:
        with _MEMORY_LOCK:
            super()._delete(key)

    def _upload(self, source: HashingReader, path: Path, key: str, *, if_absent: bool) -> ObjectInfo:
        data = source.read()
        token = self._write(key, data, if_absent=if_absent, if_token=None)
        return ObjectInfo(key=key, size=len(data), token=token, md5=token)

    def _download(self, key: str, sink: Sink) -> None:
        with _MEMORY_LOCK, self._errors(key):  # memory files are shared objects: copy, don't stream
            data = bytes(self.fs.cat_file(self._full(key)))
        sink.write(data)
