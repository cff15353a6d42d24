"""The pickle allowlist: `cprsdk package` refuses every known trick, and real models of each framework pass.

Each trick is a real file whose loading would create a marker file: the test first loads a copy in
a child interpreter to show that it really does, then shows that `cprsdk package` refuses the
project's copy, naming the file and the global, and that the marker never appears.
"""

from __future__ import annotations

import codecs
import json
import os
import pickle
import shelve
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np
import pytest

from cprsdk.cli import main
from cprsdk.packaging.pickle_policy import resolved_refusal
from cprsdk.packaging.pickles import GlobalRef
from scenario import Project

SYSTEM = f"{os.system.__module__}.system"
P = pickle


class Reduce:
    """An object whose __reduce__ is ``func(*args)``: what a malicious pickle is made of."""

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (self.func, self.args)


def _text(value: str) -> bytes:
    data = value.encode()
    return P.SHORT_BINUNICODE + bytes([len(data)]) + data


def _global(module: str, name: str) -> bytes:
    return _text(module) + _text(name) + P.STACK_GLOBAL


def _touch(marker: Path) -> str:
    return f"touch {marker}"


@dataclass(frozen=True)
class Trick:
    file: str  # the file `cprsdk package` must name
    ref: str  # the global it must name
    load: str  # the code that runs the payload when the model is loaded (F: the trick file's path)
    write: Callable[[Path, Path], None]  # (model_dir, marker)


LOAD_PICKLE = "import pickle; pickle.load(open(F, 'rb'))"


def _dump(name: str, make: Callable[[Path], object], protocol: int = 4) -> Callable[[Path, Path], None]:
    def write(model_dir: Path, marker: Path) -> None:
        (model_dir / name).write_bytes(pickle.dumps(make(marker), protocol=protocol))
    return write


def _raw(name: str, body: Callable[[Path], bytes]) -> Callable[[Path, Path], None]:
    def write(model_dir: Path, marker: Path) -> None:
        (model_dir / name).write_bytes(P.PROTO + b"\x04" + body(marker) + P.STOP)
    return write


def _inner(marker: Path) -> str:
    """A plain malicious pickle outside the model directory, for the load functions to load."""
    inner = marker.parent / f"inner-{marker.name}.pkl"
    inner.write_bytes(pickle.dumps(Reduce(os.system, _touch(marker))))
    return str(inner)


def _side_file(model_dir: Path, marker: Path) -> None:
    """An old joblib NDArrayWrapper: joblib loads its side file with numpy.load(allow_pickle=True)."""
    np.save(model_dir / "side.npy", np.array([Reduce(os.system, _touch(marker))], dtype=object), allow_pickle=True)
    state = (P.EMPTY_DICT + P.MARK + _text("filename") + _text("side.npy") + _text("subclass")
             + b"cnumpy\nndarray\n" + _text("allow_mmap") + P.NEWFALSE + P.SETITEMS)
    (model_dir / "arrays.pkl").write_bytes(P.PROTO + b"\x02" + b"cjoblib.numpy_pickle_compat\nNDArrayWrapper\n"
                                           + P.EMPTY_TUPLE + P.NEWOBJ + state + P.BUILD + P.STOP)


TRICKS = {
    "pathlib.os.system": Trick("model/payload.pkl", "pathlib.os.system", LOAD_PICKLE, _raw(
        "payload.pkl", lambda m: _global("pathlib", "os.system") + _text(_touch(m)) + P.TUPLE1 + P.REDUCE)),
    "object.__getattribute__": Trick("model/payload.pkl", "builtins.object.__getattribute__", LOAD_PICKLE, _raw(
        "payload.pkl", lambda m: _global("builtins", "object.__getattribute__") + _global("pathlib", "os")
        + _text("system") + P.TUPLE2 + P.REDUCE + _text(_touch(m)) + P.TUPLE1 + P.REDUCE)),
    "codecs.open": Trick("model/payload.pkl", "codecs.open", LOAD_PICKLE,
                         _dump("payload.pkl", lambda m: Reduce(codecs.open, str(m), "w"))),
    "shelve.open": Trick("model/payload.pkl", "shelve.open", LOAD_PICKLE,
                         _dump("payload.pkl", lambda m: Reduce(shelve.open, str(m)))),
    "Path.write_text": Trick("model/payload.pkl", "pathlib.Path.write_text", LOAD_PICKLE,
                             _dump("payload.pkl", lambda m: Reduce(Path.write_text, m, "x"))),
    "numpy.load": Trick("model/payload.pkl", "numpy.load", LOAD_PICKLE,
                        _dump("payload.pkl", lambda m: Reduce(np.load, _inner(m), None, True))),
    "joblib.load": Trick("model/payload.pkl", "joblib.numpy_pickle.load", LOAD_PICKLE,
                         _dump("payload.pkl", lambda m: Reduce(joblib.load, _inner(m)))),
    "NDArrayWrapper side file": Trick("model/side.npy", SYSTEM, "import joblib, os; joblib.load(os.path.join("
                                      "os.path.dirname(F), 'arrays.pkl'))", _side_file),
    "object array": Trick("model/table.npy", SYSTEM, "import numpy; numpy.load(F, allow_pickle=True)",
                          lambda d, m: np.save(d / "table.npy", np.array([Reduce(os.system, _touch(m))], dtype=object),
                                               allow_pickle=True)),
    "protocol 0, no suffix": Trick("model/weights.bin", SYSTEM, LOAD_PICKLE,
                                   _dump("weights.bin", lambda m: Reduce(os.system, _touch(m)), protocol=0)),
    "protocol 1, no suffix": Trick("model/vocab", SYSTEM, LOAD_PICKLE,
                                   _dump("vocab", lambda m: Reduce(os.system, _touch(m)), protocol=1)),
}


