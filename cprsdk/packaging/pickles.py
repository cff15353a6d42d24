"""Read what a pickle (or joblib) file references, without executing any of it.

A pickle names the callables it needs to rebuild its objects (``GLOBAL`` and ``STACK_GLOBAL``
opcodes: ``preprocess.ZeroCenterer``, ``sklearn.linear_model._logistic.LogisticRegression``).
:func:`scan_file` runs a pure-Python unpickler whose ``find_class`` records each reference and
hands back an inert stand-in, so no referenced module is imported and no referenced callable
runs. joblib's raw NumPy buffers between opcodes are skipped the way joblib reads them.

A zip archive with pickle members (a PyTorch ``.pt``/``.pth`` checkpoint holds ``<name>/data.pkl``)
is scanned member by member, each like any other pickle; a reference is reported with its member.
"""

from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import io
import lzma
import os
import pickle
import pickletools
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from cprsdk.errors import UnreadablePickle

__all__ = [
    "PICKLE_SUFFIXES",
    "GlobalRef",
    "PickleScan",
    "canonical",
    "find_pickles",
    "scan_file",
]

PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".pck", ".pcl", ".joblib", ".sav", ".dill"})

_COMPRESSED = (
    (b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ", "xz"), (b"\x5d\x00\x00", "lzma"),
    (b"\x78", "zlib"), (b"\x04\x22\x4d\x18", "lz4"),
)


@dataclass(frozen=True, order=True)
class GlobalRef:
    """One ``module`` + ``name`` that a pickle needs to import to load."""

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class PickleScan:
    path: Path
    format: str  # "pickle" | "joblib" | "zip" (pickle members of a zip archive, e.g. a torch.save file)
    compression: str | None
    references: tuple[GlobalRef, ...]
    members: Mapping[GlobalRef, str] = field(default_factory=dict)  # zip: the member each reference is in
    side_files: tuple[str, ...] = ()  # files an old joblib NDArrayWrapper loads with numpy.load(allow_pickle=True)

    def where(self, ref: GlobalRef) -> str:
        """`` (member archive/data.pkl)`` for a reference found in a zip member, else empty."""
        member = self.members.get(ref)
        return f" (member {member})" if member else ""


def canonical(ref: GlobalRef) -> GlobalRef:
    """The name an unpickler really imports (Python 2 names are mapped, as fix_imports does)."""
    import _compat_pickle

    module, name = ref.module, ref.name
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return GlobalRef(module, name)


class _Stub:
    """Inert stand-in for a referenced callable: calling or building it records, nothing runs."""

    ref: ClassVar[GlobalRef]
    args: tuple[Any, ...]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = object.__new__(cls)
        object.__setattr__(obj, "args", args)
        object.__setattr__(obj, "state", None)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _Stub(*args)

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "state", state)

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def add(self, item: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


_STUBS: dict[GlobalRef, type[_Stub]] = {}


def _stub_class(ref: GlobalRef) -> type[_Stub]:
    if ref not in _STUBS:
        if len(_STUBS) > 100_000:
            _STUBS.clear()
        _STUBS[ref] = type(ref.name.replace(".", "_")[:100] or "stub", (_Stub,), {"ref": ref})
    return _STUBS[ref]


_JOBLIB_WRAPPERS = frozenset({"NumpyArrayWrapper"})


_PyUnpickler: Any = pickle._Unpickler  # the pure-Python unpickler: its dispatch table can be extended


class _Scanner(_PyUnpickler):  # type: ignore[misc]
    dispatch = dict(_PyUnpickler.dispatch)

    def __init__(self, file: IO[bytes], refs: dict[GlobalRef, None], *, joblib_aware: bool = True) -> None:
        super().__init__(file, encoding="latin1")
        self.raw = file
        self.refs = refs  # an ordered set
        self.joblib = False
        self.joblib_aware = joblib_aware
        self.side_files: dict[str, None] = {}

    def find_class(self, module: str, name: str) -> Any:
        ref = GlobalRef(str(module), str(name))
        self.refs[ref] = None
        return _stub_class(ref)

    def persistent_load(self, pid: Any) -> Any:
        return _Stub(pid)

    def load_build(self) -> None:
        super().load_build()
        top = self.stack[-1]
        ref = getattr(type(top), "ref", None)
        if ref is not None and ref.module.startswith("joblib") and ref.name == "NDArrayWrapper":
            state = top.state if isinstance(top.state, dict) else {}
            self.side_files[str(state.get("filename", ""))] = None
        if ref is not None and ref.module.startswith("joblib") and ref.name in _JOBLIB_WRAPPERS:
            self.joblib = True
            if self.joblib_aware:
                self._skip_joblib_array(top.state if isinstance(top.state, dict) else {})

    dispatch[pickle.BUILD[0]] = load_build

    def _skip_joblib_array(self, state: dict[str, Any]) -> None:
        import numpy as np

        shape = tuple(int(n) for n in state.get("shape", ()))
        dtype_stub = state.get("dtype")
        spec = dtype_stub.args[0] if isinstance(dtype_stub, _Stub) and dtype_stub.args else None
        if not isinstance(spec, str):
            raise UnreadablePickle("a joblib array has a dtype this scanner cannot read")
        dtype = np.dtype(spec)
        if dtype.hasobject:
            _Scanner(self.raw, self.refs).load()  # object arrays are a nested pickle stream
            return
        if state.get("numpy_array_alignment_bytes") is not None:
            pad = self.raw.read(1)
            self.raw.read(int.from_bytes(pad, "little"))
        count = 1
        for n in shape:
            count *= n
        remaining = count * dtype.itemsize
        while remaining:
            chunk = self.raw.read(min(remaining, 1 << 24))
            if not chunk:
                raise UnreadablePickle("the file ends inside a joblib array")
            remaining -= len(chunk)


def _open_stream(path: Path) -> tuple[Any, str | None]:
    with path.open("rb") as fh:
        head = fh.read(6)
    for magic, kind in _COMPRESSED:
        if head.startswith(magic):
            if kind == "gzip":
                return gzip.open(path, "rb"), kind
            if kind == "bz2":
                return bz2.open(path, "rb"), kind
            if kind in ("xz", "lzma"):
                return lzma.open(path, "rb"), kind
            if kind == "zlib":
                return io.BytesIO(zlib.decompress(path.read_bytes())), kind
            raise UnreadablePickle(f"{kind}-compressed files cannot be scanned")
    return path.open("rb"), None


_UNREADABLE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
               OSError, OverflowError, MemoryError, RecursionError, zlib.error, lzma.LZMAError)


