"""A store on the local filesystem (bare paths and ``file://``).

Every write goes to a temporary file in the target's folder, is fsynced, and is then renamed into
place, so a reader sees the old object or the new one, never a mix. Create-only writes publish the
temporary file with ``os.link``, which fails atomically if the name exists, across processes and
machines sharing the folder. Every other change (overwrite, compare-and-swap, delete) holds an
``fcntl`` lock on a sidecar file ``.<name>.cprsdk-lock`` beside the object (removed again when
the change is done), so a compare-and-swap is atomic against every cprsdk writer. Tokens are
``mtime_ns-size-inode``; under the lock a new version's mtime is made strictly greater than the one
it replaces, so a token never comes back.
"""

from __future__ import annotations

import builtins
import errno
import os
import secrets
import shutil
import stat as stat_mod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cprsdk.storage._base import (
    CHUNK,
    RESERVED_NAME,
    TEMPORARY_NAME,
    Blob,
    HashingReader,
    ObjectInfo,
    Sink,
    Store,
    list_base,
)
from cprsdk.storage._errors import AlreadyExists, NotFound, StorageError

_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}


def file_uri(root: Path) -> str:
    return "file://" + root.as_posix()


def _token(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}-{st.st_size}-{st.st_ino}"


def _stat_file(path: Path) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st if stat_mod.S_ISREG(st.st_mode) else None


def _older(path: Path, cutoff: float) -> bool:
    try:
        return os.stat(path).st_mtime < cutoff
    except OSError:
        return False


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.cprsdk-tmp-{secrets.token_hex(8)}")


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``target``: an ``flock`` on its sidecar, which is removed on release.

    A waiter may get the lock on a sidecar that its holder has just removed; it then sees that the
    name no longer leads to the file it locked, and tries again on the current one, so at most one
    process holds a lock that the name leads to.
    """
    try:
        import fcntl
    except ImportError as exc:  # pragma: no cover - Windows
        raise StorageError("local stores need POSIX file locks (fcntl); this platform has none.") from exc
    sidecar = target.with_name(f".{target.name}.cprsdk-lock")
    while True:
        fd = os.open(sidecar, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = os.stat(sidecar)
        except FileNotFoundError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        if current.st_ino == os.fstat(fd).st_ino and current.st_dev == os.fstat(fd).st_dev:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(sidecar)  # still holding the lock: no other process holds one on this file
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _newer_than(tmp: Path, current: os.stat_result | None) -> os.stat_result:
    """Stat ``tmp``, first pushing its mtime past ``current``'s so tokens never repeat."""
    st = os.stat(tmp)
    if current is not None and st.st_mtime_ns <= current.st_mtime_ns:
        ns = current.st_mtime_ns + 1
        os.utime(tmp, ns=(ns, ns))
        st = os.stat(tmp)
    return st


class LocalStore(Store):
    def __init__(self, *, root: Path) -> None:
        super().__init__(uri=file_uri(root))
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _read(self, key: str) -> Blob:
        try:
            with open(self._path(key), "rb") as fh:
                st = os.fstat(fh.fileno())
                return Blob(data=fh.read(), token=_token(st))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(f"{self.url(key)} does not exist.") from exc

    @contextmanager
    def _os_errors(self, key: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise StorageError(
                f"cannot change {self.url(key)}: {exc.strerror or exc}.",
                hint="Check that the folder is writable and the disk has free space.",
            ) from exc

    def _write(self, key: str, data: bytes, *, if_absent: bool, if_token: str | None) -> str:
        target = self._path(key)
        with self._os_errors(key):
            tmp = self._new_temp(target)
            try:
                with open(tmp, "r+b") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                return self._publish(tmp, target, key, if_absent=if_absent, if_token=if_token)
            finally:
                tmp.unlink(missing_ok=True)

    def _new_temp(self, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(target)
        tmp.touch(exist_ok=False)
        return tmp

    def _publish(self, tmp: Path, target: Path, key: str, *, if_absent: bool, if_token: str | None) -> str:
        if if_absent:
            token = self._link(tmp, target, key)
        else:
            with _locked(target):
                current = _stat_file(target)
                if if_token is not None and (current is None or _token(current) != if_token):
                    raise self._stale(key, if_token, None if current is None else _token(current))
                token = _token(_newer_than(tmp, current))
                os.replace(tmp, target)
        _fsync_dir(target.parent)
        return token

    def _link(self, tmp: Path, target: Path, key: str) -> str:
        try:
            os.link(tmp, target)
            return _token(os.stat(tmp))
        except FileExistsError as exc:
            raise AlreadyExists(f"{self.url(key)} already exists; it is written only once.") from exc
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
        with _locked(target):  # no hard links here: exclusive among cprsdk writers instead
            if os.path.lexists(target):
                raise AlreadyExists(f"{self.url(key)} already exists; it is written only once.")
            token = _token(os.stat(tmp))
            os.replace(tmp, target)
            return token


    def _stat(self, key: str) -> ObjectInfo | None:
        st = _stat_file(self._path(key))
        return None if st is None else ObjectInfo(key=key, size=st.st_size, token=_token(st))

    def _list(self, prefix: str) -> builtins.list[ObjectInfo]:
        base = list_base(prefix)
        start = self._path(base) if base else self.root
        return list(self._walk(start, base))

    def _walk(self, folder: Path, rel: str) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            key = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), key)
            elif entry.is_file() and not RESERVED_NAME.search(entry.name):
                st = entry.stat()
                yield ObjectInfo(key=key, size=st.st_size, token=_token(st))

    def _sweep(self, prefix: str, cutoff: float) -> builtins.list[str]:
        base = list_base(prefix)
        removed = []
        for folder, _, names in os.walk(self._path(base) if base else self.root):
            for name in names:
                path = Path(folder, name)
                rel = path.relative_to(self.root).as_posix()
                if TEMPORARY_NAME.search(name) and rel.startswith(prefix) and _older(path, cutoff):
                    path.unlink(missing_ok=True)
                    removed.append(rel)
        return sorted(removed)

    def _delete(self, key: str) -> None:
        target = self._path(key)
        if _stat_file(target) is None:
            return
        with self._os_errors(key), _locked(target):
            target.unlink(missing_ok=True)

    def _upload(self, source: HashingReader, path: Path, key: str, *, if_absent: bool) -> ObjectInfo:
        target = self._path(key)
        with self._os_errors(key):
            tmp = self._new_temp(target)
            try:
                with open(tmp, "r+b") as out:
                    shutil.copyfileobj(source, out, CHUNK)
                    out.flush()
                    os.fsync(out.fileno())
                    size = out.tell()
                token = self._publish(tmp, target, key, if_absent=if_absent, if_token=None)
            finally:
                tmp.unlink(missing_ok=True)
        return ObjectInfo(key=key, size=size, token=token)

    def _download(self, key: str, sink: Sink) -> None:
        try:
            with open(self._path(key), "rb") as src:
                shutil.copyfileobj(src, sink, CHUNK)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(f"{self.url(key)} does not exist.") from exc