def _ran(marker: Path) -> bool:
    return any(marker.parent.glob(marker.name + "*"))  # shelve's dbm may add a suffix


def _show_it_runs(trick: Trick, folder: Path) -> None:
    """Load a copy of the trick as a model loader would: its payload really runs."""
    model_dir = folder / "model"
    model_dir.mkdir(parents=True)
    marker = folder / "PROOF"
    trick.write(model_dir, marker)
    code = f"F = {str(folder / trick.file)!r}\n{trick.load}"
    subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, check=False)
    assert _ran(marker), f"the {trick.ref} trick does not run its payload, so it proves nothing"


@pytest.mark.parametrize("case", list(TRICKS))
def test_every_trick_is_refused_naming_the_file_and_the_global(
    case: str, project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    trick = TRICKS[case]
    _show_it_runs(trick, tmp_path / "proof")
    src = project("ok")
    marker = tmp_path / "RAN"
    trick.write(src / "model", marker)
    assert main(["package", str(src)]) != 0
    err = capsys.readouterr().err
    assert f"{trick.file} references {trick.ref}" in err or f"{trick.file} (member" in err, err
    assert "--allow-unsafe-pickles" in err
    assert not _ran(marker) and not (src / "dist").exists()


def test_a_function_re_exported_by_the_users_module_is_refused(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    src = project("ok")
    (src / "helpers.py").write_text("from os import system\n")
    marker = tmp_path / "RAN"
    (src / "model" / "payload.pkl").write_bytes(
        b"\x80\x02chelpers\nsystem\n" + _text(_touch(marker)) + P.TUPLE1 + P.REDUCE + P.STOP)
    assert main(["package", str(src)]) != 0
    err = capsys.readouterr().err
    assert "model/payload.pkl references helpers.system" in err and "is a function, not a class" in err, err
    assert not _ran(marker) and not (src / "dist").exists()


def test_allow_unsafe_pickles_lets_a_refused_file_through_with_a_warning(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    src = project("ok")
    marker = tmp_path / "RAN"
    TRICKS["codecs.open"].write(src / "model", marker)
    report = tmp_path / "report.json"
    assert main(["package", str(src), "--allow-unsafe-pickles", "--report", str(report)]) == 0, \
        capsys.readouterr().err
    err = capsys.readouterr().err
    assert "WARNING: 1 refused pickle reference(s) accepted only because of --allow-unsafe-pickles: " \
        "model/payload.pkl references codecs.open" in err
    checks = {c["name"]: c["detail"] for c in json.loads(report.read_text())["checks"]}
    assert "codecs.open" in checks["unsafe pickles"]
    assert not _ran(marker)  # the predictor never loads it; packaging never runs it


def test_real_models_of_each_framework_pass(project: Project, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = project("ml-models")
    report = tmp_path / "report.json"
    assert main(["package", str(src), "--report", str(report)]) == 0, capsys.readouterr().err
    data = json.loads(report.read_text())
    assert "unsafe pickles" not in {c["name"] for c in data["checks"]}
    refs = {s["path"]: set(s["references"]) for s in data["pickles"]}
    assert {"transforms.Clip", "transforms.shift", "sklearn.pipeline.Pipeline"} <= refs["model/pipeline.joblib"]
    assert "xgboost.sklearn.XGBClassifier" in refs["model/xgb.pkl"]
    assert {"transforms.Net", "torch._utils._rebuild_parameter"} <= refs["model/net.pt"]
    assert "torch._utils._rebuild_tensor_v2" in refs["model/state.pth"]
    assert {"model/misc-0.bin", "model/misc-2.bin", "model/misc-5.bin", "model/forest.joblib"} <= set(refs)
    assert "numpy.random._pickle.__generator_ctor" in refs["model/misc-5.bin"]


@pytest.mark.parametrize(
    ("ref", "kind", "defined_in", "refused"),
    [
        (GlobalRef("numpy", "dtype"), "class", "numpy", False),
        (GlobalRef("numpy", "dot"), "function", "numpy", True),
        (GlobalRef("sklearn.utils", "Popen"), "class", "subprocess", True),  # a re-exported class
        (GlobalRef("torch", "float32"), "object", "torch", False),
        (GlobalRef("preprocess", "clean"), "function", "preprocess", False),
        (GlobalRef("preprocess", "system"), "function", "posix", True),
        (GlobalRef("numpy.core.multiarray", "_reconstruct"), "function", "numpy._core.multiarray", False),
    ],
)
def test_resolved_refusal(ref: GlobalRef, kind: str, defined_in: str, refused: bool) -> None:
    assert (resolved_refusal(ref, kind=kind, defined_in=defined_in, own={"preprocess"}) is not None) is refused