def _scan_stream(open_stream: Callable[[], Any], refs: dict[GlobalRef, None],
                 side_files: dict[str, None] | None = None) -> bool:
    """Record the references of one pickle stream into ``refs``; True if it holds joblib arrays."""
    try:
        with open_stream() as stream:
            scanner = _Scanner(stream, refs)
            scanner.load()
    except UnreadablePickle:
        raise
    except _UNREADABLE as exc:
        raise UnreadablePickle(f"{type(exc).__name__}: {exc}") from None
    if side_files is not None:
        side_files.update(scanner.side_files)
    if scanner.joblib:
        with open_stream() as plain, contextlib.suppress(*_UNREADABLE):
            _Scanner(plain, refs, joblib_aware=False).load()  # stops at the first buffer that is not opcodes
    return bool(scanner.joblib)


_NPY_MAGIC = b"\x93NUMPY"


def _npy_holds_pickle(stream: IO[bytes]) -> bool:
    """Read an ``.npy`` header: True if the data that follows is a pickle (an object array)."""
    from numpy.lib import format as npy_format

    version = npy_format.read_magic(stream)
    read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    _, _, dtype = read(stream)
    return bool(dtype.hasobject)


def _scan_npy_stream(open_stream: Callable[[], Any], refs: dict[GlobalRef, None]) -> None:
    """An ``.npy`` array: an object array's data is a pickle stream, scanned like any other."""
    try:
        with open_stream() as stream:
            if _npy_holds_pickle(stream):
                _Scanner(stream, refs).load()
    except UnreadablePickle:
        raise
    except _UNREADABLE as exc:
        raise UnreadablePickle(f"{type(exc).__name__}: {exc}") from None


def _is_zip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"PK\x03\x04" and zipfile.is_zipfile(path)


def _object_npy(archive: zipfile.ZipFile, member: str) -> bool:
    with archive.open(member) as stream, contextlib.suppress(*_UNREADABLE):
        return _npy_holds_pickle(stream)
    return True  # an unreadable header: scanned, so the scan says why


def _pickle_members(archive: zipfile.ZipFile) -> list[str]:
    """Members with a pickle suffix, and ``.npy`` members holding object arrays (``numpy.savez``)."""
    names = [m for m in archive.namelist() if not m.endswith("/")]
    return [m for m in names if Path(m).suffix.lower() in PICKLE_SUFFIXES
            or (m.lower().endswith(".npy") and _object_npy(archive, m))]


