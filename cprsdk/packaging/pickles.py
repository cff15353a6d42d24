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
    "dangerous_reason",
    "find_pickles",
    "scan_file",
]

PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".pck", ".pcl", ".joblib", ".sav", ".dill"})

_DANGEROUS_MODULES = (
    "os", "posix", "nt", "subprocess", "_posixsubprocess", "sys", "shutil", "socket", "runpy",
    "importlib", "pty", "code", "codeop", "ctypes", "pickle", "_pickle", "cPickle", "marshal", "dill",
    "cloudpickle", "webbrowser", "commands", "popen2", "signal", "multiprocessing", "asyncio", "http",
    "urllib", "urllib2", "httplib", "ftplib", "smtplib", "telnetlib", "timeit", "cProfile", "profile",
    "pdb", "bdb", "trace", "io", "_io", "tempfile", "glob", "threading", "_thread", "types", "inspect",
    "pydoc", "doctest", "zipimport", "numpy.testing", "numpy.load", "numpy.lib.npyio", "joblib.load",
    "torch.hub", "torch.load", "torch.serialization", "cprsdk",
)
_DANGEROUS_BUILTINS = frozenset({
    "eval", "exec", "execfile", "compile", "__import__", "open", "file", "input", "breakpoint",
    "getattr", "setattr", "delattr", "globals", "locals", "vars", "reload", "apply",
})
_DANGEROUS_NAMES = {
    "operator": frozenset({"attrgetter", "methodcaller"}),
    "_operator": frozenset({"attrgetter", "methodcaller"}),
}
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

    def where(self, ref: GlobalRef) -> str:
        """`` (member archive/data.pkl)`` for a reference found in a zip member, else empty."""
        member = self.members.get(ref)
        return f" (member {member})" if member else ""


def _canonical(ref: GlobalRef) -> GlobalRef:
    """The name an unpickler really imports (Python 2 names are mapped, as fix_imports does)."""
    import _compat_pickle

    module, name = ref.module, ref.name
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return GlobalRef(module, name)


def dangerous_reason(ref: GlobalRef) -> str | None:
    """Why a reference can run arbitrary code or touch the system, or None if it is ordinary.

    A denylist: it stops the known ways in, not every way. Only ship pickles you made.
    """
    ref = _canonical(ref)
    top = ref.module.split(".")[0]
    qualified = f"{ref.module}.{ref.name}"
    if ref.module in ("builtins", "__builtin__") and ref.name in _DANGEROUS_BUILTINS:
        return f"builtins.{ref.name} can run arbitrary code"
    if ref.name in _DANGEROUS_NAMES.get(ref.module, ()):
        return f"{ref} can call arbitrary methods"
    for mod in _DANGEROUS_MODULES:
        if ref.module == mod or ref.module.startswith(mod + ".") or qualified == mod or (top == mod and "." not in mod):
            return f"{ref} reaches the system or the interpreter ({mod})"
    return None


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


def _scan_stream(open_stream: Callable[[], Any], refs: dict[GlobalRef, None]) -> bool:
    """Record the references of one pickle stream into ``refs``; True if it holds joblib arrays."""
    try:
        with open_stream() as stream:
            scanner = _Scanner(stream, refs)
            scanner.load()
    except UnreadablePickle:
        raise
    except _UNREADABLE as exc:
        raise UnreadablePickle(f"{type(exc).__name__}: {exc}") from None
    if scanner.joblib:
        with open_stream() as plain, contextlib.suppress(*_UNREADABLE):
            _Scanner(plain, refs, joblib_aware=False).load()  # stops at the first buffer that is not opcodes
    return bool(scanner.joblib)


def _is_zip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"PK\x03\x04" and zipfile.is_zipfile(path)


def _pickle_members(archive: zipfile.ZipFile) -> list[str]:
    return [m for m in archive.namelist() if Path(m).suffix.lower() in PICKLE_SUFFIXES and not m.endswith("/")]


def _scan_zip(path: Path) -> PickleScan:
    refs: dict[GlobalRef, None] = {}
    members: dict[GlobalRef, str] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in _pickle_members(archive):
                found: dict[GlobalRef, None] = {}
                try:
                    _scan_stream(functools.partial(archive.open, member), found)
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
    first, compression = _open_stream(path)  # raises for a compression that cannot be read
    unused = [first]
    joblib = _scan_stream(lambda: unused.pop() if unused else _open_stream(path)[0], refs)
    return PickleScan(path, "joblib" if joblib else "pickle", compression, tuple(refs))


_COMPRESSION_SUFFIXES = frozenset({".gz", ".z", ".bz2", ".xz", ".lzma"})


def _pickle_header(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _looks_like_pickle(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and (suffixes[-1] in PICKLE_SUFFIXES or (
            len(suffixes) > 1 and suffixes[-1] in _COMPRESSION_SUFFIXES and suffixes[-2] in PICKLE_SUFFIXES)):
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(6)
        if _pickle_header(head):
            return True
        if head.startswith(b"PK\x03\x04") and zipfile.is_zipfile(path):  # torch.save checkpoints and the like
            with zipfile.ZipFile(path) as archive:
                return bool(_pickle_members(archive))
        if any(head.startswith(magic) for magic, kind in _COMPRESSED if kind not in ("zlib", "lz4")):
            stream, _ = _open_stream(path)  # a compressed pickle (joblib's compress=...)
            with stream:
                return _pickle_header(stream.read(2))
    except (OSError, EOFError, lzma.LZMAError, zlib.error, zipfile.BadZipFile, UnreadablePickle):
        return False
    return False


def find_pickles(files: Iterable[Path]) -> list[Path]:
    """The files to scan: pickle-like suffixes, a pickle protocol 2-5 header, or a zip with pickle members."""
    return sorted(p for p in files if _looks_like_pickle(p))
