"""The pickle scanner lists what a file references without running any of it."""

from __future__ import annotations

import json
import os
import pickle
import pickletools
from collections.abc import Callable
from pathlib import Path

import joblib  # type: ignore[import-untyped]
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from cprsdk import GlobalRef, UnreadablePickle, scan_file
from cprsdk.packaging.pickle_policy import static_refusal
from cprsdk.packaging.pickles import find_pickles
from scenario import Project


class Payload:
    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return (os.system, ("touch SCANNER_RAN_IT",))


def _model() -> LogisticRegression:
    rng = np.random.default_rng(0)
    return LogisticRegression().fit(rng.normal(size=(20, 3)), [0, 1] * 10)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_references_at_every_protocol(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({"model": _model(), "when": np.datetime64("2024-01-01")}, protocol=protocol))
    refs = {str(r) for r in scan_file(path).references}
    assert "sklearn.linear_model._logistic.LogisticRegression" in refs
    assert any(r.startswith("numpy") for r in refs)


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3)])
def test_joblib_files_plain_and_compressed(tmp_path: Path, compress: object) -> None:
    path = tmp_path / "m.joblib"
    obj = {"model": _model(), "objects": np.array(["a", None], dtype=object), "big": np.ones((300, 300))}
    joblib.dump(obj, path, compress=compress)
    scan = scan_file(path)
    refs = {str(r) for r in scan.references}
    assert "sklearn.linear_model._logistic.LogisticRegression" in refs
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in refs
    assert scan.format == "joblib"


def test_scanning_never_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Payload()))
    scan = scan_file(path)
    assert [str(r) for r in scan.references] == [f"{os.system.__module__}.system"]
    assert not (tmp_path / "SCANNER_RAN_IT").exists()
    assert static_refusal(scan.references[0], own=()) is not None


def test_stack_global_through_memo(tmp_path: Path) -> None:
    data = pickletools.optimize(pickle.dumps([_model(), _model()], protocol=4))
    path = tmp_path / "twice.pkl"
    path.write_bytes(data)
    refs = [str(r) for r in scan_file(path).references]
    assert refs.count("sklearn.linear_model._logistic.LogisticRegression") == 1


@pytest.mark.parametrize(
    ("ref", "refused"),
    [
        (GlobalRef("builtins", "eval"), True),
        (GlobalRef("builtins", "getattr"), True),
        (GlobalRef("subprocess", "Popen"), True),
        (GlobalRef("os.path", "join"), True),
        (GlobalRef("operator", "methodcaller"), True),
        (GlobalRef("pathlib", "os.system"), True),
        (GlobalRef("builtins", "object.__getattribute__"), True),
        (GlobalRef("numpy", "memmap"), True),
        (GlobalRef("torch.serialization", "load"), True),
        (GlobalRef("builtins", "set"), False),
        (GlobalRef("__builtin__", "set"), False),
        (GlobalRef("collections", "OrderedDict"), False),
        (GlobalRef("numpy.core.multiarray", "_reconstruct"), False),
        (GlobalRef("sklearn.pipeline", "Pipeline"), False),
        (GlobalRef("preprocess", "Scaler"), False),
        (GlobalRef("notinstalledanywhere", "thing"), False),  # left to the check child: missing
    ],
)
def test_static_refusal(ref: GlobalRef, refused: bool) -> None:
    assert (static_refusal(ref, own={"preprocess"}) is not None) is refused


def test_truncated_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps(_model())[:50])
    with pytest.raises(UnreadablePickle):
        scan_file(path)


def test_find_pickles_by_suffix_and_content(tmp_path: Path) -> None:
    (tmp_path / "a.pkl").write_bytes(b"x")
    (tmp_path / "weights.bin").write_bytes(pickle.dumps([1], protocol=4))
    (tmp_path / "p0.dat").write_bytes(pickle.dumps({"a": [1, 2.5, "x"], "s": {1}}, protocol=0))
    (tmp_path / "p1").write_bytes(pickle.dumps({"a": [1, 2.5, "x"], "s": {1}}, protocol=1))
    (tmp_path / "plain0").write_bytes(pickle.dumps({"a": [1, 2.5, "x"]}, protocol=0))  # names no global: harmless
    for i in range(200):  # random bytes that may well hold a STOP byte
        (tmp_path / f"shard{i:03d}.bin").write_bytes(os.urandom(2000))
    (tmp_path / "notes.txt").write_text("hello\nIndex,name\n(not a pickle)\n")
    (tmp_path / "table.csv").write_text("I,d\n1,2\n")
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "arr.npy").write_bytes(b"\x93NUMPY")
    np.save(tmp_path / "numbers.npy", np.arange(4))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "plain.npz", a=np.arange(3))
    np.savez(tmp_path / "mixed.npz", a=np.arange(3), b=np.array([None], dtype=object))
    found = find_pickles(sorted(tmp_path.iterdir()))
    assert [p.name for p in found] == ["a.pkl", "mixed.npz", "objects.npy", "p0.dat", "p1", "weights.bin"]