def _scan_zip(path: Path) -> PickleScan:
    refs: dict[GlobalRef, None] = {}
    members: dict[GlobalRef, str] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in _pickle_members(archive):
                found: dict[GlobalRef, None] = {}
                scan = _scan_npy_stream if member.lower().endswith(".npy") else _scan_stream
                try:
                    scan(functools.partial(archive.open, member), found)
                except UnreadablePickle as exc:
                    raise UnreadablePickle(f"member {member}: {exc}") from None
                for ref in found:
                    refs[ref] = None
                    members.setdefault(ref, member)
    except (zipfile.BadZipFile, OSError, NotImplementedError) as exc:
        raise UnreadablePickle(f"the zip archive cannot be read ({type(exc).__name__}: {exc})") from None
    return PickleScan(path, "zip", None, tuple(refs), members)


def scan_file(path: str | os.PathLike[str]) -> PickleScan:
    """List every global a pickle or joblib file references; raises :class:`UnreadablePickle`.

    A file with joblib array buffers is read twice: as joblib reads it (skipping the buffers) and
    as plain ``pickle.load`` would (the buffers read as opcodes), so nothing can hide in a buffer
    from one reader and run in the other. References seen by either reading are reported. A zip
    archive (``torch.save``) is scanned member by member: every member with a pickle suffix.
    """
    path = Path(path)
    if _is_zip(path):
        return _scan_zip(path)
    refs: dict[GlobalRef, None] = {}
    if _head(path).startswith(_NPY_MAGIC):
        _scan_npy_stream(functools.partial(path.open, "rb"), refs)
        return PickleScan(path, "npy", None, tuple(refs))
    first, compression = _open_stream(path)  # raises for a compression that cannot be read
    unused = [first]
    side: dict[str, None] = {}
    joblib = _scan_stream(lambda: unused.pop() if unused else _open_stream(path)[0], refs, side)
    return PickleScan(path, "joblib" if joblib else "pickle", compression, tuple(refs), side_files=tuple(side))


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(6)


_COMPRESSION_SUFFIXES = frozenset({".gz", ".z", ".bz2", ".xz", ".lzma"})


def _pickle_header(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


_OLD_PROTOCOL_STARTS = frozenset(op.code.encode("latin1")[0] for op in pickletools.opcodes if op.proto <= 1)


class _Discard:
    def write(self, text: str) -> int:
        return len(text)


def _walks_to_stop(path: Path) -> bool:
    """A protocol 0 or 1 pickle has no header: it is one if pickletools can walk it to its STOP.

    Only a stream that names a global (``GLOBAL`` or ``INST``: without one it can call nothing)
    counts, and ``pickletools.dis`` must accept it, checking the stack and the memo as it goes,
    so random bytes that happen to reach a STOP byte are not taken for a pickle. Objects left on
    the stack after STOP (which ``pickle.load`` ignores) still count.
    """
    with path.open("rb") as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # decoding arbitrary bytes as protocol 0 strings warns of bad escapes
        try:
            if not any(op.name in ("GLOBAL", "INST") for op, _, _ in pickletools.genops(fh)):
                return False
            fh.seek(0)
            pickletools.dis(fh, out=_Discard())  # type: ignore[arg-type]
        except ValueError as exc:
            return str(exc).startswith("stack not empty after STOP")
        except (EOFError, UnicodeDecodeError, OverflowError, MemoryError, KeyError, IndexError, TypeError):
            return False
    return True


def _looks_like_pickle(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and (suffixes[-1] in PICKLE_SUFFIXES or (
            len(suffixes) > 1 and suffixes[-1] in _COMPRESSION_SUFFIXES and suffixes[-2] in PICKLE_SUFFIXES)):
        return True
    try:
        head = _head(path)
        if _pickle_header(head):
            return True
        if head.startswith(_NPY_MAGIC):  # an object array's data is a pickle
            with path.open("rb") as fh:
                return _npy_holds_pickle(fh)
        if head and head[0] in _OLD_PROTOCOL_STARTS and _walks_to_stop(path):
            return True
        if head.startswith(b"PK\x03\x04") and zipfile.is_zipfile(path):  # torch.save checkpoints and the like
            with zipfile.ZipFile(path) as archive:
                return bool(_pickle_members(archive))
        if any(head.startswith(magic) for magic, kind in _COMPRESSED if kind not in ("zlib", "lz4")):
            stream, _ = _open_stream(path)  # a compressed pickle (joblib's compress=...)
            with stream:
                return _pickle_header(stream.read(2))
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error, zipfile.BadZipFile, UnreadablePickle):
        return False
    return False


def find_pickles(files: Iterable[Path]) -> list[Path]:
    """The files to scan, recognized by content as much as by name.

    A pickle-like suffix; a protocol 2-5 header; a protocol 0 or 1 stream that pickletools walks to
    its STOP; a compressed pickle; an ``.npy`` object array; a zip with pickle or object-array members.
    """
    return sorted(p for p in files if _looks_like_pickle(p))
