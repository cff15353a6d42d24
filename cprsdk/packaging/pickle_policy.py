"""Which globals a model pickle may reference: an allowlist, checked in two steps.

A pickle can call any global it names, so the scan (:mod:`cprsdk.packaging.pickles`) lists them
and this module decides. Allowed:

- classes from the user's own package (the top-level modules the sdist ships), and functions
  defined there (``FunctionTransformer(func=preprocess.clean)``): that code runs on the node anyway;
- classes from the known ML runtimes (:data:`RUNTIME_MODULES`: NumPy, SciPy, scikit-learn, joblib,
  XGBoost, LightGBM, PyTorch, Keras, pandas, ``collections``, ``datetime``...), and non-callable
  constants of their types (``torch.float32``);
- the plain builtins types in :data:`SAFE_BUILTINS`;
- the reconstruction functions those libraries' pickles really use (:data:`RECONSTRUCTORS`),
  recorded by pickling real objects of each and listing their ``GLOBAL``/``STACK_GLOBAL`` opcodes.

Everything else is refused: every other function or method, attribute chains
(``pathlib`` + ``os.system``, ``builtins`` + ``object.__getattribute__``), any module outside the
list (``codecs.open``, ``shelve.open``), the load functions (``numpy.load``, ``joblib.load``), and
a few runtime classes that open files or start processes (:data:`REFUSED_IN_RUNTIMES`).

:func:`static_refusal` decides from the name alone, before anything is imported; what passes is
imported in the clean check child, which reports what each name really is, and
:func:`resolved_refusal` refuses the callables that are not classes (a module can re-export
anything). It is a tripwire against accidents and known tricks, not a sandbox.
"""

from __future__ import annotations

import importlib.machinery
import sys
from collections.abc import Collection
from pathlib import Path

from cprsdk.packaging.pickles import GlobalRef, canonical

__all__ = ["RECONSTRUCTORS", "REFUSED_IN_RUNTIMES", "RUNTIME_MODULES", "SAFE_BUILTINS", "own_modules",
           "resolved_refusal", "static_refusal"]

