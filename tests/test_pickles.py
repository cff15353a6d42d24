"""The pickle scanner lists what a file references without running any of it."""

from __future__ import annotations

import os
import pickle
import pickletools
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from cprsdk import GlobalRef, scan_file
from cprsdk.pickles import UnreadablePickle, dangerous_reason, find_pickles


class Payload:
    def __reduce__(self):  # type: ignore[no-untyped-def]
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
    assert dangerous_reason(scan.references[0]) is not None


def test_stack_global_through_memo(tmp_path: Path) -> None:
    data = pickletools.optimize(pickle.dumps([_model(), _model()], protocol=4))
    path = tmp_path / "twice.pkl"
    path.write_bytes(data)
    refs = [str(r) for r in scan_file(path).references]
    assert refs.count("sklearn.linear_model._logistic.LogisticRegression") == 1


@pytest.mark.parametrize(
    ("ref", "dangerous"),
    [
        (GlobalRef("builtins", "eval"), True),
        (GlobalRef("builtins", "getattr"), True),
        (GlobalRef("subprocess", "Popen"), True),
        (GlobalRef("os.path", "join"), True),
        (GlobalRef("operator", "methodcaller"), True),
        (GlobalRef("builtins", "set"), False),
        (GlobalRef("collections", "OrderedDict"), False),
        (GlobalRef("numpy.core.multiarray", "_reconstruct"), False),
        (GlobalRef("ossify", "thing"), False),
    ],
)
def test_dangerous_reason(ref: GlobalRef, dangerous: bool) -> None:
    assert (dangerous_reason(ref) is not None) is dangerous


def test_truncated_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps(_model())[:50])
    with pytest.raises(UnreadablePickle):
        scan_file(path)


def test_find_pickles_by_suffix_and_header(tmp_path: Path) -> None:
    (tmp_path / "a.pkl").write_bytes(b"x")
    (tmp_path / "weights.bin").write_bytes(pickle.dumps([1], protocol=4))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "arr.npy").write_bytes(b"\x93NUMPY")
    found = find_pickles(sorted(tmp_path.iterdir()))
    assert [p.name for p in found] == ["a.pkl", "weights.bin"]