def test_object_arrays_are_scanned(tmp_path: Path) -> None:
    np.save(tmp_path / "objects.npy", np.array([Payload()], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "arrays.npz", fine=np.arange(3), evil=np.array([Payload()], dtype=object))
    for name in ("objects.npy", "arrays.npz"):
        refs = {str(r) for r in scan_file(tmp_path / name).references}
        assert f"{os.system.__module__}.system" in refs, name
    assert scan_file(tmp_path / "arrays.npz").where(GlobalRef(os.system.__module__, "system")) == " (member evil.npy)"


def _hidden_in_a_joblib_buffer(cmd: bytes) -> bytes:
    """A wrapper whose 'array bytes' are opcodes calling os.system, then a harmless object."""
    P = pickle
    hidden = b"cos\nsystem\n" + P.SHORT_BINUNICODE + bytes([len(cmd)]) + cmd + P.TUPLE1 + P.REDUCE + P.POP + P.POP
    state = (P.EMPTY_DICT + P.MARK + P.SHORT_BINUNICODE + b"\x05shape" + P.BININT1 + bytes([len(hidden)])
             + P.TUPLE1 + P.SHORT_BINUNICODE + b"\x05dtype" + b"cnumpy\ndtype\n" + P.SHORT_BINUNICODE
             + b"\x02u1" + P.TUPLE1 + P.REDUCE + P.SETITEMS)
    body = pickle.dumps({"means": [1.0, 2.0]}, protocol=2)[2:]
    return (P.PROTO + b"\x02" + b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n" + P.EMPTY_TUPLE + P.NEWOBJ + state
            + P.BUILD + hidden + body)


def test_opcodes_hidden_in_a_joblib_buffer_are_seen(tmp_path: Path) -> None:
    path = tmp_path / "preprocessor.pkl"
    path.write_bytes(_hidden_in_a_joblib_buffer(b"touch x"))
    refs = {str(r) for r in scan_file(path).references}
    assert "os.system" in refs
    assert static_refusal(GlobalRef("os", "system"), own=()) is not None


@pytest.mark.parametrize(
    "ref",
    [GlobalRef("timeit", "timeit"), GlobalRef("cProfile", "run"), GlobalRef("pdb", "run"),
     GlobalRef("_posixsubprocess", "fork_exec"), GlobalRef("io", "open"), GlobalRef("numpy", "load"),
     GlobalRef("joblib", "load"), GlobalRef("torch", "load"), GlobalRef("cPickle", "loads"),
     GlobalRef("__builtin__", "eval"), GlobalRef("types", "FunctionType")],
)
def test_more_ways_in_are_refused(ref: GlobalRef) -> None:
    assert static_refusal(ref, own=()) is not None


@pytest.mark.parametrize(
    "data",
    [
        pickle.PROTO + b"\x04" + pickle.BINBYTES8 + (2**60).to_bytes(8, "little"),
        pickle.PROTO + b"\x04" + pickle.FRAME + (2**62).to_bytes(8, "little"),
        pickle.PROTO + b"\x02" + b"(" * 200_000 + b"l" * 200_000 + b".",
    ],
    ids=["huge-bytes", "huge-frame", "deep"],
)
def test_crafted_files_are_unreadable_not_crashes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "crafted.pkl"
    path.write_bytes(data)
    try:
        scan = scan_file(path)
    except UnreadablePickle as exc:
        assert str(exc)  # says why
    else:
        assert scan.references == ()


def test_many_globals_scan_in_linear_time(tmp_path: Path) -> None:
    import time

    body = b"".join(b"cmod%d\nname%d\n0" % (i, i) for i in range(20_000))
    path = tmp_path / "many.pkl"
    path.write_bytes(pickle.PROTO + b"\x02" + body + b"N.")
    start = time.process_time()
    scan = scan_file(path)
    assert len(scan.references) == 20_000
    assert time.process_time() - start < 10  # was quadratic: about 40 s


@pytest.mark.parametrize("name", ["m.pkl.gz", "m.joblib.bz2", "model.gzdata"])
def test_compressed_pickles_are_found(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    joblib.dump({"a": 1}, path, compress=("gzip", 3) if not name.endswith("bz2") else ("bz2", 3))
    assert find_pickles([path]) == [path]


def test_torch_checkpoints_are_scanned_member_by_member(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    from cprsdk.cli import main

    refused = project("torch-main-pickle")
    assert main(["package", str(refused)]) != 0
    err = capsys.readouterr().err
    assert "model/net.pt (member net/data.pkl) references __main__.Net" in err
    assert "Move the class into a module that you package" in err and not (refused / "dist").exists()

    accepted = project("torch-state-dict")
    report = accepted / "report.json"
    assert main(["package", str(accepted), "--report", str(report)]) == 0, capsys.readouterr().err
    scans = {s["path"]: s for s in json.loads(report.read_text())["pickles"]}
    assert scans["model/weights.pth"]["format"] == "zip"
    assert "collections.OrderedDict" in scans["model/weights.pth"]["references"]
    assert any(r.startswith("torch.") for r in scans["model/weights.pth"]["references"])
