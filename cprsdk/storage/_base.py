"""The :class:`Store` interface, its records, and the checks every backend shares."""

from __future__ import annotations

import builtins
import hashlib
import os
import re
import secrets
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from cprsdk.storage._errors import IntegrityError, PreconditionFailed, StorageError

__all__ = ["Blob", "ObjectInfo", "Store"]

CHUNK = 1 << 20
# Names cprsdk gives its own temporary and lock files; keys may not end with them.
RESERVED_NAME = re.compile(r"\.cprsdk-(tmp-[0-9a-f]+|lock)$")
TEMPORARY_NAME = re.compile(r"\.cprsdk-tmp-[0-9a-f]+$")
TEMPORARY_MAX_AGE = 3600.0  # seconds: an upload's temporary object older than this was left by a killed upload


@dataclass(frozen=True)
class Blob:
    """An object's bytes and the version token they were read at."""

    data: bytes
    token: str


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object. ``md5`` is a hex digest when the backend reports one it can vouch for."""

    key: str
    size: int
    token: str
    md5: str | None = None


class Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class HashingSink:
    """A writable that hashes what passes through it on the way to ``target``."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._sha256.update(data)
        self.size += len(data)
        return self._target.write(data)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()


class HashingReader:
    """A readable file that hashes each byte once, in file order, however its consumer seeks.

    Backends that read the file through it (gs://, file://, memory://) get digests of exactly the
    bytes they sent; :meth:`finish` reads whatever the consumer did not.
    """

    def __init__(self, fh: BinaryIO, *, sha256: bool, md5: bool) -> None:
        self._fh = fh
        self._sha256 = hashlib.sha256() if sha256 else None
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self.size = 0  # bytes hashed so far: always a prefix of the file

    def read(self, size: int = -1, /) -> bytes:
        start = self._fh.tell()
        data = self._fh.read(size)
        if start <= self.size < start + len(data):
            self._update(memoryview(data)[self.size - start :])
        return data

    def _update(self, chunk: memoryview) -> None:
        for digest in (self._sha256, self._md5):
            if digest is not None:
                digest.update(chunk)
        self.size += len(chunk)

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def finish(self) -> None:
        self._fh.seek(self.size)
        for chunk in iter(lambda: self._fh.read(CHUNK), b""):
            self._update(memoryview(chunk))

    @property
    def sha256(self) -> str | None:
        return None if self._sha256 is None else self._sha256.hexdigest()

    @property
    def md5(self) -> str | None:
        return None if self._md5 is None else self._md5.hexdigest()


def check_sha256(path: Path, expected: str) -> None:
    with open(path, "rb") as fh:
        source = HashingReader(fh, sha256=True, md5=False)
        source.finish()
    if source.sha256 != expected:
        raise IntegrityError(
            f"{path} has sha256 {source.sha256}, expected {expected}: it changed after it was hashed.",
            hint="Hash the file again and retry.",
        )


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def check_key(key: str) -> str:
    """Refuse keys that could escape the store root or collide with cprsdk's own files."""
    if not isinstance(key, str) or not key:
        raise StorageError(f"storage key must be a non-empty string, got {key!r}.")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts) or "\\" in key or "\x00" in key:
        raise StorageError(
            f"invalid storage key {key!r}: keys are '/'-separated relative paths "
            "without empty, '.' or '..' segments or backslashes."
        )
    if RESERVED_NAME.search(parts[-1]):
        raise StorageError(f"invalid storage key {key!r}: names ending in .cprsdk-lock or .cprsdk-tmp-* are reserved.")
    return key


def check_prefix(prefix: str) -> str:
    if prefix and prefix.strip("/"):
        check_key(prefix.strip("/"))
    if prefix.startswith("/"):
        raise StorageError(f"invalid list prefix {prefix!r}: prefixes are relative to the store root.")
    return prefix