RUNTIME_MODULES = frozenset({
    "numpy", "scipy", "sklearn", "joblib", "xgboost", "lightgbm", "catboost", "torch", "keras", "pandas",
    "statsmodels", "collections", "datetime", "decimal", "fractions", "uuid",
})
SAFE_BUILTINS = frozenset({
    "set", "frozenset", "bytearray", "bytes", "complex", "slice", "range", "list", "dict", "tuple", "str",
    "int", "float", "bool", "object",
})
RECONSTRUCTORS = frozenset(GlobalRef(m, n) for m, n in (
    ("copyreg", "_reconstructor"), ("_codecs", "encode"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy.ma.core", "_mareconstruct"),
    ("numpy.random._pickle", "__randomstate_ctor"), ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._utils", "_rebuild_sparse_tensor"), ("torch._utils", "_rebuild_qtensor"),
    ("torch._tensor", "_rebuild_from_type_v2"),
))
REFUSED_IN_RUNTIMES = (  # module prefixes and classes of the runtimes that reach files, processes or loaders
    "numpy.testing", "numpy.f2py", "numpy.distutils", "numpy.lib.npyio", "numpy.lib._npyio_impl",
    "numpy.lib._datasource", "numpy._core.memmap", "numpy.core.memmap", "numpy.memmap", "joblib.parallel",
    "joblib.Parallel", "joblib.memory", "joblib.Memory", "joblib.externals", "joblib._parallel_backends",
    "joblib.pool", "joblib.numpy_pickle.load", "torch.hub", "torch.serialization", "torch.package",
    "torch.storage._load_from_bytes", "torch.utils.cpp_extension", "torch.multiprocessing", "torch.distributed",
    "torch.jit", "torch._dynamo", "torch.load", "torch.save", "pandas.io", "pandas.HDFStore", "pandas.ExcelWriter",
    "pandas.read_pickle", "pandas.to_pickle", "numpy.load", "numpy.save", "numpy.savez", "numpy.fromfile",
    "numpy.loadtxt", "numpy.savetxt", "numpy.genfromtxt", "joblib.load", "joblib.dump",
)  # the functions are refused anyway once resolved (only classes pass); naming them refuses them earlier
_BUILTINS = frozenset({"builtins", "__builtin__"})
_HINT = "Pickle only model objects (classes and arrays), or pass --allow-unsafe-pickles if you trust the file"


def own_modules(project_dir: Path) -> frozenset[str]:
    """The top-level module names the project ships: ``*.py`` and packages at its root or under ``src/``."""
    names: set[str] = set()
    for root in (project_dir, project_dir / "src"):
        if not root.is_dir():
            continue
        for entry in root.iterdir():
            name = entry.stem if entry.suffix == ".py" and entry.is_file() else entry.name
            is_code = entry.suffix == ".py" or (entry.is_dir() and any(entry.glob("*.py")))
            if is_code and name.isidentifier() and name not in ("setup", "conftest", "tests", "test"):
                names.add(name)
    return frozenset(names)


def _refused_runtime(qualified: str) -> bool:
    return any(qualified == p or qualified.startswith(p + ".") for p in REFUSED_IN_RUNTIMES)


def _home_allowed(module: str, own: Collection[str]) -> bool:
    top = module.split(".")[0]
    return top in own or (top in RUNTIME_MODULES and not _refused_runtime(module))


def _installed_here(module: str) -> bool:
    """Whether the top of ``module`` can be imported here; nothing is imported to find out."""
    top = module.split(".")[0]
    return top in sys.builtin_module_names or importlib.machinery.PathFinder.find_spec(top) is not None


def static_refusal(ref: GlobalRef, *, own: Collection[str]) -> str | None:
    """Why ``ref`` is refused from its name alone, or None (a class is then checked by :func:`resolved_refusal`).

    A module that is neither ``own`` nor importable here is left to the check child, which finds it
    in the built package (and its requirements) or reports it missing.
    """
    ref = canonical(ref)
    if ref in RECONSTRUCTORS:
        return None
    if ref.module in _BUILTINS:
        if ref.name in SAFE_BUILTINS:
            return None
        return f"builtins.{ref.name} is not one of the plain builtin types a model pickle needs. {_HINT}"
    if "." in ref.name:
        return (f"the name {ref.name!r} is an attribute chain, which can reach any function (os.system, "
                f"object.__getattribute__). {_HINT}")
    if _refused_runtime(str(ref)) or (ref.module.split(".")[0] in RUNTIME_MODULES and _refused_runtime(ref.module)):
        return f"it reads or writes files, starts processes or loads other pickles. {_HINT}"
    if not _home_allowed(ref.module, own) and _installed_here(ref.module):
        shown = ", ".join(sorted(own)) or "none found"
        return (f"module {ref.module} is neither in your package (its modules: {shown}) nor a known ML "
                f"runtime, so its callables could do anything. {_HINT}")
    return None


def resolved_refusal(ref: GlobalRef, *, kind: str, defined_in: str, own: Collection[str]) -> str | None:
    """Why ``ref``, imported in the check child, is refused: ``kind`` is class, function or object.

    ``defined_in`` is the ``__module__`` of the class or function (of the type, for an object).
    """
    ref = canonical(ref)
    if ref in RECONSTRUCTORS or ref.module in _BUILTINS:
        return None
    if kind == "function":
        if ref.module.split(".")[0] in own and defined_in == ref.module:
            return None
        return (f"{ref} is a function, not a class; only classes and a few known reconstruction functions "
                f"are allowed. {_HINT}")
    if not _home_allowed(defined_in, own):
        what = "a class" if kind == "class" else "an object"
        return f"{ref} is {what} defined in {defined_in or 'an unknown module'}, outside the allowed modules. {_HINT}"
    return None