class Store(ABC):
    """Objects under one URI prefix, addressed by ``/``-separated relative keys.

    Version tokens are opaque strings that change whenever an object is replaced: the generation
    on Cloud Storage, the ETag on S3, ``mtime_ns-size-inode`` on a local disk, an MD5 of the bytes
    in ``memory://``. Pass one back as ``if_token`` to make a write compare-and-swap.

    ``max_workers`` is the concurrency the backend serves well (``None``: no limit);
    :func:`upload_many` runs no more threads than that.
    """

    uri: str
    max_workers: int | None = None
    # Whether uploads also hash the file with MD5, to compare with the MD5 the backend reports.
    _compares_md5 = False
    _token_name = "version"  # what a compare-and-swap token is called in this backend's messages

    def __init__(self, *, uri: str) -> None:
        self.uri = uri

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri}>"

    def _stale(self, key: str, expected: str, current: str | None) -> PreconditionFailed:
        """The error of a compare-and-swap that met another version (``current``: its token, or None)."""
        found = "it does not exist" if current is None else f"its {self._token_name} is now {current}"
        return PreconditionFailed(
            f"{self.url(key)} changed: expected {self._token_name} {expected}, but {found}.",
            hint="Read it again and retry.",
        )

    def url(self, key: str) -> str:
        """The full URI of ``key``; :func:`open_store` accepts it."""
        return self._where(check_key(key))

    def _where(self, key: str) -> str:
        """``url(key)`` without validation, for messages (``key`` may be a prefix or empty)."""
        return self.uri + key if self.uri.endswith("/") else f"{self.uri}/{key}" if key else self.uri

    def read(self, key: str) -> Blob:
        """The object's bytes and version token; :class:`NotFound` when it does not exist."""
        return self._read(check_key(key))

    def write(self, key: str, data: bytes, *, if_absent: bool = False, if_token: str | None = None) -> str:
        """Store ``data`` atomically at ``key`` and return the new version token.

        ``if_absent`` makes the write create-only (:class:`AlreadyExists` if the key exists);
        ``if_token`` makes it compare-and-swap (:class:`PreconditionFailed` if the object is
        missing or its token differs). Readers never see a partly written object.
        """
        if if_absent and if_token is not None:
            raise StorageError(f"write({key!r}) takes if_absent or if_token, not both.")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise StorageError(f"write({key!r}) needs bytes, got {type(data).__name__}.")
        return self._write(check_key(key), bytes(data), if_absent=if_absent, if_token=if_token)

    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""
        return self.stat(key) is not None

    def stat(self, key: str) -> ObjectInfo | None:
        """Size and token of ``key``, or ``None`` when it does not exist."""
        return self._stat(check_key(key))

    def list(self, prefix: str = "") -> builtins.list[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a plain string prefix), sorted by key."""
        found = self._list(check_prefix(prefix))
        return sorted((info for info in found if info.key.startswith(prefix)), key=lambda info: info.key)

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing object is not an error."""
        self._delete(check_key(key))

    def sweep_temporaries(self, *, older_than: float = TEMPORARY_MAX_AGE, prefix: str = "") -> builtins.list[str]:
        """Remove the temporary objects of uploads killed mid-way, older than ``older_than`` seconds.

        Returns the names removed. A younger one may belong to an upload still running, so it is
        kept. Backends whose unfinished uploads are not objects (GCS resumable sessions) have none.
        """
        return self._sweep(check_prefix(prefix), time.time() - older_than)

    def upload_file(self, path: Path, key: str, *, if_absent: bool = False, sha256: str | None = None) -> str:
        """Upload a local file to ``key``, verify what was stored, and return its token.

        Verified: the stored size; ``sha256`` if given (of the bytes sent, where the backend reads
        the file through cprsdk); the stored MD5 where the backend reports one. A create-only
        upload that fails verification is deleted; an overwrite checks ``sha256`` before sending,
        so a good object is never replaced by a file that changed after it was hashed.
        """
        key, path = check_key(key), Path(path)
        expected = None if sha256 is None else sha256.lower()
        try:
            if expected is not None and not if_absent:
                check_sha256(path, expected)
            with open(path, "rb") as fh:
                source = HashingReader(fh, sha256=expected is not None, md5=self._compares_md5)
                info = self._upload(source, path, key, if_absent=if_absent)
                source.finish()
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise StorageError(f"cannot upload {path}: {exc.strerror}.") from exc
        self._verify_upload(info, source, path, expected)
        return info.token

    def download_file(self, key: str, path: Path, *, sha256: str | None = None) -> None:
        """Download ``key`` to ``path`` through a temporary name, verifying ``sha256`` if given.

        On any failure (including a digest mismatch, :class:`IntegrityError`) nothing is left at
        ``path`` or beside it; a file already at ``path`` is kept as it was.
        """
        key, path = check_key(key), Path(path)
        partial = path.with_name(f"{path.name}.partial-{secrets.token_hex(6)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "xb") as fh:
                sink = HashingSink(fh)
                self._download(key, sink)
                fh.flush()
                os.fsync(fh.fileno())
            if sha256 is not None and sink.sha256 != sha256.lower():
                raise IntegrityError(
                    f"{self.url(key)} has sha256 {sink.sha256}, expected {sha256.lower()}: the "
                    f"stored object is corrupt or was replaced; nothing was written to {path}.",
                    hint="Delete the object and upload (deploy) it again.",
                )
            os.replace(partial, path)
        except OSError as exc:
            raise StorageError(f"cannot download {self.url(key)} to {path}: {exc.strerror or exc}.") from exc
        finally:
            partial.unlink(missing_ok=True)

    def _verify_upload(self, info: ObjectInfo, source: HashingReader, path: Path, expected: str | None) -> None:
        problems = []
        if info.size != source.size:
            problems.append(f"{info.size} bytes stored, {source.size} read")
        if expected is not None and source.sha256 != expected:
            problems.append(f"sha256 {source.sha256}, expected {expected}")
        if info.md5 is not None and source.md5 is not None and info.md5 != source.md5:
            problems.append(f"stored md5 {info.md5}, the file's md5 {source.md5}")
        if not problems:
            return
        self._delete(info.key)
        raise IntegrityError(
            f"upload of {path} to {self.url(info.key)} failed verification ({'; '.join(problems)}); "
            "the object was deleted.",
            hint="The file changed after it was hashed or during the upload: hash it again and retry.",
        )

    @abstractmethod
    def _read(self, key: str) -> Blob: ...

    @abstractmethod
    def _write(self, key: str, data: bytes, *, if_absent: bool, if_token: str | None) -> str: ...

    @abstractmethod
    def _stat(self, key: str) -> ObjectInfo | None: ...

    @abstractmethod
    def _list(self, prefix: str) -> builtins.list[ObjectInfo]:
        """Objects under ``prefix`` (may return more; the caller filters and sorts)."""

    @abstractmethod
    def _delete(self, key: str) -> None: ...

    def _sweep(self, prefix: str, cutoff: float) -> builtins.list[str]:
        return []

    @abstractmethod
    def _upload(self, source: HashingReader, path: Path, key: str, *, if_absent: bool) -> ObjectInfo:
        """Store the file (reading it through ``source`` where possible) and describe the stored object."""

    @abstractmethod
    def _download(self, key: str, sink: Sink) -> None: ...


def list_base(prefix: str) -> str:
    """The folder part of a list prefix: ``"a/b/c"`` -> ``"a/b"``, ``"a/b/"`` -> ``"a/b"``."""
    return prefix.rpartition("/")[0]
